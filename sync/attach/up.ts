/**
 * `kubedev up`: from an attach record to a live mirror. Read the record (file or cluster), check the
 * keys, wait for the sidecar, port-forward SSH and the declared ports to 127.0.0.1, start one
 * SyncSession per sync folder, show status, and on abort (Ctrl-C) let the batch in flight finish, then
 * close the sessions and the forwards.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { UsageError } from '../errors';
import { checkIdentity, checkLocalRoot, checkRemoteRoot } from './checks';
import { keyPaths, missingKeys } from './key-store';
import { HostKeyError, SyncSession } from '../engine/session';
import { createSession, TwoWaySession } from '../engine/two-way';
import { KubectlError, checkKubeconfig, kubectl } from './kubectl';
import { ForwardMapping, PortForward } from './forward';
import { waitForPod } from './pod';
import { loadTarget, TargetOptions } from './record';
import { FolderStatus, StatusIO, StatusLine } from './status';
import { DevLoop } from './dev-loop';
import { recordSession } from './leave';
import { ReverseForwards } from './reverse';
import { TakeOverError, takeOver } from './takeover';
import { SHELL, execInDev } from './shell';

/** How long `up` waits for the pod by default. */
export const DEFAULT_UP_TIMEOUT_SECONDS = 300;

export interface UpOptions extends TargetOptions {
  /** Seconds to wait for the pod. @default DEFAULT_UP_TIMEOUT_SECONDS */
  readonly timeout?: number;
  /** Folder the record's relative local paths are resolved against. @default process.cwd() */
  readonly root?: string;
  /** Forward the environment's declared ports. @default true */
  readonly ports?: boolean;
  /** JSON events on stdout. @default false */
  readonly json?: boolean;
  /** Poll interval while waiting for the pod. @default 1000 */
  readonly pollMs?: number;
  /**
   * Open an interactive shell when the environment declares no process. `up` passes true when stdin
   * and stdout are terminals and --json is off.
   * @default false
   */
  readonly shell?: boolean;
  /** Tests: the supervisor's control folder as the (harness) sshd sees it. @default the record's */
  readonly controlDir?: string;
}

/** A free TCP port on 127.0.0.1 (the OS picks). */
export function freeLocalPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether `port` on 127.0.0.1 can be listened on now. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function usage(e: unknown): never {
  if (e instanceof KubectlError) throw new UsageError(e.message);
  throw e;
}

/**
 * Runs `kubedev up` until `signal` aborts (resolves) or something fatal happens (rejects with a
 * message naming the fault and the fix).
 */
