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
import * as path from 'node:path';
import { assertSafeRemoteRoot } from '../../lib/remote-root';
import { applyPlan, ApplyResult } from './apply';
import { buildIgnore, IgnoreMatcher } from './ignore';
import { blockCacheFor } from './block-cache';
import { EarlyWork } from './delta-early';
import { PassClock, SessionClock } from './pass-clock';
import { CompactIndex } from './index-store';
import { fingerprint } from './known-hosts';
import { planDiff } from './plan';
import { resolveVerify } from './verify';
import { AuthError, Connection, ConnectionError, HostKeyError, RemoteError } from './transport';
import { FollowUp, RECHECK_MS } from './follow-up';
import { listRemote, prepareAndList } from './remote';
import { RemoteRootMovedError } from './remote-place';
import type { RemoteListing } from './remote-scan';
import { SessionLifecycle } from './lifecycle';
import { haltIfRootGone, keepRemoteFor } from './safety';
import { Entry, Refusal, scanLocal, ScanOptions, ScanResult, Tree } from './tree';
import { scanInThread, scanThreadPays } from './scan-thread';
import { connectWithBackoff, isTransient } from './connect';
import { trimMemoryAfterStart } from './memory';
import { Scheduler } from './scheduler';
import { BatchStats, SyncEvents, SyncOptions } from './session-types';
import { openWatcher, WatchGuard } from './watch';
import { changedSince } from './watch/rescan';
import { applyDirty, subtreeOf } from './batch';
import { HardLinks } from './hard-links';
import { KeptScan, keptScans } from './kept-scan';
import type { KeptRemote } from './kept-remote';
import { portabilityWarnings } from './portable-names';
import { PathWarnings } from './path-warnings';
import { batchStats, ProgressMeter } from './progress';

export type { BatchStats, SyncEvents, SyncOptions } from './session-types';

const DEFAULT_COALESCE_MS = 5;
const DEFAULT_STALL_MS = 60_000;
/** `--once`: rounds that re-send files which changed while they were sent, before giving up on them. */
const ONCE_ROUNDS = 5;

export class SyncSession extends SessionLifecycle<SyncEvents> {
  readonly options: SyncOptions;
  /** @internal */
  readonly ig: IgnoreMatcher;
  private conn?: Connection;
  /** @internal */
  watcher?: WatchGuard;
  /** @internal What the remote holds. */
  index = new CompactIndex();
  private readonly dirty = new Set<string>();
  private needFull = true;
  private readonly told = new PathWarnings((m) => this.emit('warning', m));
  private readonly meter = new ProgressMeter((p) => this.emit('progress', p), () => this.listenerCount('progress') > 0);
  private cancelTrim?: () => void;
  /** @internal Files with several hard links (their names are marked dirty together). */
  readonly hardLinks = new HardLinks();
  private readonly scheduler: Scheduler;
  /** The listing made with the first connection's preparation, for the first full pass only. */
  private firstListing?: { conn: Connection; listing: RemoteListing };
  /** Where the remote root led on the server at the first listing (its physical path): see placeRemote. */
  private remotePlace?: Buffer;
  /** An agent's kept remote listing of this run's folder (kept-remote.ts). */
  private keptRemote?: KeptRemote;
  /** Changed-blocks work begun before the first listing is in (delta-early.ts); the first pass only. */
  private readonly early: EarlyWork;
  /** When the local listing of the pass under way began (ms); the clock of the last full pass done (pass-clock.ts). */
  private readStart = 0;
  private readonly clock: SessionClock;
  /** One more full pass after a reconnect's (follow-up.ts); watching only. */
  private readonly followUp: FollowUp;

  constructor(options: SyncOptions) {
    super();
    assertSafeRemoteRoot(options.remoteRoot, 'remoteRoot', 'SyncSession option'); // lib's one check of a sync root: '/', system folders, not normalized
    this.options = { ...options, localRoot: path.resolve(options.localRoot) };
    this.ig = buildIgnore(this.options.localRoot, options.ignore ?? []);
    this.early = new EarlyWork({ ...this.options, onProgress: () => this.countBytes(0) });
    const { blockCache, remoteRoot, localRoot } = this.options;
    this.clock = new SessionClock((fingerprint) => PassClock.for(blockCache, fingerprint, remoteRoot, localRoot));
    this.scheduler = new Scheduler({
      coalesceMs: this.options.coalesceMs ?? DEFAULT_COALESCE_MS,
      stallMs: this.options.stallMs ?? DEFAULT_STALL_MS,
      drain: () => this.drain(),
      owed: () => this.owed(),
      open: () => this.started && !this.closing && !this.fatal,
      onStall: (what) => {
        if (this.closing || this.fatal) return;
        this.emit('warning', `no progress for ${Math.round((this.options.stallMs ?? DEFAULT_STALL_MS) / 1000)} s while ${what}; dropping the connection and running a full pass`);
        this.needFull = true;
        this.conn?.destroy(`stalled while ${what}`);
      },
      onStuck: () => this.emit('warning', `${this.dirty.size} changed path(s) were waiting with no batch under way; sending them now`),
    });
    this.followUp = new FollowUp(this.options.recheckMs ?? RECHECK_MS, this.options.watch !== false, () => {
      if (this.closing || this.fatal) return;
      this.needFull = true;
      this.scheduler.schedule(0);
    });
  }

