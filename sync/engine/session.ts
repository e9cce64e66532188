/**
 * SyncSession: the runner's programmatic API (used by `kubedev sync` and `kubedev up`).
 *
 *   const s = new SyncSession({ localRoot, remoteRoot, host, port, user, identity, knownHosts });
 *   s.on('synced', (b) => ...);
 *   await s.start();          // connected, first mirror done ('ready'); watching unless watch: false
 *   await s.close();          // finishes the batch in flight, stops watching, disconnects
 *
 * State: one compact index (path -> type, size, mtime, mode, target) of what the remote holds. A full
 * pass (first mirror, every reconnect) rebuilds it from a remote listing and sends only what differs
 * (size + whole-second mtime + mode + link target), so a reconnect never resends what is there. Watch
 * events name dirty paths; each batch lstat's them, compares with the index and sends the difference.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { assertSafeRemoteRoot, remoteRootProblem, remoteRootShellCheck } from '../../lib/remote-root';
import { applyPlan, ApplyResult, remoteDelete } from './apply';
import { buildIgnore, IgnoreMatcher } from './ignore';
import { CompactIndex } from './index-store';
import { fingerprint } from './known-hosts';
import { emptyPlan, Plan, planDiff } from './plan';
import { AuthError, Connection, ConnectionError, HostKeyError, RemoteError } from './transport';
import { listingMarker, parseRemoteScan, RemoteListing, remoteScanCommand } from './remote-scan';
import { haltIfRootGone, keepRemoteFor, linkStaysInside, RootIdentity, rootIdentity } from './safety';
import { Entry, lstatOrUndefined, Refusal, scanLocal, scanLocalSync, ScanOptions, ScanResult, shQuote, Tree } from './tree';
import { TreeWatcher } from './watch';

export interface SyncOptions {
  /** Local folder to mirror. */
  readonly localRoot: string;
  /** Absolute remote folder. */
  readonly remoteRoot: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Private key file. */
  readonly identity: string;
  /** known_hosts file the server's key must be listed in. */
  readonly knownHosts: string;
  /** Extra gitignore-syntax patterns. @default [] */
  readonly ignore?: readonly string[];
  /** Keep watching after the first mirror. @default true */
  readonly watch?: boolean;
  /** Events are gathered this long before a batch starts. @default 5 */
  readonly coalesceMs?: number;
  /** Force the transfer method (benchmarks). @default chosen by batch size */
  readonly method?: 'tar' | 'sftp';
  /** Connection attempts before giving up when the first connection fails. @default 4 */
  readonly initialAttempts?: number;
  /** Longest wait between reconnection attempts. @default 10000 */
  readonly maxBackoffMs?: number;
  /**
   * A batch that makes no progress (no byte sent, no step finished) for this long is abandoned: the
   * connection is dropped and a full pass runs, with a warning naming what hung. @default 60000
   */
  readonly stallMs?: number;
}

export interface BatchStats {
  /** Files, folders and symlinks written. */
  readonly files: number;
  readonly deleted: number;
  readonly bytes: number;
  readonly ms: number;
  readonly method: 'tar' | 'sftp' | 'none';
}

export interface SyncEvents {
  connected: [info: { host: string; port: number; fingerprint?: string }];
  /** The first mirror is complete. */
  ready: [stats: BatchStats & { total: number }];
  /** A batch reached the remote. */
  synced: [stats: BatchStats];
  /** Bytes sent so far in the batch under way, of about `total` (tar headers included); throttled. */
  progress: [info: { sent: number; total: number; files: number }];
  /** The connection dropped; retrying after `delayMs`. */
  reconnecting: [info: { attempt: number; delayMs: number; reason: string }];
  warning: [message: string];
  /** Fatal: the session stopped. */
  error: [err: Error];
}

const DEFAULT_COALESCE_MS = 5;
const DEFAULT_STALL_MS = 60_000;
/** How often the watchdog looks at the scheduler. */
const WATCHDOG_MS = 1_000;
/** `--once`: rounds that re-send files which changed while they were sent, before giving up on them. */
const ONCE_ROUNDS = 5;
/** A batch deleting at least this share of what the remote holds waits SETTLE_MS and looks at the root again. */
const MASS_DELETE_SHARE = 0.5;
const SETTLE_MS = 300;
/** The longest a burst of events is gathered before its batch starts anyway. */
const MAX_WINDOW_MS = 40;

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** Sleeps, or rejects when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Whether an error means the connection is gone (retry) rather than a fault to report. */
export function isTransient(e: unknown): boolean {
  return e instanceof ConnectionError;
}