export async function runUp(options: UpOptions, io: StatusIO, signal: AbortSignal): Promise<number> {
  const target = await loadTarget(options);
  const { record, flags } = target;
  const id = `${record.namespace}/${record.name}`;

  // Everything checkable locally, before the cluster is asked anything.
  const keys = keyPaths(record.namespace, record.name);
  const missing = missingKeys(keys);
  if (missing.length > 0) {
    throw new UsageError(`no key for ${id}: ${missing.join(', ')} missing. Make the keys and their Secrets: kubedev keys ${flags} --apply`);
  }
  checkIdentity(keys.clientKey, 'identity', `the key kubedev keys makes: kubedev keys ${flags} --rotate --apply`);
  const root = path.resolve(options.root ?? process.cwd());
  const folders = record.folders.map((f) => ({ ...f, localPath: path.resolve(root, f.local) }));
  for (const [i, f] of folders.entries()) {
    checkRemoteRoot(f.remote, `folders[${i}].remote`, `attach record of '${record.name}', field`);
    const st = fs.statSync(f.localPath, { throwIfNoEntry: false });
    if (!st?.isDirectory()) {
      throw new UsageError(`sync folder '${f.local}' (for ${f.remote}) is not a folder under ${root}. Run kubedev up from the project folder, or pass --root DIR.`);
    }
    checkLocalRoot(f.localPath, `sync folder '${f.local}'`);
  }
  try {
    checkKubeconfig();
  } catch (e) {
    usage(e);
  }

  const status = new StatusLine(record.name, io, { json: options.json ?? false });
  // `kubedev down` finds this process by this file and ends it.
  const forgetSession = recordSession(record);
  const forwards: PortForward[] = [];
  const sessions: SyncSession[] = [];
  let loop: DevLoop | undefined;
  let reverse: ReverseForwards | undefined;
  let exitCode = 0;
  let attached = false;
  try {
    // The key Secrets must exist, or the pod never starts: say so now rather than after the timeout.
    try {
      await kubectl(['get', 'secret', record.ssh.hostKeySecret, record.ssh.authorizedKeysSecret, '-n', record.namespace, '-o', 'name'], { context: options.context, signal });
    } catch (e) {
      if (e instanceof KubectlError && e.kind === 'not-found') {
        const which = /secrets? "([^"]+)"/.exec(e.stderr)?.[1] ?? `${record.ssh.hostKeySecret} or ${record.ssh.authorizedKeysSecret}`;
        throw new UsageError(`the key Secret '${which}' is missing in namespace '${record.namespace}'. Create it: kubedev keys ${flags} --apply`);
      }
      // A role that may not read these Secrets can still attach: the pod tells whether they exist.
      if (!(e instanceof KubectlError && e.kind === 'forbidden')) usage(e);
    }

    // Replace mode: the original is scaled to 0 (its count kept in kubedev.io/replicas) and the parked
    // twin started, before waiting for its pod. No-op for a record without takeOver; `down` releases.
    if (record.takeOver) {
      try {
        status.say((await takeOver(record, { context: options.context, signal })).message);
      } catch (e) {
        if (e instanceof TakeOverError && e.kind !== 'raced') throw new UsageError(e.message);
        throw e;
      }
    }
    status.setPhase('waiting for the pod');
    status.event('waiting', { namespace: record.namespace, pod: record.pod });
    let pod;
    try {
      pod = await waitForPod(record, {
        context: options.context,
        timeoutMs: (options.timeout ?? DEFAULT_UP_TIMEOUT_SECONDS) * 1000,
        intervalMs: options.pollMs,
        signal,
        flags,
        onState: (s) => {
          if (!s.sidecarReady) status.say(`pod ${record.namespace}/${s.pod ?? record.pod ?? record.name}: ${s.waiting}`);
          status.event('pod', { phase: s.phase, ready: s.sidecarReady, waiting: s.waiting, dev: s.dev });
        },
      });
    } catch (e) {
      if (signal.aborted) return 0; // Ctrl-C while waiting: nothing to undo
      if (e instanceof KubectlError) throw new Error(e.message);
      throw e;
    }
    const podName = pod.pod ?? record.pod ?? record.name;
    status.say(`pod ${record.namespace}/${podName} is running (sidecar ready; dev container ${pod.dev})`);

    // SSH on a port the OS picks; declared ports on the same number locally when free.
    const ssh: ForwardMapping = { name: 'ssh', remote: record.ssh.port, local: await freeLocalPort() };
    const sshForward = new PortForward({ namespace: record.namespace, pod: podName, mappings: [ssh], context: options.context, flags });
    forwards.push(sshForward);
    sshForward.on('restarting', (r) => status.say(`ssh port-forward ended (${r.reason}); restarting in ${(r.delayMs / 1000).toFixed(1)} s`));
    await sshForward.start();
    status.event('forward', { name: 'ssh', local: ssh.local, remote: ssh.remote });

    const appPorts: ForwardMapping[] = [];
    if (options.ports !== false) {
      for (const p of record.ports) {
        if (p.protocol && p.protocol !== 'TCP') continue; // kubectl port-forward carries TCP only
        const local = (await portIsFree(p.port)) ? p.port : await freeLocalPort();
        appPorts.push({ name: p.name, remote: p.port, local });
      }
    }
    if (appPorts.length > 0) {
      const appForward = new PortForward({ namespace: record.namespace, pod: podName, mappings: appPorts, context: options.context, flags });
      forwards.push(appForward);
      appForward.on('restarting', (r) => status.say(`port-forward of ${appPorts.map((m) => m.name).join(', ')} ended (${r.reason}); restarting`));
      await appForward.start();
      for (const m of appPorts) status.event('forward', { name: m.name, local: m.local, remote: m.remote });
    }
    const shown = [ssh, ...appPorts].map((m) => `${m.name} 127.0.0.1:${m.local} -> ${m.remote}${m.name !== 'ssh' && m.local !== m.remote ? ' (port was busy)' : ''}`);
    status.say(`forwarding ${shown.join(', ')}`);

    // The dev process: its log followed from now on, so the first start's output is seen.
    const connect = { host: '127.0.0.1', port: ssh.local, user: record.ssh.user, identity: keys.clientKey, knownHosts: keys.knownHosts };
    if (record.process) {
      loop = new DevLoop({ record, connect, status, json: options.json ?? false, context: options.context, controlDir: options.controlDir });
      loop.startLog();
    }

    if (record.reverse && record.reverse.length > 0) {
      reverse = new ReverseForwards(connect, record.reverse);
      reverse.on('warning', (m) => status.say(m));
      await reverse.start();
      const shownReverse = record.reverse.map((r) => `${r.name} pod 127.0.0.1:${r.remote} -> here 127.0.0.1:${r.local}`);
      status.say(`reverse forwarding ${shownReverse.join(', ')}`);
      for (const r of record.reverse) status.event('reverse', { ...r });
    }

    // One mirror per sync folder.
    attached = true;
    const firstPaths: string[] = [];
    let everything = false;
    let changed = false;
    status.setPhase('first mirror');
    let fatal: Error | undefined;
    let wake: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const onAbort = (): void => wake();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const starts = folders.map(async (f) => {
        const folder: FolderStatus = { local: f.local, remote: f.remote, files: 0, bytes: 0, state: 'connecting' };
        status.folders.push(folder);
        // ---- two-way: the folder's mode picks the session (both share SyncSession's lifecycle and events) ----
        const made = createSession({
          localRoot: f.localPath,
          remoteRoot: f.remote,
          host: '127.0.0.1',
          port: ssh.local,
          user: record.ssh.user,
          identity: keys.clientKey,
          knownHosts: keys.knownHosts,
          ignore: f.ignore,
          mode: f.mode,
          remoteOwns: f.remoteOwns,
          localOwns: f.localOwns,
        });
        if (made instanceof TwoWaySession) {
          made.on('pulled', (p) => status.event('pulled', { folder: f.remote, files: p.paths.length, deleted: p.deleted.length, bytes: p.bytes, ms: Math.round(p.ms) }));
          made.on('conflict', (c) => {
            status.say(`${f.remote}: conflict: '${c.rel}' ${c.why}; your file is unchanged${c.copy ? `, the container's version is in '${c.copy}'` : ''}. Resolve with kubedev conflicts`);
            status.event('conflict', { folder: f.remote, path: c.rel, copy: c.copy, why: c.why });
          });
        }
        const session = made as unknown as SyncSession;
        sessions.push(session);
        session.on('synced', (b) => {
          loop?.synced(b.paths);
          status.batch(folder, b);
          status.event('synced', { folder: f.remote, files: b.files, deleted: b.deleted, bytes: b.bytes, ms: Math.round(b.ms) });
        });
        session.on('reconnecting', (r) => {
          status.say(`${f.remote}: connection lost (${r.reason}); retry ${r.attempt} in ${(r.delayMs / 1000).toFixed(1)} s`);
          status.event('reconnecting', { folder: f.remote, attempt: r.attempt, delayMs: r.delayMs, reason: r.reason });
        });
        session.on('warning', (m) => status.say(`${f.remote}: ${m}`));
        session.on('error', (e) => {
          fatal ??= explainSyncError(e, flags);
          status.error(fatal.message);
          status.event('error', { folder: f.remote, message: fatal.message });
          wake();
        });
        const ready = await session.start({ signal });
        if (ready.paths === undefined) everything = true;
        else firstPaths.push(...ready.paths);
        if (ready.files + ready.deleted > 0) changed = true;
        folder.files += ready.files + ready.deleted;
        folder.bytes += ready.bytes;
        status.event('folder-ready', { folder: f.remote, files: ready.files, bytes: ready.bytes, total: ready.total, ms: Math.round(ready.ms) });
      });
      const results = await Promise.allSettled(starts);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed && !signal.aborted) throw fatal ?? explainSyncError(failed.reason as Error, flags);
      if (!signal.aborted && !fatal) {
        status.setPhase('watching');
        status.say(`mirroring ${folders.map((f) => `${f.local} -> ${f.remote}`).join(', ')}; Ctrl-C to stop`);
        status.event('ready', { folders: folders.map((f) => f.remote), ssh: ssh.local, ports: Object.fromEntries(appPorts.map((m) => [m.name, m.local])) });
        loop?.firstMirror(everything ? undefined : firstPaths, changed);
        if (options.shell && (loop?.interactive ?? true)) {
          // No process declared: the developer's shell in the dev container; `up` ends when it does, with its code.
          status.say('no dev process declared: opening a shell in the dev container (exit it to stop kubedev up)');
          status.end();
          exitCode = await execInDev(record, SHELL, { stdin: true, tty: true, context: options.context, signal });
          wake();
        }
        await stopped;
      }
      if (fatal) throw fatal;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  } finally {
    status.setPhase('stopping');
    forgetSession();
    await loop?.close();
    await reverse?.close();
    // Sessions first (each finishes its batch in flight), then the forwards they ran over.
    await Promise.allSettled(sessions.map((s) => s.close()));
    await Promise.allSettled(forwards.map((f) => f.close()));
    status.end();
    if (attached) io.stderr.write(`kubedev: stopped ${record.name}: ${status.summary()}\n`);
    status.event('stopped', {});
  }
  return exitCode;
}

/** A mirror's fatal error, with the fix for the cases `up` knows. */
function explainSyncError(e: Error, flags: string): Error {
  if (e instanceof HostKeyError) {
    return new Error(`${e.message}. If the environment's keys were made again elsewhere, take the current ones: kubedev keys ${flags} --apply, then restart the pod`);
  }
  return e;
}