  /** Connects, mirrors, and (unless watch: false) starts watching. Resolves when the first mirror is done. */
  start(options: { signal?: AbortSignal } = {}): Promise<BatchStats & { total: number }> {
    return this.starting(this.options.localRoot, options.signal, async () => {
      this.scheduler.startWatchdog();
      if (this.options.watch !== false) {
        // Started before the first scan; a per-folder backend watches folders as the scans list them.
        const o = this.options;
        this.watcher = await openWatcher({ root: o.localRoot, ig: this.ig, choice: o.watchBackend, factory: o.watchTest?.factory, now: o.watchTest?.now, rescanMs: o.rescanMs, pollMs: o.pollMs, warn: (m) => this.emit('warning', m), rescan: (scope) => changedSince(this, scope), checkRoot: () => this.checkRoot(false) });
        this.watcher.on('dirty', (rels) => this.markDirty(rels));
        this.watcher.on('warning', (m) => this.emit('warning', m));
        this.watcher.on('error', (e) => this.fail(e));
      }
      const t0 = performance.now();
      // List the local tree while the SSH handshake, the remote preparation and the remote listing are
      // under way: a one-shot run on a machine with cores to spare walks in a worker thread; otherwise
      // the walk runs here in slices, letting the event loop answer the server in between.
      this.scheduler.setStep('connecting');
      this.readStart = Date.now();
      const connecting = this.connectWithRetry(this.options.initialAttempts ?? 4, true);
      connecting.catch(() => undefined);
      // A one-shot run served by an agent takes the listing it kept when nothing changed since (kept-scan.ts).
      const kept = this.watcher ? undefined : keptScans()?.for(this.options.localRoot, this.ig);
      const threaded = kept ? this.keptScan(kept) : this.watcher || !scanThreadPays() ? undefined : this.threadScan();
      this.dirty.clear();
      let pre: ScanResult;
      try {
        pre = await (threaded ?? scanLocal(this.options.localRoot, this.ig, '', new CompactIndex(), [], this.scanOptions(true)));
        // Worked out now, while the remote listing is usually still on its way (the full pass needs them).
        pre = { ...pre, portable: pre.portable ?? portabilityWarnings(pre.tree.keys()) };
        this.early.scanDone(pre.tree, this.conn); // large files hashed while the listing comes
      } catch (e) {
        await connecting.catch(() => undefined); // so that shutdown closes the connection it made
        throw e;
      }
      await connecting;
      let stats = await this.firstPass(pre).finally(() => this.early.end());
      if (this.options.watch === false) stats = await this.settleChanged(stats);
      this.scheduler.clearStep();
      const ready = { ...stats, ms: performance.now() - t0, total: this.index.size };
      this.started = true;
      this.emit('ready', ready);
      if (this.dirty.size > 0) this.scheduler.schedule();
      this.watcher?.arm(); // rescans (periodic, overflow, sleep) from now on
      if (this.watcher) this.cancelTrim = trimMemoryAfterStart(() => this.scheduler.busy, () => this.closing !== undefined);
      return ready;
    });
  }

  protected async shutdown(): Promise<void> {
    this.scheduler.stop();
    this.followUp.stop();
    this.cancelTrim?.();
    await this.watcher?.close();
    await this.scheduler.running?.catch(() => undefined);
    if (this.conn && this.started) this.keptRemote?.follow(this.conn); // an agent's run done: the server's watcher for the next
    await this.conn?.close();
  }

  // ---- connection ----

  private async connectWithRetry(attempts: number, first: boolean): Promise<void> {
    try {
      await connectWithBackoff(this.options, attempts, this.abort.signal, {
        setup: async (conn) => {
          this.conn = conn; // from here on the stall watchdog can drop it
          if (first) this.early.connected(conn);
          this.hostFingerprint = conn.fingerprint;
          if (this.remotePlace !== undefined) conn.listedRoots.set(this.options.remoteRoot, this.remotePlace); // until its own listing
          conn.onDrop(() => {
            if (!this.closing) this.scheduler.schedule(0);
          });
          // The first connection prepares the remote folder and lists it in the same command (one
          // process start, one round trip); the first full pass takes that listing.
          // An agent's run takes the remote listing it kept when the server reported no change since (kept-remote.ts).
          const kept = first && !this.watcher ? keptScans()?.remote(this.options, this.ig) : undefined;
          if (kept) this.keptRemote = kept;
          const list = (): Promise<RemoteListing> => prepareAndList(conn, this.options, this.ig, this.abort.signal);
          if (first) this.firstListing = { conn, listing: await (kept ? kept.read(conn, list) : list()) };
        },
        reconnecting: (r) => this.emit('reconnecting', r),
      });
    } catch (e) {
      if (e instanceof HostKeyError) this.hostFingerprint = e.verdict.fingerprint;
      throw e;
    }
    this.emit('connected', { host: this.options.host, port: this.options.port, fingerprint: this.hostFingerprint });
  }

