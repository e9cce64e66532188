/**
 * TwoWaySession: `kubedev sync --mode two-way`. Same lifecycle and events as SyncSession (start, close,
 * done; connected, ready, synced, reconnecting, warning, error), plus `pulled` (remote changes written
 * locally) and `conflict`. Every batch is a whole two-way pass (reconcile.ts): events on either side —
 * the local watcher, the server's inotifywait stream or the listing interval — are hints that one is
 * owed. What the runner wrote on one side is what the ancestor now says of it, so the echo of its
 * own writes compares equal and is never sent back.
 */
import * as path from 'node:path';
import ignore from 'ignore';
import { assertSafeRemoteRoot } from '../../../lib/remote-root';
import { ApplyContext } from '../apply';
import { blockCacheFor } from '../block-cache';
import { buildIgnore, IgnoreMatcher, isInternalPath } from '../ignore';
import { prepareRemote } from '../remote';
import { busyWarning } from '../remote-fix';
import { SessionLifecycle } from '../lifecycle';
import { haltIfRootGone, RootHaltError, RootIdentity } from '../safety';
import { Scheduler } from '../scheduler';
import { connectWithBackoff, delay } from '../connect';
import { FollowUp, RECHECK_MS } from '../follow-up';
import { BatchStats, SyncEvents, SyncOptions } from '../session';
import { Connection, ConnectionError, RemoteError } from '../transport';
import { Entry, Refusal } from '../tree';
import { openWatcher, WatchGuard } from '../watch';
import { Ownership } from './classify';
import { CONFLICT_IGNORE, localSig, removeLocalLeftovers } from './local-write';
import { TarStandby } from './pull-bulk';
import { foldsCase, LocalNames } from './pull-names';
import { PassStats, RemoteRootHaltError, twoWayPass } from './reconcile';
import { EchoHold } from './echoes';
import { RemoteShell } from './remote-shell';
import { BYTEWISE_TEXT_MAX } from './push-inline';
import { RemoteWatcher } from '../remote-watch';
import { ConflictRecord, sameLocal, StateStore, statePath } from './state-store';

export interface TwoWayOptions extends SyncOptions {
  /** How often a server without inotifywait is listed. @default 500 */
  readonly remotePollMs?: number;
  /** `poll`: list the server at an interval even when it has inotifywait. @default 'auto' */
  readonly remoteWatch?: 'auto' | 'poll';
  /** Where the state (ancestor, conflicts) lives. @default statePath(host, port, remoteRoot, localRoot) */
  readonly stateFile?: string;
  /** `kubedev conflicts --take` (resolve.ts): the side taken for these paths, by the first pass. */
  readonly take?: ReadonlyMap<string, 'local' | 'remote'>;
  /** The local file system folds letter case (macOS, Windows). @default probed in the local folder at start (pull-names.ts) */
  readonly localFoldsCase?: boolean;
  /** Names Windows cannot hold are not pulled (pull-names.ts). @default process.platform === 'win32' */
  readonly localWindowsNames?: boolean;
}

export interface TwoWayStats extends BatchStats {
  /** Paths written locally from the remote. */
  readonly pulled: readonly string[];
  readonly deletedLocal: readonly string[];
  readonly conflicts: number;
}

export interface TwoWayEvents extends SyncEvents {
  /** Remote changes written locally (or deleted locally). */
  pulled: [info: { paths: readonly string[]; deleted: readonly string[]; bytes: number; ms: number; scoped: boolean }];
  /** Both sides changed a path: neither version is lost; `copy` holds the remote version locally. */
  conflict: [c: ConflictRecord];
}

/** A pass refused by the server this many times in a row stops the session. */
const RETRIES = 3;
/** `--once`: passes owed in a row for paths that changed while a pass ran, before the run leaves them. */
const ONCE_ROUNDS = 5;
/**
 * While watching, the ancestor is written at most this often (a 10,000-path state file costs tens of
 * ms to write, and a pass that pulled one file should not wait for it); always at close.
 */
const SAVE_MS = 1000;

function matcher(patterns: readonly string[]): (rel: string, isDir: boolean) => boolean {
  if (patterns.length === 0) return () => false;
  const ig = ignore().add([...patterns]);
  return (rel, isDir) => ig.ignores(isDir ? `${rel}/` : rel);
}