/** How long after the first mirror the young generation is trimmed (V8 judges the allocation rate over 5 s). */
const TRIM_AFTER_MS = 6_000;

type GcFunction = (options?: { type?: 'major' | 'minor' }) => void;

/** V8's gc() without the --expose-gc start-up flag; undefined if this V8 refuses. */
function gcFunction(): GcFunction | undefined {
  const own = (globalThis as { gc?: GcFunction }).gc;
  if (typeof own === 'function') return own;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as GcFunction) : undefined;
  } catch {
    return undefined;
  } finally {
    v8.setFlagsFromString('--no-expose-gc'); // only that one context gets gc()
  }
}

export class SyncSession extends EventEmitter<SyncEvents> {
  readonly options: SyncOptions;
  private readonly ig: IgnoreMatcher;
  private conn?: Connection;
  private watcher?: TreeWatcher;
  private index = new CompactIndex();
  private readonly dirty = new Set<string>();
  private needFull = true;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private closing?: Promise<void>;
  private fatal?: Error;
  private readonly abort = new AbortController();
  private hostFingerprint?: string;
  private readonly doneP: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;
  private readonly refusedReported = new Set<string>();
  private started = false;
  private trimTimer?: NodeJS.Timeout;
  private rootId?: RootIdentity;
  /** Files with several hard links: the key (dev:ino) of each name, and the names of each key. */
  private readonly linkKey = new Map<string, string>();
  private readonly linkNames = new Map<string, Set<string>>();
  private watchdog?: NodeJS.Timeout;
  /** What the batch under way is doing, and when it last made progress (the stall deadline). */
  private step?: { what: string; at: number };
  private readonly foreignReported = new Set<string>();

  constructor(options: SyncOptions) {
    super();
    assertSafeRemoteRoot(options.remoteRoot, 'remoteRoot', 'SyncSession option'); // lib's one check of a sync root: '/', system folders, not normalized
    this.options = { ...options, localRoot: path.resolve(options.localRoot) };
    this.ig = buildIgnore(this.options.localRoot, options.ignore ?? []);
    this.doneP = new Promise<void>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    this.doneP.catch(() => undefined);
  }

  /** Settles when the session ends: resolves on close(), rejects with the fatal error. */
  get done(): Promise<void> {
    return this.doneP;
  }

  /** Fingerprint of the server's host key once connected. */
  get fingerprint(): string | undefined {
    return this.hostFingerprint;
  }