  /** The live connection, or a new one (a full pass is then owed). */
  private async ensureConnected(): Promise<Connection> {
    if (this.conn?.alive) return this.conn;
    if (this.conn) this.emit('reconnecting', { attempt: 0, delayMs: 0, reason: `connection to ${this.conn.where} lost` });
    await this.conn?.close();
    this.conn = undefined;
    this.needFull = true;
    await this.connectWithRetry(0, false);
    this.followUp.reconnected();
    return this.conn as unknown as Connection;
  }

  // ---- full pass ----

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

  /** Makes the remote equal to the local folder, from listings of both (follow-up.ts is told of it). */
  private async fullPass(prescanned?: ScanResult): Promise<BatchStats> {
    this.followUp.passStarting();
    try {
      const stats = await this.listAndApply(prescanned);
      this.followUp.passDone();
      return stats;
    } catch (e) {
      this.followUp.passFailed();
      throw e;
    }
  }

  private async listAndApply(prescanned?: ScanResult): Promise<BatchStats> {
    const t0 = performance.now();
    this.scheduler.setStep('connecting');
    const conn = await this.ensureConnected();
    // Events from now on are kept for after this pass; the local listing starts after this point.
    if (!prescanned) this.dirty.clear();
    // A vanished, replaced or emptied local folder must not read as "delete everything remotely".
    this.checkRoot();
    if (!prescanned) this.hardLinks.clear();
    // Both listings go straight into compact indexes: no Map of 100,000 objects, even for a moment.
    this.scheduler.setStep(`listing remote folder '${this.options.remoteRoot}'`);
    const listed = this.firstListing?.conn === conn ? this.firstListing.listing : undefined;
    this.firstListing = undefined;
    if (!prescanned) this.readStart = Date.now();
    const readStart = this.readStart;
    const [remote, local] = await Promise.all([
      listed ?? listRemote(conn, this.options.remoteRoot, this.ig, this.abort.signal),
      prescanned ?? scanLocal(this.options.localRoot, this.ig, '', new CompactIndex(), [], this.scanOptions(true)),
    ]);
    this.placeRemote(conn, remote.physicalRoot);
    this.told.refused(local.refused);
    this.told.refused(local.portable ?? portabilityWarnings(local.tree.keys()));
    this.told.foreign(remote.foreign);
    keepRemoteFor(local.refused, local.tree, remote.tree);
    // Files modified since the last full pass began reading go again (pass-clock.ts).
    const plan = planDiff(local.tree, remote.tree, undefined, this.clock.racyFrom(conn.fingerprint));
    // Files whose change time alone moved are sent only if their bytes differ (verify.ts).
    await resolveVerify(conn, this.options.localRoot, this.options.remoteRoot, plan, this.abort.signal);
    // Not the copies of scripts begun before the listing (delta-early.ts): they may be at work.
    plan.deletes.push(...remote.leftovers.filter((rel) => !this.early.owns(rel)));
    this.meter.begin(plan);
    const res = await applyPlan(this.ctx(conn, remote.tree), plan);
    this.clock.passDone(conn.fingerprint, readStart);
    this.index = local.tree as CompactIndex;
    this.restoreUnsent(res, remote.tree);
    // A folder left because the server kept writing into it stays in the index: the next full pass
    // (or rescan) finds it missing locally and removes it again.
    for (const rel of this.told.takeBusy()) for (const [k, v] of subtreeOf(remote.tree, rel)) this.index.set(k, v);
    this.needFull = false;
    this.afterApply(res);
    return batchStats(plan, res, t0);
  }

  /**
   * Where the remote root leads, from a listing: the first one's place is the session's, and the scripts
   * writing on `conn` check they reach it (remote-place.ts). A later listing finding it elsewhere (the
   * root, or a folder above it, replaced by a symlink on the server) halts: nothing is written there.
   */
  private placeRemote(conn: Connection, physical: Buffer | undefined): void {
    const root = this.options.remoteRoot;
    if (physical !== undefined && this.remotePlace !== undefined && !physical.equals(this.remotePlace)) throw new RemoteRootMovedError(root, this.remotePlace, physical);
    this.remotePlace ??= physical;
    if (this.remotePlace !== undefined) conn.listedRoots.set(root, this.remotePlace);
  }