export class TwoWaySession extends SessionLifecycle<TwoWayEvents> {
  readonly options: TwoWayOptions;
  readonly ig: IgnoreMatcher;
  readonly store: StateStore;
  private readonly own: Ownership;
  private conn?: Connection;
  private guard?: WatchGuard;
  private readonly remoteWatcher: RemoteWatcher;
  private shell?: RemoteShell;
  private standby?: TarStandby;
  private owedPass = true;
  /** One more whole pass after a reconnect's (follow-up.ts); watching only. */
  private readonly followUp: FollowUp;
  /** Paths either watcher named since the last pass; `whole`: the next pass lists everything. */
  private readonly dirty = new Set<string>();
  /** The dirty paths the server's watcher named (their small files come inside the scoped listing). */
  private readonly remoteNamed = new Set<string>();
  /** The dirty paths the local watcher named. */
  private readonly localNamed = new Set<string>();
  /** The echoes of files the last passes swapped in (echoes.ts). */
  private readonly echoes = new EchoHold((rel) => {
    if (this.closing) return;
    this.remoteNamed.add(rel);
    this.kick([rel]);
  });
  /** What names the laptop can hold (pull-names.ts), found at start. */
  private names: LocalNames = { folds: false, windows: false };
  /** The last pass's push guards being released (remote-guard.ts); waited for before the shell closes. */
  private releasing?: Promise<void>;
  private whole = true;
  private readonly scheduler: Scheduler;
  private readonly said = new Set<string>();
  private saveTimer?: NodeJS.Timeout;

  constructor(options: TwoWayOptions) {
    super();
    assertSafeRemoteRoot(options.remoteRoot, 'remoteRoot', 'SyncSession option');
    this.options = { ...options, localRoot: path.resolve(options.localRoot) };
    this.ig = buildIgnore(this.options.localRoot, [...(options.ignore ?? []), CONFLICT_IGNORE]);
    this.own = { remoteOwns: matcher(options.remoteOwns ?? []), localOwns: matcher(options.localOwns ?? []) };
    this.store = new StateStore(options.stateFile ?? statePath(this.options), this.options);
    this.remoteWatcher = new RemoteWatcher(options.remoteRoot, options.remotePollMs ?? 500, options.remoteWatch === 'poll');
    this.remoteWatcher.on('change', (all) => {
      const rels = all?.filter((r) => !this.echoes.hold(r));
      for (const r of rels ?? []) this.remoteNamed.add(r);
      if (!rels || rels.length > 0) this.kick(rels);
    });
    this.remoteWatcher.on('looking', (mark) => this.echoes.marked(mark));
    this.remoteWatcher.on('warning', (m) => this.warnOnce(m));
    this.scheduler = new Scheduler({
      coalesceMs: options.coalesceMs ?? 5,
      stallMs: options.stallMs ?? 60_000,
      drain: () => this.drain(),
      owed: () => this.owedPass || !this.conn?.alive,
      open: () => this.started && !this.closing && !this.fatal,
      onStall: (what) => {
        this.emit('warning', `no progress while ${what}; dropping the connection and running a full pass`);
        this.conn?.destroy(`stalled while ${what}`);
      },
      onStuck: () => undefined,
    });
    this.followUp = new FollowUp(options.recheckMs ?? RECHECK_MS, options.watch !== false, () => {
      if (this.closing || this.fatal) return;
      this.whole = true;
      this.owedPass = true;
      this.scheduler.schedule(0);
    });
  }

  /** @internal Follow-up passes run after reconnects (tests wait for them). */
  get rechecks(): number {
    return this.followUp.count;
  }

  /** The local watcher (its backend's name: `watcher.name`), while watching. */
  get watcher(): WatchGuard | undefined {
    return this.guard;
  }

