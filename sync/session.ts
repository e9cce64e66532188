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
import { assertSafeRemoteRoot } from '../lib/remote-root';
import { applyPlan, remoteDelete } from './apply';
import { buildIgnore, IgnoreMatcher } from './ignore';
import { CompactIndex } from './index-store';
import { fingerprint } from './known-hosts';
import { emptyPlan, Plan, planDiff } from './plan';
import { AuthError, Connection, ConnectionError, HostKeyError, RemoteError } from './transport';
import { Entry, lstatOrUndefined, parseRemoteScan, remoteScanCommand, scanLocal, scanLocalSync, ScanResult, shQuote, Tree } from './tree';
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
      const connecting = this.connectWithRetry(this.options.initialAttempts ?? 4, true);
      connecting.catch(() => undefined);
      await new Promise((r) => setImmediate(r));
      this.dirty.clear();
      let pre: ScanResult;
      try {
        pre = scanLocalSync(this.options.localRoot, this.ig, '', new CompactIndex(), [], this.onDir);
      } catch (e) {
        await connecting.catch(() => undefined); // so that shutdown closes the connection it made
        throw e;
      }
      await connecting;
      const stats = await this.fullPass(pre);
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

  private async remoteScan(conn: Connection): Promise<{ tree: Tree; leftovers: string[] }> {
    const res = await conn.exec(remoteScanCommand(this.options.remoteRoot, this.ig.prunableNames), undefined, { signal: this.abort.signal });
    if (res.code !== 0) {
      if (/printf|unknown predicate|invalid/i.test(res.stderr)) {
        throw new RemoteError(`listing '${this.options.remoteRoot}' needs GNU find (find -printf) on the server: ${res.stderr.trim()}. Install findutils in the sidecar image`, res.code, res.stderr);
      }
      throw new RemoteError(`listing remote folder '${this.options.remoteRoot}' failed (exit ${res.code}): ${res.stderr.trim()}. Check that the user may read it`, res.code, res.stderr);
    }
    return parseRemoteScan(res.stdout, this.ig);
  }

  /** Makes the remote equal to the local folder, from listings of both. */
  private async fullPass(prescanned?: ScanResult): Promise<BatchStats> {
    const t0 = performance.now();
    const conn = await this.ensureConnected();
    // Events from now on are kept for after this pass; the local listing starts after this point.
    if (!prescanned) this.dirty.clear();
    // A vanished local folder (unmounted, deleted) must not read as "delete everything remotely".
    const rootStat = await lstatOrUndefined(this.options.localRoot).catch(() => undefined);
    if (!rootStat?.isDirectory() && !fs.statSync(this.options.localRoot, { throwIfNoEntry: false })?.isDirectory()) {
      throw new Error(`local folder '${this.options.localRoot}' is gone; nothing was deleted remotely. Restore it, or stop the sync`);
    }
    // Both listings go straight into compact indexes: no Map of 100,000 objects, even for a moment.
    const [remote, local] = await Promise.all([
      this.remoteScan(conn),
      prescanned ?? scanLocal(this.options.localRoot, this.ig, '', new CompactIndex(), [], this.onDir),
    ]);
    this.reportRefused(local.refused);
    const plan = planDiff(local.tree, remote.tree);
    plan.deletes.push(...remote.leftovers.filter((l) => !remote.leftovers.some((o) => o !== l && l.startsWith(`${o}/`))));
    this.beginProgress(plan);
    const res = await applyPlan(this.ctx(conn, remote.tree), plan);
    this.index = local.tree as CompactIndex;
    this.needFull = false;
    if (res.changed.length > 0) this.markDirty(res.changed);
    return this.stats(plan, res.bytes, res.method, t0);
  }

  /** Called before each local folder is listed: watch it first, so nothing created meanwhile is missed. */
  private readonly onDir = (rel: string): void => this.watcher?.add(rel);

  private ctx(conn: Connection, remote: { get(rel: string): Entry | undefined }): Parameters<typeof applyPlan>[0] {
    return { conn, localRoot: this.options.localRoot, remoteRoot: this.options.remoteRoot, remote, signal: undefined, method: this.options.method, onBytes: this.countBytes };
  }

  private stats(plan: Plan, bytes: number, method: BatchStats['method'], t0: number): BatchStats {
    return { files: plan.files.length + plan.links.length + plan.dirs.length, deleted: plan.deletes.length, bytes, ms: performance.now() - t0, method };
  }

  private progressState = { sent: 0, total: 0, files: 0, last: 0 };

  /** Starts progress accounting for a plan about to be applied. */
  private beginProgress(plan: Plan): void {
    const files = plan.files.length + plan.links.length + plan.dirs.length;
    this.progressState = { sent: 0, total: plan.files.reduce((n, f) => n + f.entry.size, 0) + 1024 * files, files, last: 0 };
  }

  private readonly countBytes = (n: number): void => {
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
      void this.pump();
    }, ms);
  }

  private pump(): Promise<void> {
    if (this.running) return this.running;
    if (!this.started) return Promise.resolve(); // start() runs the first pass itself
    this.running = (async () => {
      try {
        while (!this.closing && !this.fatal && (this.dirty.size > 0 || this.needFull || !this.conn?.alive)) {
          try {
            if (!this.conn?.alive || this.needFull) {
              await this.ensureConnected();
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
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
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

  private async applyDirty(conn: Connection, rels: string[]): Promise<BatchStats | undefined> {
    const t0 = performance.now();
    const anchors = new Set<string>();
    for (const r of rels) {
      if (r === '' || this.ig.ignores(r, false) && this.ig.ignores(r, true)) continue;
      anchors.add(this.anchor(r));
    }
    // Drop anchors below another folder anchor.
    const local: Tree = new Map();
    const remote: Tree = new Map();
    const refused: { rel: string; reason: string }[] = [];
    const sorted = [...anchors].sort();
    const covered = new Set<string>();
    const isCovered = (rel: string): boolean => {
      for (let p = parentOf(rel); p !== ''; p = parentOf(p)) if (covered.has(p)) return true;
      return false;
    };
    for (const a of sorted) {
      if (isCovered(a)) continue;
      const st = await lstatOrUndefined(path.join(this.options.localRoot, a));
      const known = this.index.get(a);
      if (st?.isDirectory()) {
        if (this.ig.ignores(a, true)) continue;
        if (known?.type === 'dir' && known.ino === st.ino) {
          // The folder itself: only its mode can differ; its children report their own events.
          local.set(a, { ...known, mode: st.mode & 0o7777 });
          remote.set(a, known);
          continue;
        }
        covered.add(a);
        // A folder new here (or another one moved in under this name): watch what is there now.
        this.watcher?.removeTree(a);
        await scanLocal(this.options.localRoot, this.ig, a, local, refused, this.onDir);
        for (const [k, v] of this.subtree(a)) remote.set(k, v);
      } else {
        if (st && !this.ig.ignores(a, false)) {
          const one = await scanLocal(this.options.localRoot, this.ig, a, new Map(), refused);
          for (const [k, v] of one.tree) local.set(k, v);
        }
        for (const [k, v] of this.subtree(a)) remote.set(k, v);
      }
    }
    this.reportRefused(refused);
    const plan = local.size + remote.size === 0 ? emptyPlan() : planDiff(local, remote);
    if (plan.deletes.length + plan.dirs.length + plan.files.length + plan.links.length + plan.chmods.length === 0) return undefined;
    const res = plan.files.length + plan.dirs.length + plan.links.length + plan.chmods.length === 0
      ? (await remoteDelete(this.ctx(conn, this.index), plan.deletes), { changed: [], bytes: 0, method: 'sftp' as const })
      : await applyPlan(this.ctx(conn, this.index), plan);
    // The remote now holds the plan: update the index.
    for (const d of plan.deletes) {
      if (this.index.get(d)?.type === 'dir' && !local.has(d)) this.watcher?.removeTree(d);
      for (const k of this.subtree(d).keys()) this.index.delete(k);
    }
    const put = (rel: string, e: Entry): void => void this.index.set(rel, e);
    for (const d of plan.dirs) put(d.rel, d.entry);
    for (const f of plan.files) put(f.rel, f.entry);
    for (const l of plan.links) put(l.rel, l.entry);
    for (const c of plan.chmods) put(c.rel, c.entry);
    if (res.changed.length > 0) this.markDirty(res.changed);
    return this.stats(plan, res.bytes, res.method, t0);
  }
}

/** Fingerprint helper re-exported for callers that print it. */
export { fingerprint, AuthError, HostKeyError, RemoteError, ConnectionError };
