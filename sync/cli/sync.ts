/**
 * `kubedev sync`: mirror local folders into a dev environment over SSH (one-way, local wins).
 *
 *   kubedev sync --local DIR --remote /abs --host H --port P --user U --identity KEY --known-hosts FILE
 *                [--once] [--json] [--ignore PATTERN ...] [--watch auto|per-folder|parcel|recursive|poll]
 *   kubedev sync --env dist/app.k8s.yaml --name NAME [--once] [--json]
 *
 * Exit codes: 0 done (or interrupted by SIGINT/SIGTERM after the batch in flight), 2 bad usage or
 * configuration (checked before connecting), 1 failure at run time.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { AttachRecordError, pickAttachRecord } from '../../lib/attach';
import { KubeObject } from '../../lib/k8s';
import { EXIT_FAILURE, UsageError } from '../errors';
import { BatchStats, SyncOptions, SyncSession } from '../engine/session';
import { checkIdentity, checkIgnore, checkLocalRoot, checkRemoteRoot } from '../attach/checks';
import { keyPaths } from '../attach/key-store';
import { WATCH_CHOICES, WatchChoice } from '../engine/watch';

export interface SyncCommandOptions {
  readonly local?: string;
  readonly remote?: string;
  readonly host?: string;
  readonly port?: string;
  readonly user?: string;
  readonly identity?: string;
  readonly knownHosts?: string;
  readonly once?: boolean;
  readonly json?: boolean;
  readonly progress?: boolean;
  readonly ignore?: string[];
  readonly env?: string;
  readonly name?: string;
  readonly watch?: string;
}

export interface SyncIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Process signals to stop on; tests pass an AbortSignal instead. */
  readonly signal?: AbortSignal;
}

function parsePort(v: string | undefined, flag: string): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v) || n < 1 || n > 65535) {
    throw new UsageError(`${flag} must be a TCP port number from 1 to 65535 (got '${v}'). Pass the port the server's sshd listens on`);
  }
  return n;
}

function needFile(file: string, flag: string, what: string): string {
  const abs = path.resolve(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new UsageError(`${flag} '${file}' does not exist. Pass ${what}`);
  }
  if (!st.isFile()) throw new UsageError(`${flag} '${file}' is not a file. Pass ${what}`);
  try {
    fs.accessSync(abs, fs.constants.R_OK);
  } catch {
    throw new UsageError(`${flag} '${file}' is not readable. Fix its permissions, or pass ${what}`);
  }
  return abs;
}

function needDir(dir: string, flag: string): string {
  const abs = path.resolve(dir);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch {
    st = undefined;
  }
  if (!st?.isDirectory()) throw new UsageError(`${flag} '${dir}' is not an existing folder. Pass the local folder to mirror`);
  return abs;
}

function parseWatch(v: string | undefined): WatchChoice {
  if (v === undefined) return 'auto';
  if ((WATCH_CHOICES as readonly string[]).includes(v)) return v as WatchChoice;
  throw new UsageError(`--watch '${v}' is not a watch backend. Pass one of ${WATCH_CHOICES.join(', ')} (auto picks by platform; poll for network folders)`);
}