  /** Connects, runs the first two-way pass and (unless watch: false) starts watching both sides. */
  start(options: { signal?: AbortSignal } = {}): Promise<BatchStats & { total: number }> {
    return this.starting(this.options.localRoot, options.signal, async () => {
      if (this.options.watch !== false) {
        // Started before the first listing (a per-folder backend watches folders as they are listed).
        // A rescan the guard asks for is answered by the next pass: the folder is looked at whole.
        const o = this.options;
        this.guard = await openWatcher({ root: o.localRoot, ig: this.ig, choice: o.watchBackend, factory: o.watchTest?.factory, now: o.watchTest?.now, rescanMs: o.rescanMs, pollMs: o.pollMs, warn: (m) => this.emit('warning', m), rescan: async (scope) => [scope], checkRoot: () => this.rootId && haltIfRootGone(o.localRoot, this.rootId, 0, () => false) });
        this.guard.on('dirty', (all) => {
          // The runner's own temporaries (a pull's, beside its target) are no change to look at.
          const rels = all.filter((r) => !isInternalPath(r));
          for (const r of rels) this.localNamed.add(r);
          if (rels.length > 0) this.kick(rels);
        });
        this.guard.on('warning', (m) => this.emit('warning', m));
        this.guard.on('error', (e) => this.fail(e));
      }
      this.scheduler.startWatchdog();
      this.names = { folds: this.options.localFoldsCase ?? foldsCase(this.options.localRoot), windows: this.options.localWindowsNames ?? process.platform === 'win32' };
      await this.connect(this.options.initialAttempts ?? 4, true);
      let stats = await this.runPass();
      if (this.options.watch === false) stats = await this.settleOwed(stats);
      this.started = true;
      this.guard?.arm();
      const ready = { ...stats, total: this.store.size };
      this.emit('ready', ready);
      if (this.owedPass) this.scheduler.schedule();
      return ready;
    });
  }

  /**
   * `--once`: paths left because they changed while the pass ran are looked at again, a few rounds at
   * most (the session closes right after start: a pass owed then would never run).
   */
  private async settleOwed(first: TwoWayStats): Promise<TwoWayStats> {
    let all = first;
    for (let round = 0; round < ONCE_ROUNDS && this.owedPass && !this.closing; round++) {
      const more = await this.runPass();
      all = {
        ...all, files: all.files + more.files, deleted: all.deleted + more.deleted, bytes: all.bytes + more.bytes, conflicts: all.conflicts + more.conflicts,
        paths: [...(all.paths ?? []), ...(more.paths ?? [])], pulled: [...all.pulled, ...more.pulled], deletedLocal: [...all.deletedLocal, ...more.deletedLocal],
      };
    }
    if (this.owedPass && this.dirty.size > 0) {
      const left = [...this.dirty].slice(0, 5).map((r) => `'${r}'`);
      this.emit('warning', `${this.dirty.size} path(s) kept changing while ${ONCE_ROUNDS + 1} passes ran (${left.join(', ')}${this.dirty.size > 5 ? ', ...' : ''}); left as they are, looked at again by the next run`);
    }
    return all;
  }

  protected async shutdown(): Promise<void> {
    this.scheduler.stop();
    this.followUp.stop();
    this.remoteWatcher.close();
    this.echoes.clear();
    await this.releasing;
    this.shell?.close();
    this.standby?.close();
    await this.guard?.close();
    await this.scheduler.running?.catch(() => undefined);
    this.saveNow();
    await this.conn?.close();
  }

  /** Something changed: `rels` (POSIX, relative; '' = the root), or undefined when a watcher lost track. */
  private kick(rels?: readonly string[]): void {
    if (this.closing || this.fatal) return;
    if (!rels) this.whole = true;
    else for (const r of rels) this.dirty.add(r);
    this.owedPass = true;
    this.scheduler.event();
  }

  /**
   * A file the pass swapped in: its echo is held (echoes.ts). An event for it that came during this pass
   * (before this call) is the swap's or a later write's — the swap only happens over the version the
   * listing classified — so it is held too, and no longer owes a pass.
   */
  private expectEcho(rel: string, guard: string, after: string): void {
    if (this.remoteWatcher.how !== 'inotify') return;
    const named = this.remoteNamed.has(rel) && !this.localNamed.has(rel);
    if (named) {
      this.remoteNamed.delete(rel);
      this.dirty.delete(rel);
      if (this.dirty.size === 0 && !this.whole) this.owedPass = false; // nothing else named since the pass began
    }
    this.echoes.expect(rel, guard, after, named);
  }

