/**
 * What the agent's tests share (test/agent*.test.ts): a real sshd that logs each login, private
 * runtime folders, `kubedev` runs as users start them (bin/kubedev.js, compiled build/), and the
 * agents they leave. `useAgentSshd()` in a suite starts the server and cleans up after it.
 */
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AgentPool } from '../../sync/agent/pool';
import { KeptScans, setKeptScans } from '../../sync/engine/kept-scan';
import { setConnectionPool } from '../../sync/engine/transport';
import { Sshd, startSshd } from './sshd';
import { tempDir, writeTree } from './trees';

export const BIN = path.resolve(__dirname, '..', '..', 'bin', 'kubedev.js');
export const BUILD_AGENT = path.resolve(__dirname, '..', '..', 'build', 'sync', 'agent');
let sshd: Sshd;
const dirs: string[] = [];

/** Starts the suite's sshd (LogLevel INFO: each login is logged, counted by logins()). */
export function useAgentSshd(): { readonly sshd: () => Sshd; readonly dirs: string[] } {
  jest.setTimeout(90_000);
  beforeAll(async () => {
    if (!fs.existsSync(path.join(BUILD_AGENT, 'server.js'))) {
      throw new Error("build/sync/agent/server.js is missing: run 'npm run build' (npm ci does it through 'prepare')");
    }
    sshd = await startSshd({ user: 'kubedev-test', asUser: true, overrides: ['LogLevel INFO'] });
  });
  afterAll(async () => {
    for (const d of dirs) stopAgents(d);
    await sshd?.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  return { sshd: () => sshd, dirs };
}

/** A private runtime folder (where the agent's socket goes) and the environment naming it. */
export function runtime(extra: NodeJS.ProcessEnv = {}): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = tempDir('agent-run');
  fs.chmodSync(dir, 0o700);
  dirs.push(dir);
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: dir, KUBEDEV_AGENT: 'on', KUBEDEV_AGENT_PERSIST: '60' };
  delete env.CI;
  Object.assign(env, extra);
  return { dir, env };
}

export function sockets(dir: string): string[] {
  const folder = path.join(dir, 'kubedev');
  return fs.existsSync(folder) ? fs.readdirSync(folder).filter((n) => n.endsWith('.sock')).map((n) => path.join(folder, n)) : [];
}

/** Pids of agents listening in `dir`. */
export function agentPids(dir: string): number[] {
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps
    .split('\n')
    .filter((l) => l.includes('agent/server.js') && l.includes(dir))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

export function stopAgents(dir: string): void {
  for (const pid of agentPids(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `kubedev args`; `started` sees the child (to signal it), `cwd` is its working folder. */
export function run(args: string[], env: NodeJS.ProcessEnv, opts: { cwd?: string; started?: (child: ReturnType<typeof spawn>) => void } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    opts.started?.(child);
  });
}

export function folders(): { local: string; remote: string } {
  const local = tempDir('agent-local');
  const base = tempDir('agent-remote');
  fs.chownSync(base, sshd.uid, sshd.gid);
  dirs.push(local, base);
  return { local, remote: path.join(base, 'ws') };
}

export function flags(local: string, remote: string, extra: Record<string, string> = {}): string[] {
  const f: Record<string, string> = { local, remote, host: '127.0.0.1', port: String(sshd.port), user: sshd.user, identity: sshd.identity, 'known-hosts': sshd.knownHosts, ...extra };
  return ['sync', ...Object.entries(f).flatMap(([k, v]) => [`--${k}`, v]), '--once', '--json'];
}

/** Retries `check` (assertions) until it passes; after `ms`, its last failure is the test's. */
export async function until(check: () => void, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const logins = (): number => (sshd.log().match(/Accepted publickey/g) ?? []).length;

/** Waits for an agent to listen in `dir` with its warm-up connection made (logins settle). */
export async function agentReady(dir: string, loginsBefore: number): Promise<void> {
  await until(() => {
    expect(sockets(dir)).toHaveLength(1);
    expect(logins()).toBe(loginsBefore + 1);
  }, 10_000);
}

/** A runtime folder, folders with `tree` locally, a first run (in-process) and its agent ready. */
export async function withAgent(tree: Record<string, string>, extra: NodeJS.ProcessEnv = {}): Promise<{ dir: string; env: NodeJS.ProcessEnv; local: string; remote: string; before: number }> {
  const { dir, env } = runtime(extra);
  const { local, remote } = folders();
  writeTree(local, tree);
  const before = logins();
  expect((await run(flags(local, remote), env)).code).toBe(0);
  await agentReady(dir, before + 1);
  return { dir, env, local, remote, before };
}

export function synced(stdout: string): { event: string; files: number } {
  const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; files: number });
  expect(events.map((e) => e.event)).toEqual(['synced']);
  return events[0];
}

/** The agent's state for in-process runs (useAgentState). */
export interface AgentState {
  /** Its kept listings now. */
  kept(): KeptScans;
  /** Its connections kept between runs. */
  pool(): AgentPool;
  /** Kept listings of the test's own (the last ones are closed first). */
  replaceKept(k: KeptScans): Promise<void>;
}

/**
 * In-process runs as the agent serves them, for each test: its kept listings, and its connections kept
 * between runs (the remote watcher rides on them); closed after each test.
 */
export function useAgentState(): AgentState {
  let kept: KeptScans | undefined;
  let pool: AgentPool | undefined;
  beforeEach(() => {
    kept = new KeptScans();
    setKeptScans(kept);
    pool = new AgentPool(60_000);
    setConnectionPool(pool);
  });
  afterEach(async () => {
    setKeptScans(undefined);
    await kept?.closeAll();
    setConnectionPool(undefined);
    pool?.closeAll();
  });
  return {
    kept: () => kept as KeptScans,
    pool: () => pool as AgentPool,
    async replaceKept(k) {
      await kept?.closeAll();
      kept = k;
      setKeptScans(k);
    },
  };
}