  /** Connects, mirrors, and (unless watch: false) starts watching. Resolves when the first mirror is done. */
  async start(options: { signal?: AbortSignal } = {}): Promise<BatchStats & { total: number }> {
    const onAbort = (): void => void this.close();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const st = await fs.promises.stat(this.options.localRoot).catch(() => undefined);
      if (!st?.isDirectory()) throw new Error(`local folder '${this.options.localRoot}' does not exist or is not a folder. Pass an existing folder to --local`);
      this.rootId = rootIdentity(this.options.localRoot);
      this.startWatchdog();
      if (this.options.watch !== false) {
        // Folders are watched as the first pass lists them (TreeWatcher.add before each listing).
        this.watcher = new TreeWatcher(this.options.localRoot);
        this.watcher.on('dirty', (rels) => this.markDirty(rels));
        this.watcher.on('warning', (m) => this.emit('warning', m));
        this.watcher.on('error', (e) => this.fail(e));
      }
      const t0 = performance.now();
      // List the local tree while the SSH handshake is under way (the listing is synchronous; the
      // handshake's first packets are already out once the event loop turned once).
      this.setStep('connecting');
      const connecting = this.connectWithRetry(this.options.initialAttempts ?? 4, true);
      connecting.catch(() => undefined);
      await new Promise((r) => setImmediate(r));
      this.dirty.clear();
      let pre: ScanResult;
      try {
        pre = scanLocalSync(this.options.localRoot, this.ig, '', new CompactIndex(), [], this.scanOptions(true));
      } catch (e) {
        await connecting.catch(() => undefined); // so that shutdown closes the connection it made
        throw e;
      }
      await connecting;
      let stats = await this.firstPass(pre);
      if (this.options.watch === false) stats = await this.settleChanged(stats);
      this.step = undefined;
      const ready = { ...stats, ms: performance.now() - t0, total: this.index.size };
      this.started = true;
      this.emit('ready', ready);
      if (this.dirty.size > 0) this.schedule();
      if (this.watcher) this.trimMemory();
      return ready;
    } catch (e) {
      const err = this.fatal ?? (e as Error);
      await this.shutdown();
      this.rejectDone(err);
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Stops: the batch in flight finishes, the watcher stops, the connection closes. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.abortSoon();
      await this.shutdown();
      if (this.fatal) this.rejectDone(this.fatal);
      else this.resolveDone();
    })();
    return this.closing;
  }

  private abortSoon(): void {
    // Let the batch in flight finish; only backoff sleeps and watcher start-up are aborted.
    this.abort.abort(new Error('closed'));
  }

  private async shutdown(): Promise<void> {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.trimTimer) clearTimeout(this.trimTimer);
    this.trimTimer = undefined;
    await this.watcher?.close();
    await this.running?.catch(() => undefined);
    await this.conn?.close();
  }

  private fail(e: Error): void {
    if (this.fatal || this.closing) return;
    this.fatal = e;
    if (this.listenerCount('error') > 0) this.emit('error', e);
    void this.close();
  }

  // ---- connection ----

  private async connectWithRetry(attempts: number, first: boolean): Promise<void> {
    let wait = 200;
    for (let attempt = 1; ; attempt++) {
      this.abort.signal.throwIfAborted();
      try {
        const conn = await Connection.open({ ...this.options, signal: this.abort.signal });
        this.conn = conn;
        this.hostFingerprint = conn.fingerprint;
        conn.onDrop(() => {
          if (!this.closing) this.schedule(0);
        });
        if (first) await this.prepareRemote();
        this.emit('connected', { host: this.options.host, port: this.options.port, fingerprint: this.hostFingerprint });
        return;
      } catch (e) {
        if (e instanceof HostKeyError) {
          this.hostFingerprint = e.verdict.fingerprint;
          throw e;
        }
        if (!(e instanceof ConnectionError) || this.abort.signal.aborted) throw e;
        if (attempts > 0 && attempt >= attempts) throw e;
        const delayMs = Math.min(wait, this.options.maxBackoffMs ?? 10_000) * (0.8 + Math.random() * 0.4);
        this.emit('reconnecting', { attempt, delayMs: Math.round(delayMs), reason: e.message });
        await delay(delayMs, this.abort.signal);
        wait *= 2;
      }
    }
  }

  /** Creates the remote folder and checks it is a writable folder. */
  private async prepareRemote(): Promise<void> {
    const conn = this.conn as Connection;
    const r = this.options.remoteRoot;
    const script = [
      `r=${shQuote(r)}`,
      // The root as the server resolves it (symlinks followed), checked before anything is made there.
      'real=$(realpath -m -- "$r" 2>/dev/null) || real=$r',
      `( ${remoteRootShellCheck('real', 9)} ) || { printf '%s' "$real" >&2; exit 9; }`,
      'if [ -e "$r" ] && [ ! -d "$r" ]; then exit 3; fi',
      'mkdir -p -- "$r" || exit 4',
      '[ -w "$r" ] && [ -x "$r" ] || exit 5',
      'command -v tar >/dev/null 2>&1 || exit 6',
      'command -v find >/dev/null 2>&1 || exit 7',
      'exit 0',
    ].join('\n');
    const res = await conn.exec('sh -s', script, { signal: this.abort.signal });
    const at = `${this.options.user}@${this.options.host}`;
    const msg: Record<number, string> = {
      3: `remote path '${r}' on ${at} is a file, not a folder. Remove it or pass another --remote`,
      4: `cannot create remote folder '${r}' on ${at}: ${res.stderr.trim().replace(/\n/g, '; ')}. Create it with the right owner, or pass a --remote the user '${this.options.user}' may write`,
      5: `remote folder '${r}' on ${at} is not writable by '${this.options.user}'. Fix its owner or mode (chown/chmod), or pass another --remote`,
      6: `the server ${at} has no 'tar' on its PATH. Install tar in the sidecar image`,
      7: `the server ${at} has no 'find' on its PATH. Install findutils in the sidecar image`,
      9: `remote folder '${r}' on ${at} resolves to '${res.stderr}' on the server (through a symlink), which ${remoteRootProblem(res.stderr)?.what ?? 'is refused'}; nothing was written. Pass a --remote that is a folder of its own, e.g. '/workspace'`,
    };
    if (res.code !== 0) throw new RemoteError(msg[res.code ?? -1] ?? `preparing '${r}' on ${at} failed (exit ${res.code}): ${res.stderr.trim()}`, res.code, res.stderr);
  }

  private async ensureConnected(): Promise<Connection> {
    if (this.conn?.alive) return this.conn;
    if (this.conn) this.emit('reconnecting', { attempt: 0, delayMs: 0, reason: `connection to ${this.conn.where} lost` });
    await this.conn?.close();
    this.conn = undefined;
    this.needFull = true;
    await this.connectWithRetry(0, false);
    return this.conn as unknown as Connection;
  }

  // ---- full pass ----

  private async remoteScan(conn: Connection): Promise<RemoteListing> {
    this.setStep(`listing remote folder '${this.options.remoteRoot}'`);
    const marker = listingMarker();
    const res = await conn.exec(remoteScanCommand(this.options.remoteRoot, this.ig.prunableNames, marker), undefined, { signal: this.abort.signal });
    if (res.code !== 0) {
      if (/printf|unknown predicate|invalid/i.test(res.stderr)) {
        throw new RemoteError(`listing '${this.options.remoteRoot}' needs GNU find (find -printf) on the server: ${res.stderr.trim()}. Install findutils in the sidecar image`, res.code, res.stderr);
      }
      throw new RemoteError(`listing remote folder '${this.options.remoteRoot}' failed (exit ${res.code}): ${res.stderr.trim()}. Check that the user may read it`, res.code, res.stderr);
    }
    try {
      return parseRemoteScan(res.stdout, this.ig, marker);
    } catch {
      throw new RemoteError(`the listing of '${this.options.remoteRoot}' came back garbled (the server's login shell may print text at start). Make the shell start silently for non-interactive sessions`, res.code, res.stderr);
    }
  }

  /** The first mirror; a connection lost (or abandoned as stalled) meanwhile is retried like later passes. */
  private async firstPass(pre: ScanResult): Promise<BatchStats> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.fullPass(attempt === 1 ? pre : undefined);
      } catch (e) {
        if (!isTransient(e) || attempt >= 3 || this.closing) throw e;
      }
    }
  }

  /** Makes the remote equal to the local folder, from listings of both. */
  private async fullPass(prescanned?: ScanResult): Promise<BatchStats> {
    const t0 = performance.now();
    this.setStep('connecting');
    const conn = await this.ensureConnected();
    // Events from now on are kept for after this pass; the local listing starts after this point.
    if (!prescanned) this.dirty.clear();
    // A vanished, replaced or emptied local folder must not read as "delete everything remotely".
    this.checkRoot();
    if (!prescanned) this.clearHardLinks();
    // Both listings go straight into compact indexes: no Map of 100,000 objects, even for a moment.
    const [remote, local] = await Promise.all([
      this.remoteScan(conn),
      prescanned ?? scanLocal(this.options.localRoot, this.ig, '', new CompactIndex(), [], this.scanOptions(true)),
    ]);
    this.reportRefused(local.refused);
    this.reportForeign(remote.foreign);
    keepRemoteFor(local.refused, local.tree, remote.tree);
    const plan = planDiff(local.tree, remote.tree);
    plan.deletes.push(...remote.leftovers);
    this.beginProgress(plan);
    const res = await applyPlan(this.ctx(conn, remote.tree), plan);
    this.index = local.tree as CompactIndex;
    this.restoreUnsent(res, remote.tree);
    this.needFull = false;
    this.afterApply(res);
    return this.stats(plan, res, t0);
  }

  /** Files the plan did not put on the remote keep what the remote holds (or held) in the index. */
  private restoreUnsent(res: ApplyResult, before: Tree): void {
    for (const rel of res.unsent) {
      for (const k of this.subtree(rel).keys()) this.index.delete(k);
      const e = before.get(rel);
      if (!e) continue;
      this.index.set(rel, e);
      if (e.type !== 'dir') continue;
      for (const [k, v] of before) if (k.startsWith(`${rel}/`)) this.index.set(k, v);
    }
  }

  private afterApply(res: ApplyResult): void {
    for (const w of res.warnings) this.emit('warning', w);
    if (res.changed.length > 0) this.markDirty(res.changed);
  }

  /** `--once`: files that changed while they were sent are sent again, a few rounds at most. */
  private async settleChanged(first: BatchStats): Promise<BatchStats> {
    let { files, deleted, bytes } = first;
    for (let round = 0; round < ONCE_ROUNDS && this.dirty.size > 0 && !this.closing; round++) {
      const rels = [...this.dirty];
      this.dirty.clear();
      const conn = await this.ensureConnected();
      const more = await this.applyDirty(conn, rels);
      if (!more) continue;
      files += more.files;
      deleted += more.deleted;
      bytes += more.bytes;
    }
    if (this.dirty.size > 0) {
      const left = [...this.dirty].slice(0, 5);
      this.emit('warning', `${this.dirty.size} file(s) kept changing while they were sent (${left.join(', ')}${this.dirty.size > 5 ? ', ...' : ''}); their remote copies are the last complete ones sent, or unchanged. Run again when they are quiet`);
      this.dirty.clear();
    }
    return { ...first, files, deleted, bytes };
  }

  /** Called before each local folder is listed: watch it first, so nothing created meanwhile is missed. */
  private readonly onDir = (rel: string): void => this.watcher?.add(rel);

  private scanOptions(withDirs: boolean): ScanOptions {
    return { onDir: withDirs ? this.onDir : undefined, onHardLink: this.onHardLink };
  }

  private readonly onHardLink = (rel: string, key: string): void => {
    const old = this.linkKey.get(rel);
    if (old === key) return;
    if (old) this.linkNames.get(old)?.delete(rel);
    this.linkKey.set(rel, key);
    const names = this.linkNames.get(key) ?? new Set<string>();
    names.add(rel);
    this.linkNames.set(key, names);
  };

  private clearHardLinks(): void {
    this.linkKey.clear();
    this.linkNames.clear();
  }

  private checkRoot(): void {
    if (!this.rootId) return;
    haltIfRootGone(this.options.localRoot, this.rootId, this.index.size, (name, isDir) => this.ig.ignores(name, isDir));
  }

  private ctx(conn: Connection, remote: { get(rel: string): Entry | undefined }): Parameters<typeof applyPlan>[0] {
    return { conn, localRoot: this.options.localRoot, remoteRoot: this.options.remoteRoot, remote, signal: undefined, method: this.options.method, onBytes: this.countBytes, onStep: this.setStep };
  }

  private stats(plan: Plan, res: ApplyResult, t0: number): BatchStats {
    const planned = plan.files.length + plan.links.length + plan.dirs.length;
    const unsentBytes = res.unsent.reduce((n, rel) => n + (plan.files.find((f) => f.rel === rel)?.entry.size ?? 0), 0);
    return { files: planned - res.unsent.length, deleted: plan.deletes.length, bytes: Math.max(0, res.bytes - unsentBytes), ms: performance.now() - t0, method: res.method };
  }

  private progressState = { sent: 0, total: 0, files: 0, last: 0 };

  /** Starts progress accounting for a plan about to be applied. */
  private beginProgress(plan: Plan): void {
    const files = plan.files.length + plan.links.length + plan.dirs.length;
    this.progressState = { sent: 0, total: plan.files.reduce((n, f) => n + f.entry.size, 0) + 1024 * files, files, last: 0 };
  }

  private readonly countBytes = (n: number): void => {
    if (this.step) this.step.at = performance.now();
    const p = this.progressState;
    p.sent += n;
    const now = performance.now();
    if (now - p.last < 100 || this.listenerCount('progress') === 0) return;
    p.last = now;
    this.emit('progress', { sent: p.sent, total: Math.max(p.total, p.sent), files: p.files });
  };

  private reportRefused(refused: readonly { rel: string; reason: string }[]): void {
    for (const r of refused) {
      if (this.refusedReported.has(r.rel)) continue;
      this.refusedReported.add(r.rel);
      this.emit('warning', r.reason);
    }
  }

  /**
   * Watch mode, once, after the first mirror: give back the heap the first pass grew. On 100,000 files
   * it leaves ~35 MB of garbage in the old generation and a young generation grown to its maximum
   * (2 x 16 MB), and an idle watcher allocates too little for V8 to ever collect or shrink them: ~185 MB
   * resident for a ~31 MB index. One full GC just after start() resolves frees the former; V8 shrinks
   * the young generation only in a GC that sees a low allocation rate over the last 5 s, so one cheap
   * young-generation GC TRIM_AFTER_MS later (put off while a batch runs) returns it: ~128 MB (bench).
   */
  private trimMemory(): void {
    const gc = gcFunction();
    if (!gc) return;
    setImmediate(() => {
      if (!this.closing) gc();
    }).unref();
    const later = (): void => {
      this.trimTimer = setTimeout(() => {
        this.trimTimer = undefined;
        if (this.closing) return;
        if (this.running || this.timer) later();
        else gc({ type: 'minor' });
      }, TRIM_AFTER_MS).unref();
    };
    later();
  }

  // ---- watch batches ----

  private lastEventAt = 0;
  private windowStart = 0;

  private markDirty(rels: readonly string[]): void {
    if (this.closing || this.fatal) return;
    for (const r of rels) this.dirty.add(r);
    this.lastEventAt = performance.now();
    this.schedule();
  }

  /**
   * A batch starts once events have been quiet for `coalesceMs` (5 ms), or at the latest MAX_WINDOW_MS
   * after the first of them: one save is sent at once, a burst (a branch switch) goes as one batch.
   */
  private schedule(ms = this.options.coalesceMs ?? DEFAULT_COALESCE_MS): void {
    if (this.timer || this.closing) return;
    this.windowStart = performance.now();
    this.arm(ms, ms === 0);
  }

  private arm(ms: number, immediate: boolean): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const quiet = this.options.coalesceMs ?? DEFAULT_COALESCE_MS;
      const now = performance.now();
      if (!immediate && now - this.lastEventAt < quiet && now - this.windowStart < MAX_WINDOW_MS) {
        this.arm(Math.max(1, quiet - (now - this.lastEventAt)), false);
        return;
      }
      this.pump();
    }, ms);
  }

  /** Whether work is waiting: dirty paths, a full pass owed, or a connection to restore. */
  private get owed(): boolean {
    return this.dirty.size > 0 || this.needFull || !this.conn?.alive;
  }

  /**
   * Starts the batch loop unless it runs. Scheduler states: idle (no timer, not running, nothing owed),
   * armed (a timer), running (`running` set; events only add to `dirty`). `running` is cleared in a
   * `.finally` callback, which always runs after this assignment (never synchronously within it), and
   * work that arrived meanwhile is scheduled again there: no state holds work without a way out.
   */
  private pump(): void {
    if (this.running || !this.started || this.closing || this.fatal) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      this.step = undefined;
      if (!this.closing && !this.fatal && this.owed) this.schedule(0);
    });
  }

  private async drain(): Promise<void> {
    while (!this.closing && !this.fatal && this.owed) {
      try {
        if (!this.conn?.alive || this.needFull) {
          const stats = await this.fullPass();
          this.emit('synced', stats);
          continue;
        }
        const rels = [...this.dirty];
        this.dirty.clear();
        try {
          const stats = await this.applyDirty(this.conn, rels);
          if (stats) this.emit('synced', stats);
        } catch (e) {
          for (const r of rels) this.dirty.add(r);
          throw e;
        }
      } catch (e) {
        if (this.closing || this.abort.signal.aborted) return;
        if (isTransient(e)) {
          this.needFull = true;
          continue;
        }
        this.fail(e as Error);
        return;
      }
    }
  }

  private readonly setStep = (what: string): void => {
    this.step = { what, at: performance.now() };
  };

  /**
   * Never stall silently. Once a second: a batch without progress for `stallMs` is abandoned (the
   * connection dropped, a full pass owed, a warning naming the step that hung); work owed with no batch
   * running or armed is scheduled, with a warning (it means a scheduler bug, and must not cost a file).
   */
  private startWatchdog(): void {
    const stallMs = this.options.stallMs ?? DEFAULT_STALL_MS;
    this.watchdog = setInterval(() => {
      if (this.closing || this.fatal) return;
      const now = performance.now();
      if (this.step && now - this.step.at > stallMs) {
        const what = this.step.what;
        this.step.at = now;
        this.emit('warning', `no progress for ${Math.round(stallMs / 1000)} s while ${what}; dropping the connection and running a full pass`);
        this.needFull = true;
        this.conn?.destroy(`stalled while ${what}`);
        return;
      }
      if (this.started && !this.running && !this.timer && this.owed) {
        this.emit('warning', `${this.dirty.size} changed path(s) were waiting with no batch under way; sending them now`);
        this.schedule(0);
      }
    }, WATCHDOG_MS);
    this.watchdog.unref();
  }

  /** The top-most path above `rel` that the remote lacks as a folder (so new folders are sent whole). */
  private anchor(rel: string): string {
    let q = rel;
    for (let p = parentOf(q); p !== ''; p = parentOf(p)) {
      if (this.index.get(p)?.type !== 'dir') q = p;
    }
    return q;
  }

  private subtree(rel: string): Tree {
    const out: Tree = new Map();
    const e = this.index.get(rel);
    if (e) out.set(rel, e);
    if (e?.type === 'dir') {
      const prefix = `${rel}/`;
      for (const k of this.index.keys()) if (k.startsWith(prefix)) out.set(k, this.index.get(k) as Entry);
    }
    return out;
  }

  /** The dirty paths, plus every other name of a dirty file with several hard links (its folder saw nothing). */
  private withHardLinks(rels: readonly string[]): string[] {
    if (this.linkKey.size === 0) return [...rels];
    const out = new Set(rels);
    for (const r of rels) {
      const key = this.linkKey.get(r);
      if (key) for (const n of this.linkNames.get(key) ?? []) out.add(n);
    }
    return [...out];
  }

  private async applyDirty(conn: Connection, dirtyRels: string[]): Promise<BatchStats | undefined> {
    const t0 = performance.now();
    this.setStep('looking at changed paths');
    this.checkRoot();
    const anchors = new Set<string>();
    for (const r of this.withHardLinks(dirtyRels)) {
      if (r === '' || this.ig.ignores(r, false) && this.ig.ignores(r, true)) continue;
      anchors.add(this.anchor(r));
    }
    const local: Tree = new Map();
    const remote: Tree = new Map();
    const refused: Refusal[] = [];
    const sorted = [...anchors].sort();
    const covered = new Set<string>();
    const isCovered = (rel: string): boolean => {
      for (let p = parentOf(rel); p !== ''; p = parentOf(p)) if (covered.has(p)) return true;
      return false;
    };
    for (const a of sorted) {
      if (isCovered(a)) continue;
      let st: fs.Stats | undefined;
      try {
        st = await lstatOrUndefined(path.join(this.options.localRoot, a));
      } catch (e) {
        // Cannot look (a name too long, a folder above it unreadable): leave the remote copy alone.
        refused.push({ rel: a, keep: true, reason: `'${a}' cannot be read (${(e as NodeJS.ErrnoException).code}); it is skipped and its remote copy left as it is. Fix its permissions or shorten the path, or add it to .kubedevignore` });
        for (const [k, v] of this.subtree(a)) remote.set(k, v);
        covered.add(a);
        continue;
      }
      if (st?.isDirectory()) {
        if (this.ig.ignores(a, true)) continue;
        // Events are hints: a folder reported dirty is listed again and compared whole, whatever its
        // inode (a folder deleted and made again often gets the same number back).
        covered.add(a);
        this.watcher?.removeTree(a);
        await scanLocal(this.options.localRoot, this.ig, a, local, refused, this.scanOptions(true));
        for (const [k, v] of this.subtree(a)) remote.set(k, v);
      } else {
        if (st && !this.ig.ignores(a, false)) await scanLocal(this.options.localRoot, this.ig, a, local, refused, this.scanOptions(false));
        for (const [k, v] of this.subtree(a)) remote.set(k, v);
      }
    }
    this.reportRefused(refused);
    keepRemoteFor(refused, local, remote);
    const plan = local.size + remote.size === 0 ? emptyPlan() : planDiff(local, remote);
    if (plan.deletes.length + plan.dirs.length + plan.files.length + plan.links.length + plan.chmods.length === 0) return undefined;
    await this.settleMassDelete(plan);
    const res: ApplyResult = plan.files.length + plan.dirs.length + plan.links.length + plan.chmods.length === 0
      ? (await remoteDelete(this.ctx(conn, this.index), plan.deletes), { changed: [], unsent: [], warnings: [], bytes: 0, method: 'sftp' as const })
      : await applyPlan(this.ctx(conn, this.index), plan);
    // The remote now holds the plan (but for what was not sent): update the index.
    const unsent = new Set(res.unsent);
    for (const d of plan.deletes) {
      if (this.index.get(d)?.type === 'dir' && !local.has(d)) this.watcher?.removeTree(d);
      for (const k of this.subtree(d).keys()) this.index.delete(k);
    }
    const put = (rel: string, e: Entry): void => {
      if (!unsent.has(rel)) this.index.set(rel, e);
    };
    for (const d of plan.dirs) put(d.rel, d.entry);
    for (const f of plan.files) put(f.rel, f.entry);
    for (const l of plan.links) put(l.rel, l.entry);
    for (const c of plan.chmods) put(c.rel, c.entry);
    for (const rel of unsent) {
      for (const k of this.subtree(rel).keys()) this.index.delete(k);
      const before = remote.get(rel);
      if (before && !plan.deletes.includes(rel)) this.index.set(rel, before);
    }
    if (plan.links.length > 0) await this.dropEscapedLinks(conn);
    this.afterApply(res);
    return this.stats(plan, res, t0);
  }

  /**
   * A new or changed symlink can make an older one lead outside (`p -> up/../etc`, then `up -> ../..`):
   * after a batch that sent links, every link the remote holds is resolved again; escaped ones go.
   */
  private async dropEscapedLinks(conn: Connection): Promise<void> {
    const escaped: string[] = [];
    for (const [rel, e] of this.index) {
      if (e.type === 'symlink' && !linkStaysInside(this.options.localRoot, rel, e.target ?? '')) escaped.push(rel);
    }
    if (escaped.length === 0) return;
    await remoteDelete(this.ctx(conn, this.index), escaped);
    for (const rel of escaped) {
      this.index.delete(rel);
      this.emit('warning', `symlink '${rel}' now points outside the synced folder (through another link); it was removed remotely. Point it inside the folder, or add it to .kubedevignore`);
    }
  }

  /**
   * A batch that would delete half or more of what the remote holds (an `rm -rf` of the root under
   * way, an unmount) waits SETTLE_MS and looks at the root again before deleting anything.
   */
  private async settleMassDelete(plan: Plan): Promise<void> {
    if (plan.deletes.length === 0 || this.index.size < 20) return;
    let doomed = 0;
    for (const d of plan.deletes) doomed += this.subtree(d).size;
    if (doomed < this.index.size * MASS_DELETE_SHARE) return;
    this.setStep('waiting before a mass delete');
    await delay(SETTLE_MS);
    this.checkRoot();
  }

  private reportForeign(rels: readonly string[]): void {
    for (const rel of rels) {
      if (this.foreignReported.has(rel)) continue;
      this.foreignReported.add(rel);
      this.emit('warning', `remote path '${rel}' has a name that is not valid UTF-8; it is left alone (neither compared nor deleted). Rename or remove it on the server`);
    }
  }
}

/** Fingerprint helper re-exported for callers that print it. */
export { fingerprint, AuthError, HostKeyError, RemoteError, ConnectionError };