  /**
   * Drops the local watcher's paths that name a regular file whose local side is still what the
   * ancestor records (the runner's own pull, renamed into place; an editor's save of the same bytes
   * and time): the pass would classify each as unchanged locally, and a remote change has its own
   * event. True when nothing is left to look at (the pass is skipped: it would list nothing).
   */
  private quietLocal(): boolean {
    for (const rel of this.localNamed) {
      if (this.remoteNamed.has(rel) || !this.dirty.has(rel)) continue;
      const a = this.store.agreed(rel);
      const now = a?.l.t === 'f' ? localSig(path.join(this.options.localRoot, rel)) : undefined;
      if (now && a && sameLocal(now, a.l)) {
        this.dirty.delete(rel);
        this.localNamed.delete(rel);
      }
    }
    return this.dirty.size === 0;
  }

  private persist(): void {
    if (!this.started || this.options.watch === false) return this.store.save();
    this.saveTimer ??= setTimeout(() => this.saveNow(), SAVE_MS);
  }

  private saveNow(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    try {
      this.store.save();
    } catch (e) {
      this.warnOnce(`the two-way state '${this.store.file}' could not be written (${(e as Error).message}); it is tried again after the next pass`);
    }
  }

  private warnOnce(m: string): void {
    if (this.said.has(m)) return;
    this.said.add(m);
    this.emit('warning', m);
  }

  private async connect(attempts: number, first: boolean): Promise<Connection> {
    const conn = await connectWithBackoff(this.options, attempts, this.abort.signal, {
      setup: async (c) => {
        this.conn = c;
        this.hostFingerprint = c.fingerprint;
        c.onDrop(() => {
          if (!this.closing) this.scheduler.schedule(0);
        });
        this.shell?.close();
        this.standby?.close();
        this.echoes.clear(); // the pass after a reconnect lists everything
        this.standby = new TarStandby(c, this.options.remoteRoot);
        this.standby.warm(); // its tar waits for a line before it enters the root: safe before prepareRemote
        // The remote shell opens while the root is prepared; the server's watches are in place before
        // the listing, so nothing made meanwhile is missed.
        const shell = RemoteShell.open(c);
        shell.catch(() => undefined);
        if (first) await prepareRemote(c, this.options, this.abort.signal);
        if (this.options.watch !== false) await this.remoteWatcher.start(c);
        this.shell = await shell;
        this.whole = true; // after a reconnect both sides are listed whole
        if (!first) this.followUp.reconnected();
      },
      reconnecting: (r) => this.emit('reconnecting', r),
    });
    this.emit('connected', { host: this.options.host, port: this.options.port, fingerprint: this.hostFingerprint });
    return conn;
  }

  private async runPass(): Promise<TwoWayStats> {
    let conn = this.conn;
    if (!conn?.alive) {
      if (conn) this.emit('reconnecting', { attempt: 0, delayMs: 0, reason: `connection to ${conn.where} lost` });
      await conn?.close();
      conn = await this.connect(0, false);
    }
    if (!this.shell?.alive) this.shell = await RemoteShell.open(conn);
    this.owedPass = false;
    if (!this.whole && this.started && this.quietLocal()) return { files: 0, deleted: 0, bytes: 0, ms: 0, method: 'none', paths: [], pulled: [], deletedLocal: [], conflicts: 0 };
    const dirty = this.whole ? undefined : new Set(this.dirty);
    const named = { remote: new Set(this.remoteNamed) };
    this.whole = false;
    this.dirty.clear();
    this.remoteNamed.clear();
    this.localNamed.clear();
    // A whole pass is what a reconnect owes, and what a follow-up asks for (follow-up.ts). The guards of
    // earlier swaps are released on the same shell, in order, before its listing: none is listed as a leftover.
    if (dirty === undefined) this.followUp.passStarting();
    let s: PassStats;
    try {
      s = await twoWayPass(this.host(), conn, dirty, false, named);
    } catch (e) {
      this.owedPass = true;
      this.whole = true;
      if (dirty === undefined) this.followUp.passFailed();
      throw e;
    }
    const stats: TwoWayStats = {
      files: s.pushed.length, deleted: s.deletedRemote.length, bytes: s.bytes, ms: s.ms, method: s.pushed.length > 0 ? 'sftp' : 'none',
      paths: [...s.pushed, ...s.deletedRemote], pulled: s.pulled, deletedLocal: s.deletedLocal, conflicts: s.conflicts,
    };
    if (dirty === undefined) this.followUp.passDone();
    if (s.retry) {
      this.owedPass = true;
      for (const rel of s.again) this.dirty.add(rel); // the owed pass looks at them (no watcher may name them)
    }
    if (s.released) {
      const settled = s.released.then(
        (kept) => kept,
        () => true,
      ).then((again) => {
        if (!again || this.closing || this.fatal) return;
        this.owedPass = true;
        this.scheduler.schedule();
      });
      this.releasing = settled;
      if (this.options.watch === false) await settled;
    }
    if (s.pulled.length + s.deletedLocal.length > 0) this.emit('pulled', { paths: s.pulled, deleted: s.deletedLocal, bytes: s.bytes, ms: s.ms, scoped: s.scoped });
    return stats;
  }

