/**
 * The harness of the `kubedev up` tests: a fake kubectl, a real sshd standing in for the sidecar (as the
 * non-root user, with the environment's sshd_config and the keys `kubedev keys` made), a project and a
 * remote folder, and `up` started in-process with its JSON events collected. Importing it registers
 * the beforeEach/afterEach that make and remove all of it; the state is exported as live bindings.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { parseAllDocuments, stringify } from 'yaml';
import { DevEnvironmentSpec, renderDevEnvironment } from '../../lib/dev-environment';
import { renderSshdConfig } from '../../lib/sshd';
import { runKeys } from '../../sync/cli/keys';
import { runUp, UpOptions } from '../../sync/attach/up';
import { FakeKubectl, FakeWorld, makeFakeKubectl } from './fake-kubectl';
import { startSshd, Sshd } from './sshd';
import { tempDir } from './trees';

export const USER = 'kubedev-test';
export const SSH_PORT = 2222;

export let tmp: string;
export let project: string;
export let remote: string;
export let envFile: string;
export let fake: FakeKubectl;
export let saved: NodeJS.ProcessEnv;
export const cleanups: (() => Promise<void> | void)[] = [];

export function spec(extra: Partial<DevEnvironmentSpec> = {}): DevEnvironmentSpec {
  return {
    name: 'api',
    namespace: 'team-web',
    owner: 'alice@example.com',
    image: 'node:20-bookworm',
    sync: [{ local: 'src', remote, ignore: ['*.log'] }],
    sidecar: { user: USER, port: SSH_PORT },
    ...extra,
  };
}

export function writeEnv(s: DevEnvironmentSpec): void {
  fs.writeFileSync(envFile, renderDevEnvironment(s).map((o) => stringify(o)).join('---\n'));
}

/** A pod as the API shows it: the sidecar ready or waiting for `reason`. */
export function pod(sidecar: 'ready' | { reason: string; message?: string }, dev: 'running' | { reason: string } = 'running'): unknown {
  const st = (s: typeof sidecar | typeof dev, name: string): unknown =>
    s === 'ready' || s === 'running'
      ? { name, ready: true, state: { running: { startedAt: '2026-01-01T00:00:00Z' } } }
      : { name, ready: false, state: { waiting: s } };
  return {
    metadata: { name: 'api-0', namespace: 'team-web' },
    status: { phase: sidecar === 'ready' ? 'Running' : 'Pending', containerStatuses: [st(dev, 'dev'), st(sidecar, 'sync')] },
  };
}

export interface Running {
  events: Record<string, unknown>[];
  stderr: () => string;
  done: Promise<number>;
  stop: () => Promise<void>;
  waitFor: (event: string, ms: number) => Promise<Record<string, unknown>>;
}

export function startUp(options: Partial<UpOptions> = {}): Running {
  const out = new PassThrough();
  const err = new PassThrough();
  const events: Record<string, unknown>[] = [];
  let buf = '';
  let stderr = '';
  out.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  err.on('data', (d: Buffer) => (stderr += d.toString()));
  const ctl = new AbortController();
  const done = runUp({ env: envFile, name: 'api', root: project, json: true, pollMs: 50, ...options }, { stdout: out, stderr: err }, ctl.signal);
  done.catch(() => undefined);
  const waitFor = async (event: string, ms: number): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const e = events.find((x) => x.event === event);
      if (e) return e;
      if (Date.now() > deadline) throw new Error(`no '${event}' event within ${ms} ms; stderr:\n${stderr}`);
      await Promise.race([done.then(() => undefined, (x: Error) => { throw new Error(`up ended: ${x.message}`); }), new Promise((r) => setTimeout(r, 20))]);
    }
  };
  const stop = async (): Promise<void> => {
    ctl.abort(new Error('test done'));
    await done;
  };
  cleanups.push(() => stop().catch(() => undefined));
  return { events, stderr: () => stderr, done, stop, waitFor };
}

/** The sidecar as the pod runs it: sshd as the non-root user, the environment's sshd_config, the Secrets' files. */
export async function startSidecar(reversePorts: readonly number[] = []): Promise<Sshd> {
  const { stdout } = await captureKeys();
  const docs = parseAllDocuments(stdout).map((d) => d.toJS());
  const mounted = path.join(tmp, 'mounted');
  fs.mkdirSync(mounted, { mode: 0o755 });
  fs.chmodSync(tmp, 0o755);
  const hostKey = path.join(mounted, 'ssh_host_ed25519_key');
  const ak = path.join(mounted, 'authorized_keys');
  // Owned by root and readable by the pod's group in Kubernetes (fsGroup); here, readable by all.
  fs.writeFileSync(hostKey, Buffer.from(docs[0].data.ssh_host_ed25519_key, 'base64'), { mode: 0o644 });
  fs.writeFileSync(ak, Buffer.from(docs[1].data.authorized_keys, 'base64'), { mode: 0o644 });
  const sshd = await startSshd({
    user: USER,
    asUser: true,
    config: (p) => renderSshdConfig({ port: p.port, user: USER, listenAddress: '127.0.0.1', hostKey, authorizedKeysFile: ak, pidFile: p.pidFile, reversePorts }),
  });
  cleanups.push(() => sshd.close());
  fs.chownSync(remote, sshd.uid, sshd.gid);
  return sshd;
}

export async function captureKeys(): Promise<{ stdout: string }> {
  const out = new PassThrough();
  let stdout = '';
  out.on('data', (d: Buffer) => (stdout += d.toString()));
  await runKeys({ env: envFile, name: 'api' }, { stdout: out, stderr: new PassThrough() });
  return { stdout };
}

export function world(w: FakeWorld): void {
  fake.setWorld({ secrets: ['team-web/api-ssh-host-keys', 'team-web/api-ssh-authorized-keys'], ...w });
}

export function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

beforeEach(() => {
  saved = { ...process.env };
  tmp = tempDir('up');
  project = path.join(tmp, 'project');
  remote = path.join(tmp, 'remote', 'workspace');
  fs.mkdirSync(path.join(project, 'dist'), { recursive: true });
  fs.mkdirSync(path.join(project, 'src'));
  fs.mkdirSync(remote, { recursive: true });
  fs.chmodSync(path.join(tmp, 'remote'), 0o755);
  envFile = path.join(project, 'dist', 'app.k8s.yaml');
  writeEnv(spec());
  process.env.XDG_CONFIG_HOME = path.join(tmp, 'config');
  fake = makeFakeKubectl();
  Object.assign(process.env, fake.env);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  fake.remove();
  process.env = saved;
  fs.rmSync(tmp, { recursive: true, force: true });
});
