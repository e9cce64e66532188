/**
 * The bench's harness: a real sshd, the links (direct, or through the delay proxy in its own process),
 * and each tool run as a whole process the way users start it: `node bin/kubedev.js sync ...`,
 * `rsync -a -e 'ssh ...'`, `tar | ssh tar -x`, all with the same ssh key exchange and cipher.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { Client } from 'ssh2';
import { Sshd, startSshd } from '../test/support/sshd';

const REPO = path.resolve(__dirname, '..', '..');
export const KUBEDEV_BIN = path.join(REPO, 'bin', 'kubedev.js');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A tool the bench needs, or a failure naming the install command. */
export function requireTool(cmd: string, pkg: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`'${cmd}' not found: install it with 'apt-get install -y ${pkg}'`);
  }
}

/** A link to the sshd: direct (0 ms) or through the delay proxy, which counts bytes. */
export interface Link {
  readonly delayMs: number;
  readonly port: number;
  /** Bytes on the wire since the last call (up: to the server, down: back); undefined when direct. */
  bytes(): Promise<{ up: number; down: number } | undefined>;
  close(): Promise<void>;
}

async function proxyLink(targetPort: number, delayMs: number): Promise<Link> {
  const script = path.join(__dirname, 'delay-proxy.js');
  const child = spawn(process.execPath, [script, String(targetPort), String(delayMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const queue: Array<(l: string) => void> = [];
  lines.on('line', (l) => queue.shift()?.(l));
  const next = (): Promise<string> => new Promise((r) => queue.push(r));
  const { port } = JSON.parse(await next()) as { port: number };
  return {
    delayMs,
    port,
    bytes: async () => {
      const reply = next();
      child.stdin?.write('reset\n');
      return JSON.parse(await reply) as { up: number; down: number };
    },
    close: async () => {
      child.stdin?.end();
      await new Promise((r) => child.once('exit', r));
    },
  };
}

export interface Run {
  readonly ms: number;
  /** The JSON events kubedev printed (with --json), each with `at` = harness time it arrived. */
  readonly events: Array<Record<string, unknown> & { at: number }>;
  readonly stderr: string;
}

/** Runs a process to its end; rejects on a non-zero exit with its stderr. */
export function timed(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const events: Run['events'] = [];
    let stderr = '';
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    readline.createInterface({ input: child.stdout }).on('line', (l) => {
      if (l.startsWith('{')) events.push({ ...(JSON.parse(l) as Record<string, unknown>), at: performance.now() });
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolve({ ms, events, stderr });
      else reject(new Error(`'${[path.basename(cmd), ...args].join(' ').slice(0, 100)}...' exited with ${code}: ${stderr.trim().slice(-600)}`));
    });
  });
}

/** A long-running `kubedev sync --json` (watching): its pid and its events as they arrive. */
export class Watcher {
  readonly events: Run['events'] = [];
  private readonly waiters = new Set<() => void>();
  private stderr = '';
  private exited?: number | null;
  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      if (!l.startsWith('{')) return;
      this.events.push({ ...(JSON.parse(l) as Record<string, unknown>), at: performance.now() });
      for (const w of this.waiters) w();
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    child.once('exit', (code) => {
      this.exited = code;
      for (const w of this.waiters) w();
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Resolves with the first event from index `from` on that matches; rejects after `ms`. */
  next(from: number, match: (e: Run['events'][number]) => boolean, ms: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const i = this.events.findIndex((e, k) => k >= from && match(e));
        if (i >= 0) done(() => resolve(i));
        else if (this.exited !== undefined) done(() => reject(new Error(`kubedev exited (${this.exited}): ${this.stderr.trim().slice(-600)}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no matching kubedev event within ${ms} ms; stderr: ${this.stderr.trim().slice(-600)}`))), ms);
      const done = (f: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  async stop(): Promise<void> {
    if (this.exited !== undefined) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await gone;
  }
}

/**
 * Ends the agents (sync/agent/) and the kept OpenSSH connections (rsyncKept) whose sockets are under
 * `runtime` (the bench's own runtime folder).
 */
export function stopAgents(runtime: string): void {
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  for (const line of ps.split('\n')) {
    // A ControlPersist master renames itself `ssh: <socket> [mux]`: its command line no longer holds ControlPath=.
    if (!(line.includes('agent/server.js') || line.includes('ControlPath=') || line.includes('[mux]')) || !line.includes(runtime)) continue;
    try {
      process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGTERM');
    } catch {
      // already gone
    }
  }
}

export class Bench {
  private readonly links = new Map<number, Link>();
  /** The ssh options both tools get: the algorithms kubedev's ssh2 negotiates with this sshd. */
  sshAlgos = '';
  private constructor(readonly sshd: Sshd, readonly work: string, readonly knownHosts: string) {}

  static async start(work: string): Promise<Bench> {
    const sshd = await startSshd({ user: 'kubedev-test', asUser: true });
    const b = new Bench(sshd, work, path.join(work, 'known_hosts'));
    fs.writeFileSync(b.knownHosts, fs.readFileSync(sshd.knownHosts));
    const neg = await negotiated(sshd);
    b.sshAlgos = `-c ${neg.cipher} -o KexAlgorithms=${neg.kex} -o HostKeyAlgorithms=${neg.serverHostKey}${neg.mac ? ` -o MACs=${neg.mac}` : ''}`;
    return b;
  }

  /** The link for a delay (made once): 0 is the sshd itself; more goes through a delay proxy. */
  async link(delayMs: number, counted = false): Promise<Link> {
    const key = delayMs === 0 && counted ? -1 : delayMs;
    let l = this.links.get(key);
    if (!l) {
      l = delayMs === 0 && !counted ? { delayMs: 0, port: this.sshd.port, bytes: async () => undefined, close: async () => undefined } : await proxyLink(this.sshd.port, delayMs);
      // Both tools check the host key by [host]:port: the proxy's port gets the server's key too.
      fs.appendFileSync(this.knownHosts, `[127.0.0.1]:${l.port} ${this.sshd.hostPublicKey}\n`);
      this.links.set(key, l);
    }
    return l;
  }

  get at(): string {
    return `${this.sshd.user}@127.0.0.1`;
  }

  ssh(l: Link): string {
    const s = this.sshd;
    return `ssh -F /dev/null -p ${l.port} -i ${s.identity} -o UserKnownHostsFile=${this.knownHosts} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes -o ControlMaster=no -o Compression=no ${this.sshAlgos}`;
  }

  kubedevArgs(l: Link, local: string, remote: string, extra: readonly string[] = []): string[] {
    const s = this.sshd;
    return [KUBEDEV_BIN, 'sync', '--local', local, '--remote', remote, '--host', '127.0.0.1', '--port', String(l.port), '--user', s.user, '--identity', s.identity, '--known-hosts', this.knownHosts, '--json', ...extra];
  }

  /** `kubedev sync --once` as a fresh process. */
  kubedevOnce(l: Link, local: string, remote: string, env?: NodeJS.ProcessEnv, node: readonly string[] = []): Promise<Run> {
    return timed(process.execPath, [...node, ...this.kubedevArgs(l, local, remote, ['--once'])], env);
  }

  /** Starts a watching `kubedev sync --json`; resolves once its first pass is done ('ready'). */
  async watch(l: Link, local: string, remote: string, extra: readonly string[] = [], readyMs = 120_000): Promise<Watcher> {
    const w = new Watcher(spawn(process.execPath, this.kubedevArgs(l, local, remote, extra), { stdio: ['ignore', 'pipe', 'pipe'] }));
    await w.next(0, (e) => e.event === 'ready', readyMs).catch(async (e) => {
      await w.stop();
      throw e;
    });
    return w;
  }

  /** `rsync -a [extra] -e 'ssh ...' src/ dest/`; `pull` swaps the sides (dest is then local). */
  rsync(l: Link, src: string, dest: string, extra: readonly string[] = [], pull = false): Promise<Run> {
    const from = pull ? `${this.at}:${src}/` : `${src}/`;
    const to = pull ? `${dest}/` : `${this.at}:${dest}/`;
    return timed('rsync', ['-a', ...extra, '-e', this.ssh(l), from, to]);
  }

  /**
   * `rsync -a` over a kept OpenSSH connection (ControlMaster=auto, ControlPersist=600: the first run
   * opens it, later runs ride on it), the fair match for kubedev served by its agent.
   */
  rsyncKept(l: Link, src: string, dest: string): Promise<Run> {
    const ssh = `${this.ssh(l).replace('-o ControlMaster=no', '-o ControlMaster=auto')} -o ControlPersist=600 -o ControlPath=${path.join(this.work, 'run', `cm-${l.port}`)}`;
    return timed('rsync', ['-a', '-e', ssh, `${src}/`, `${this.at}:${dest}/`]);
  }

  /** `tar -c | ssh tar -x`: the physical limit for bulk (no listing, no comparison). */
  tar(l: Link, src: string, dest: string, list?: string): Promise<Run> {
    const what = list ? `-T ${list}` : '.';
    return timed('bash', ['-c', `set -o pipefail; tar -C ${src} -cf - ${what} | ${this.ssh(l)} ${this.at} 'mkdir -p ${dest} && tar -x -C ${dest} -f -'`]);
  }

  /** Where a remote folder of this name goes (shell-safe: only word characters, '/', '.' and '-'). */
  private remote(name: string): string {
    return path.join(this.work, 'remote', name.replace(/[^\w/.-]+/g, '-'));
  }

  /** A new empty folder the ssh user owns. */
  fresh(name: string): string {
    const d = this.remote(name);
    fs.mkdirSync(d, { recursive: true });
    fs.chownSync(d, this.sshd.uid, this.sshd.gid);
    return d;
  }

  /** A new folder holding a copy of `src` (times and modes kept), owned by the ssh user. */
  seeded(src: string, name: string): string {
    const d = this.remote(name);
    fs.mkdirSync(path.dirname(d), { recursive: true });
    fs.chownSync(path.dirname(d), this.sshd.uid, this.sshd.gid);
    // Copied as the ssh user (one pass, no chown -R after): the copy is theirs, times and modes kept.
    execFileSync('setpriv', [`--reuid=${this.sshd.uid}`, `--regid=${this.sshd.gid}`, '--clear-groups', '--', 'cp', '-a', src, d]);
    return d;
  }

  async close(): Promise<void> {
    for (const l of this.links.values()) await l.close();
    await this.sshd.close();
  }
}

/** ms from connect to authenticated, with ssh2 in this (warm) process: the handshake alone. */
export function ssh2Handshake(s: Sshd, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    const t0 = performance.now();
    c.on('ready', () => {
      resolve(performance.now() - t0);
      c.end();
    });
    c.on('error', reject);
    c.connect({ host: '127.0.0.1', port, username: s.user, privateKey: fs.readFileSync(s.identity), hostVerifier: () => true });
  });
}

/** What ssh2 (kubedev's ssh library, its default preferences) agrees on with this sshd. */
function negotiated(s: Sshd): Promise<{ kex: string; cipher: string; serverHostKey: string; mac: string }> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on('handshake', (n) => {
      const cipher = n.cs.cipher;
      resolve({ kex: n.kex, cipher, serverHostKey: n.serverHostKey, mac: /gcm|chacha/.test(cipher) ? '' : n.cs.mac });
      c.end();
    });
    c.on('error', reject);
    c.connect({ host: '127.0.0.1', port: s.port, username: s.user, privateKey: fs.readFileSync(s.identity), hostVerifier: () => true });
  });
}

/** `diff -r`: throws naming the first differences. */
export function sameTrees(a: string, b: string): void {
  try {
    execFileSync('diff', ['-r', '--no-dereference', a, b], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`trees differ: ${String((e as { stdout?: Buffer }).stdout ?? '').slice(0, 600)}`);
  }
}

/** True when every path in `rels` holds the same bytes on both sides (or is absent on both). */
export function sameFiles(a: string, b: string, rels: readonly string[]): boolean {
  const read = (p: string): Buffer | undefined => {
    try {
      return fs.readFileSync(p);
    } catch {
      return undefined;
    }
  };
  for (const rel of rels) {
    const x = read(path.join(a, rel));
    const y = read(path.join(b, rel));
    if (x === undefined ? y !== undefined : y === undefined || !x.equals(y)) return false;
  }
  return true;
}