  private async drain(): Promise<void> {
    let refused = 0;
    while (!this.closing && !this.fatal && (this.owedPass || !this.conn?.alive)) {
      try {
        const stats = await this.runPass();
        refused = 0;
        if (stats.files + stats.deleted > 0) this.emit('synced', stats);
      } catch (e) {
        if (this.closing || this.abort.signal.aborted) return;
        if (e instanceof ConnectionError) {
          this.owedPass = true;
          continue;
        }
        // The server changed between the listing and the writes (a folder made there meanwhile): the
        // next pass lists again. The same refusal RETRIES times in a row is a real fault.
        if (e instanceof RemoteError && !(e instanceof RemoteRootHaltError) && ++refused <= RETRIES) {
          this.emit('warning', `${e.message} (the server changed while the pass ran; listing again)`);
          this.owedPass = true;
          await delay(100 * refused, this.abort.signal).catch(() => undefined);
          continue;
        }
        this.fail(e as Error);
        return;
      }
    }
  }

  private host(): Parameters<typeof twoWayPass>[0] {
    return {
      localRoot: this.options.localRoot,
      remoteRoot: this.options.remoteRoot,
      names: this.names,
      ig: this.ig,
      own: this.own,
      store: this.store,
      rootId: this.rootId as RootIdentity,
      run: (command) => (this.shell as RemoteShell).run(command),
      // A shell that reads a byte at a time (or not known yet) takes small swaps only.
      swapTextMax: this.shell?.bytewise === false ? undefined : BYTEWISE_TEXT_MAX,
      helper: this.shell?.helper === true,
      helperGone: () => this.shell?.helperGone(),
      tar: () => (this.standby as TarStandby).take(),
      forget: (rel) => this.guard?.removeTree(rel),
      take: this.started ? undefined : this.options.take,
      persist: () => this.persist(),
      onDir: (rel) => {
        this.guard?.add(rel);
        if (!this.started) removeLocalLeftovers(this.options.localRoot, rel);
      },
      warn: (m) => this.warnOnce(m),
      swapped: (rel, guard, after) => this.expectEcho(rel, guard, after),
      lookedAfter: (rel, stat) => this.echoes.looked(rel, stat),
      refused: (r: readonly Refusal[]) => r.forEach((x) => this.warnOnce(x.reason)),
      conflict: (c) => this.emit('conflict', c),
      step: this.scheduler.setStep,
      ctx: (conn: Connection, remote: { get(rel: string): Entry | undefined }): ApplyContext => ({ conn, localRoot: this.options.localRoot, remoteRoot: this.options.remoteRoot, remote, method: this.options.method, watching: this.options.watch !== false, onBytes: () => this.scheduler.progress(), onStep: this.scheduler.setStep, allowQuiet: this.scheduler.allowQuiet, onBusy: (rel) => this.emit('warning', busyWarning(rel)), blockCache: blockCacheFor(this.options.blockCache, conn.fingerprint, this.options.remoteRoot) }),
    };
  }
}

export { RootHaltError };
