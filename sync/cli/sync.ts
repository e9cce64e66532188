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
import type { SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { EXIT_FAILURE, NotServed, RunFailed } from '../errors';
import { BatchStats, SyncOptions, SyncSession } from '../engine/session';
import { resolveSessions, SyncCommandOptions } from '../attach/sync-options';
import type { TwoWayOptions, TwoWaySession } from '../engine/two-way';
import { WATCH_CHOICES } from '../engine/watch';

export type { SyncCommandOptions } from '../attach/sync-options';

export interface SyncIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Process signals to stop on; tests pass an AbortSignal instead. */
  readonly signal?: AbortSignal;
  /** The agent: only one-shot runs (a watching run is refused with NotServed before it starts). */
  readonly onlyOnce?: boolean;
}

export { resolveSessions };

function human(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/* eslint-disable @typescript-eslint/no-require-imports -- loaded only when used: start-up is part of every run */
/** The session for a folder; the two-way engine's modules load only for a two-way folder. */
function sessionFor(c: SyncOptions | TwoWayOptions): SyncSession | TwoWaySession {
  if (c.mode !== 'two-way') return new SyncSession(c);
  return (require('../engine/two-way') as typeof import('../engine/two-way')).createSession(c);
}

/** A progress bar on a terminal (cli-progress loads on the first one). */
function newBar(options: ConstructorParameters<typeof SingleBar>[0]): SingleBar {
  return new (require('cli-progress') as typeof import('cli-progress')).SingleBar(options);
}
/* eslint-enable @typescript-eslint/no-require-imports */

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
  const all = configs.map((c) => sessionFor(c));
  // Both kinds share SyncSession's lifecycle and events; two-way adds 'pulled' and 'conflict' (below).
  const sessions = all.map((s) => s as unknown as SyncSession);
  const stopCtl = new AbortController();
  const stop = (): void => stopCtl.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  io.signal?.addEventListener('abort', stop, { once: true });
  if (io.signal?.aborted) stop(); // stopped before it began (the agent's client already left)
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
        // ---- two-way events ----
        if (c.mode === 'two-way') {
          const tw = all[sessions.indexOf(s)] as TwoWaySession;
          tw.on('pulled', (p) => {
            json({ event: 'pulled', folder: c.localRoot, remote: c.remoteRoot, files: p.paths.length, deleted: p.deleted.length, bytes: p.bytes, ms: Math.round(p.ms * 10) / 10 });
            say(`pulled ${p.paths.length} file(s), deleted ${p.deleted.length} locally, ${human(p.bytes)} in ${p.ms.toFixed(0)} ms`);
          });
          tw.on('conflict', (k) => {
            json({ event: 'conflict', folder: c.localRoot, remote: c.remoteRoot, path: k.rel, copy: k.copy, why: k.why });
            io.stderr.write(`kubedev: conflict: '${k.rel}' ${k.why}; the local file is unchanged${k.copy ? `, the remote version is in '${k.copy}'` : ', the remote version stays on the server'}. Resolve with: kubedev conflicts --take local|remote ${k.rel}\n`);
          });
        }
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
              bar = newBar({ stream: io.stderr, format: `kubedev: {bar} {percentage}% | {value}/{total} MB | {rate} MB/s | ${p.files} entries`, hideCursor: true, clearOnComplete: true });
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
          say(`${c.mode === 'two-way' ? 'syncing (two-way)' : 'mirroring'} ${c.localRoot} ${c.mode === 'two-way' ? 'with' : 'to'} ${where}`);
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

/**
 * Registers `kubedev sync`; with `io` (the agent), the run writes there instead of the process's
 * streams; `run` replaces the run itself (the agent's warm-up only reads the options).
 */
export function registerSync(program: Command, io?: SyncIo, run: (o: SyncCommandOptions, io?: SyncIo) => Promise<number> = runSync): void {
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
    .option('--mode <mode>', "'mirror' (one-way, local wins; the default) or 'two-way' (default with --env: the folder's)")
    .option('--watch <backend>', `how changes are noticed: ${WATCH_CHOICES.join('|')} (default auto: per-folder inotify on Linux, native recursive on macOS/Windows, poll on network folders)`)
    .option('--once', 'mirror once and exit')
    .option('--json', 'one JSON event per line on stdout')
    .option('--progress', 'human progress on stderr even when it is not a terminal')
    .action(async (opts: SyncCommandOptions) => {
      if (io?.onlyOnce && opts.once !== true) throw new NotServed();
      const code = await run(opts, io);
      if (code === 0) return;
      if (io) throw new RunFailed(code);
      process.exitCode = code;
    });
}