/** Turns flags into one session per folder, or a UsageError naming the flag at fault. */
export function resolveSessions(o: SyncCommandOptions): SyncOptions[] {
  const ignore = checkIgnore(o.ignore ?? [], '--ignore');
  const watch = !o.once;
  const watchBackend = parseWatch(o.watch);
  if (o.env !== undefined || o.name !== undefined) {
    if (o.env === undefined) throw new UsageError(`--name needs --env: pass --env dist/<app>.k8s.yaml --name ${o.name}`);
    if (o.name === undefined) throw new UsageError(`--env needs --name: pass the environment's name, e.g. --env ${o.env} --name my-env`);
    if (o.local !== undefined || o.remote !== undefined) throw new UsageError('--env takes the folders from the environment: drop --local and --remote, or drop --env and --name');
    const file = needFile(o.env, '--env', 'a YAML file synthesized by kubedev (npm run synth)');
    let objects: KubeObject[];
    try {
      const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
      objects = [];
      for (const d of Array.isArray(docs) ? docs : [docs]) {
        if (d.errors.length > 0) throw new Error(d.errors[0].message);
        const v = d.toJS() as KubeObject | null;
        if (v && typeof v === 'object') objects.push(v);
      }
    } catch (e) {
      throw new UsageError(`--env '${o.env}' is not valid YAML (${(e as Error).message.split('\n')[0]}). Synthesize it again (npm run synth)`);
    }
    let record;
    try {
      record = pickAttachRecord(objects, o.name, o.env);
    } catch (e) {
      if (e instanceof AttachRecordError) throw new UsageError(e.message);
      throw e;
    }
    const keys = keyPaths(record.namespace, record.name);
    const keyFix = `the client key ('kubedev keys --env ${o.env} --name ${o.name}' makes one in ${keys.dir})`;
    const identity = checkIdentity(needFile(o.identity ?? keys.clientKey, '--identity', keyFix), '--identity', keyFix);
    const knownHosts = needFile(o.knownHosts ?? keys.knownHosts, '--known-hosts', `a known_hosts file listing the sidecar's host key ('kubedev keys --env ${o.env} --name ${o.name}' writes one)`);
    const host = o.host ?? '127.0.0.1';
    const port = o.port === undefined ? record.ssh.port : parsePort(o.port, '--port');
    const user = o.user ?? record.ssh.user;
    return record.folders.map((f, i) => ({
      localRoot: checkLocalRoot(needDir(f.local, `local folder '${f.local}' of environment '${record.name}' (from --env; relative to the current folder)`), `folders[${i}].local`),
      remoteRoot: checkRemoteRoot(f.remote, `folders[${i}].remote`, `attach record of '${record.name}', field`),
      host,
      port,
      user,
      identity,
      knownHosts,
      ignore: [...checkIgnore(f.ignore, `folders[${i}].ignore`), ...ignore],
      watch,
      watchBackend,
    }));
  }
  const missing = (['local', 'remote', 'host', 'port', 'user', 'identity', 'knownHosts'] as const).filter((k) => o[k] === undefined);
  if (missing.length > 0) {
    const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    throw new UsageError(`missing ${missing.map(flag).join(', ')}. Pass --local DIR --remote /abs/path --host H --port P --user U --identity KEY --known-hosts FILE, or --env FILE --name NAME`);
  }
  return [
    {
      localRoot: checkLocalRoot(needDir(o.local as string, '--local'), '--local'),
      remoteRoot: checkRemoteRoot(o.remote, '--remote'),
      host: o.host as string,
      port: parsePort(o.port, '--port'),
      user: o.user as string,
      identity: checkIdentity(needFile(o.identity as string, '--identity', 'the private key the server accepts'), '--identity', 'the private key the server accepts'),
      knownHosts: needFile(o.knownHosts as string, '--known-hosts', "a known_hosts file that lists the server's host key"),
      ignore,
      watch,
      watchBackend,
    },
  ];
}