  /** Files the plan did not put on the remote keep what the remote holds (or held) in the index. */
  private restoreUnsent(res: ApplyResult, before: Tree): void {
    for (const rel of res.unsent) {
      for (const k of subtreeOf(this.index, rel).keys()) this.index.delete(k);
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
      const more = await this.batch(conn, rels);
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

  /** The first scan of a one-shot run, in a worker thread (scan-thread.ts); its hard links noted here. */
  private async threadScan(): Promise<ScanResult> {
    const r = await scanInThread(this.options.localRoot, this.ig);
    for (const [rel, key] of r.links) this.hardLinks.add(rel, key);
    return r;
  }

  /** Called before each local folder is listed: watch it first, so nothing created meanwhile is missed. */
  private readonly onDir = (rel: string): void => this.watcher?.add(rel);

  /** The first local listing through an agent's kept one; its moment is the pass's read start (pass-clock.ts). */
  private async keptScan(kept: KeptScan): Promise<ScanResult> {
    const r = await kept.read(async () => {
      // The walk's hard links go to this.hardLinks (scanOptions, threadScan): any means the listing is not kept.
      const before = this.hardLinks.size;
      const result = await (scanThreadPays() ? this.threadScan() : scanLocal(this.options.localRoot, this.ig, '', new CompactIndex(), [], this.scanOptions(true)));
      return { result, linked: this.hardLinks.size > before };
    });
    this.readStart = r.readStart;
    return r.result;
  }

  /** @internal */
  scanOptions(withDirs: boolean): ScanOptions {
    return { onDir: withDirs ? this.onDir : undefined, onHardLink: this.hardLinks.add };
  }

  /** @internal */
  checkRoot(withContents = true): void {
    if (!this.rootId) return;
    haltIfRootGone(this.options.localRoot, this.rootId, withContents ? this.index.size : 0, (name, isDir) => this.ig.ignores(name, isDir));
  }

  /** @internal */
  ctx(conn: Connection, remote: { get(rel: string): Entry | undefined }): Parameters<typeof applyPlan>[0] {
    return { conn, localRoot: this.options.localRoot, remoteRoot: this.options.remoteRoot, remote, signal: undefined, method: this.options.method, watching: this.options.watch !== false, onBytes: this.countBytes, onStep: this.scheduler.setStep, allowQuiet: this.scheduler.allowQuiet, onBusy: this.told.busy, blockCache: blockCacheFor(this.options.blockCache, conn.fingerprint, this.options.remoteRoot), ...this.early.forApply(conn) };
  }

  /** Bytes sent (0: a step done): the watchdog sees progress, the meter counts them. */
  private readonly countBytes = (n: number): void => {
    this.scheduler.progress();
    this.meter.add(n);
  };

  /** @internal */
  reportRefused(refused: readonly Refusal[]): void {
    this.told.refused(refused);
  }

  private markDirty(rels: readonly string[]): void {
    if (this.closing || this.fatal) return;
    for (const r of rels) this.dirty.add(r);
    this.scheduler.event();
  }

  /** Whether work is waiting: dirty paths, a full pass owed, or a connection to restore. */
  private owed(): boolean {
    return this.dirty.size > 0 || this.needFull || !this.conn?.alive;
  }

  private async drain(): Promise<void> {
    while (!this.closing && !this.fatal && this.owed()) {
      try {
        if (!this.conn?.alive || this.needFull) {
          const stats = await this.fullPass();
          this.emit('synced', stats);
          continue;
        }
        await this.scheduler.settle(this.dirty.size);
        const rels = [...this.dirty];
        this.dirty.clear();
        try {
          const stats = await this.batch(this.conn, rels);
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

  /** One watch batch (see batch.ts); stats and follow-ups here. */
  private async batch(conn: Connection, rels: string[]): Promise<BatchStats | undefined> {
    const t0 = performance.now();
    const done = await applyDirty(this, conn, rels);
    if (!done) return undefined;
    this.afterApply(done.res);
    return batchStats(done.plan, done.res, t0);
  }

  /** @internal Follow-up passes run after reconnects (tests wait for them). */
  get rechecks(): number {
    return this.followUp.count;
  }

  /** @internal */
  warn(message: string): void {
    this.emit('warning', message);
  }

  /** @internal The folders left busy since the last call (their entries go back into the index). */
  takeBusy(): string[] {
    return this.told.takeBusy();
  }

  /** @internal */
  step(what: string): void {
    this.scheduler.setStep(what);
  }
}

/** Fingerprint helper re-exported for callers that print it. */
export { fingerprint, AuthError, HostKeyError, RemoteError, ConnectionError };