function human(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** Runs the command; resolves to the exit code. */
export async function runSync(o: SyncCommandOptions, io: SyncIo = process): Promise<number> {
  const configs = resolveSessions(o);
  const json = (obj: Record<string, unknown>): void => {
    if (o.json) io.stdout.write(`${JSON.stringify(obj)}\n`);
  };
  const progress = o.progress || (!o.json && io.stderr.isTTY === true) || (o.json && io.stderr.isTTY === true);
  const say = (line: string): void => {
    if (progress) io.stderr.write(`kubedev: ${line}\n`);
  };
  const sessions = configs.map((c) => new SyncSession(c));
  const stopCtl = new AbortController();
  const stop = (): void => stopCtl.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  io.signal?.addEventListener('abort', stop, { once: true });
  const t0 = performance.now();
  let failed: Error | undefined;
  try {
    await Promise.all(
      sessions.map(async (s) => {
        const c = s.options;
        const where = `${c.user}@${c.host}:${c.port}:${c.remoteRoot}`;
        s.on('warning', (m) => {
          json({ event: 'warning', folder: c.localRoot, message: m });
          io.stderr.write(`kubedev: warning: ${m}\n`);
        });
        s.on('reconnecting', (r) => {
          json({ event: 'reconnecting', folder: c.localRoot, attempt: r.attempt, delayMs: r.delayMs, reason: r.reason });
          say(`${r.reason}; reconnecting in ${(r.delayMs / 1000).toFixed(1)} s (attempt ${r.attempt})`);
        });
        s.on('synced', (b: BatchStats) => {
          json({ event: 'synced', folder: c.localRoot, remote: c.remoteRoot, files: b.files, deleted: b.deleted, bytes: b.bytes, ms: Math.round(b.ms * 10) / 10, method: b.method });
          say(`synced ${b.files} file(s), deleted ${b.deleted}, ${human(b.bytes)} in ${b.ms.toFixed(0)} ms`);
        });
        s.on('error', (e) => json({ event: 'error', folder: c.localRoot, message: e.message }));
        // Progress of a big batch: a bar on a terminal, a line a second otherwise (with --progress).
        let bar: SingleBar | undefined;
        let lastLine = 0;
        const t0Batch = { at: performance.now() };
        const endBar = (): void => {
          bar?.stop();
          bar = undefined;
        };
        s.on('progress', (p) => {
          if (!progress || p.total < 4 * 1024 * 1024) return;
          const rate = p.sent / 1e6 / Math.max(0.001, (performance.now() - t0Batch.at) / 1000);
          if (io.stderr.isTTY) {
            if (!bar) {
              t0Batch.at = performance.now();
              bar = new SingleBar({ stream: io.stderr, format: `kubedev: {bar} {percentage}% | {value}/{total} MB | {rate} MB/s | ${p.files} entries`, hideCursor: true, clearOnComplete: true });
              bar.start(Math.ceil(p.total / 1e6), 0, { rate: '0' });
            }
            bar.update(Math.floor(p.sent / 1e6), { rate: rate.toFixed(1) });
          } else if (performance.now() - lastLine > 1000) {
            lastLine = performance.now();
            say(`sent ${human(p.sent)} of ~${human(p.total)} (${rate.toFixed(1)} MB/s)`);
          }
        });
        s.on('synced', endBar);
        s.on('ready', endBar);
        const onStop = (): void => void s.close();
        stopCtl.signal.addEventListener('abort', onStop, { once: true });
        try {
          say(`mirroring ${c.localRoot} to ${where}`);
          const r = await s.start({ signal: stopCtl.signal }).finally(endBar);
          if (o.once) {
            json({ event: 'synced', folder: c.localRoot, remote: c.remoteRoot, files: r.files, deleted: r.deleted, bytes: r.bytes, ms: Math.round(r.ms * 10) / 10, method: r.method, total: r.total });
            io.stderr.write(`kubedev: mirrored ${c.localRoot} to ${where}: ${r.files} sent, ${r.deleted} deleted, ${human(r.bytes)} in ${(r.ms / 1000).toFixed(2)} s (${r.total} entries in sync)\n`);
            await s.close();
            return;
          }
          json({ event: 'ready', folder: c.localRoot, remote: c.remoteRoot, files: r.files, deleted: r.deleted, bytes: r.bytes, total: r.total, seconds: Math.round(r.ms) / 1000 });
          say(`ready: ${r.total} entries in sync (${r.files} sent, ${human(r.bytes)} in ${(r.ms / 1000).toFixed(2)} s); watching for changes`);
          await s.done;
        } finally {
          stopCtl.signal.removeEventListener('abort', onStop);
        }
      }),
    );
  } catch (e) {
    failed = e as Error;
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    io.signal?.removeEventListener('abort', stop);
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
  }
  if (failed && !(stopCtl.signal.aborted && /closed|aborted/.test(failed.message))) {
    io.stderr.write(`kubedev: ${failed.message}\n`);
    json({ event: 'error', message: failed.message });
    return EXIT_FAILURE;
  }
  if (stopCtl.signal.aborted) say(`stopped after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}

export function registerSync(program: Command): void {
  program
    .command('sync')
    .description('Mirror local files into a dev environment over SSH (one-way, local wins).')
    .option('--local <dir>', 'local folder to mirror')
    .option('--remote <path>', 'absolute remote folder')
    .option('--host <host>', 'SSH server address (default with --env: 127.0.0.1)')
    .option('--port <port>', 'SSH server port (default with --env: the environment\'s)')
    .option('--user <user>', 'SSH user (default with --env: the environment\'s)')
    .option('--identity <file>', 'private key file (default with --env: ~/.config/kubedev/keys/<ns>/<name>/id_ed25519)')
    .option('--known-hosts <file>', 'known_hosts file with the server\'s key (default with --env: beside the identity)')
    .option('--env <file>', 'synthesized YAML holding the environment (with --name)')
    .option('--name <name>', 'environment name inside --env')
    .option('--ignore <pattern...>', 'gitignore-syntax pattern neither sent nor deleted (repeatable)')
    .option('--once', 'mirror once and exit')
    .option('--watch <backend>', `how changes are noticed: ${WATCH_CHOICES.join('|')} (default auto: per-folder inotify on Linux, native recursive on macOS/Windows, poll on network folders)`)
    .option('--json', 'one JSON event per line on stdout')
    .option('--progress', 'human progress on stderr even when it is not a terminal')
    .action(async (opts: SyncCommandOptions) => {
      const code = await runSync(opts);
      if (code !== 0) process.exitCode = code;
    });
}
