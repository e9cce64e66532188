/**
 * What the session holds: one backend, and the rules that make its events safe to treat as hints.
 *
 * - `dirty` paths pass through; the batch looks at each again and compares with the index.
 * - A backend that lost track (overflow, a null name, a native error) asks for a rescan of a folder or
 *   of the tree; so does a long pause of this process (sleep/wake, SIGSTOP): a timer that ticks every
 *   TICK_MS and finds the wall clock jumped by more than PAUSE_MS rescans the whole tree.
 * - A file system mounted or unmounted inside the tree (Linux; a tmpfs, a bind mount, a USB stick)
 *   raises no event, and a watch of the folder it covers goes on watching the folder beneath: the same
 *   tick reads the mount table, and a mount point inside the tree that came or went has its watches
 *   dropped and is rescanned (which watches what is there now). It also has the session check its root
 *   (gone, replaced; a backend that names paths by the root's old place reports nothing to look at):
 *   a failure twice in a row is reported.
 * - A folder a recursive backend reports created is looked at again RELOOK_MS later (files made in it
 *   before the backend watched it may never be reported: parcel-bundler/watcher#97, Node's emulation).
 * - A periodic cheap rescan catches what nothing reported. It costs one local listing (measured: 10,000
 *   files 45 ms, 100,000 files about 0.5 s of CPU on tmpfs), so it runs every max(RESCAN_MIN_MS,
 *   RESCAN_COST_FACTOR x the last scan): 2 minutes for trees up to ~100,000 files, which keeps its share
 *   of one core near 0.4 % (the idle-CPU target is < 1 %) and bounds how long a lost event stays unseen.
 *   Polling uses the same scan every max(POLL_MIN_MS, POLL_COST_FACTOR x the last scan) (5 % of a core).
 *
 * Rescans run one at a time; a full one pending makes scoped ones moot. They wait for `arm()` (the
 * first mirror is done) so that none compares against an index still being built.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WatchBackend } from './backend';

/** The pause detector's tick: each wake-up of an idle watcher costs CPU (scheduler.ts), so a slow one. */
export const TICK_MS = 5_000;
export const PAUSE_MS = 10_000;
export const RELOOK_MS = 250;
export const RESCAN_MIN_MS = 120_000;
export const RESCAN_COST_FACTOR = 250;
export const POLL_MIN_MS = 2_000;
export const POLL_COST_FACTOR = 20;

export interface GuardEvents {
  dirty: [rels: string[]];
  warning: [message: string];
  error: [err: Error];
  /** A rescan finished (tests, diagnostics): its scope, why, how many paths differed, and its ms. */
  rescanned: [info: { scope: string; reason: string; changed: number; ms: number }];
}

export interface GuardOptions {
  readonly root: string;
  readonly backend: WatchBackend;
  /** Lists `scope` and returns the paths that differ from the index (rescan.ts). */
  readonly rescan: (scope: string) => Promise<string[]>;
  /** Periodic rescan interval. @default max(RESCAN_MIN_MS, RESCAN_COST_FACTOR x last scan) */
  readonly rescanMs?: number;
  /** Polling interval (poll backend). @default max(POLL_MIN_MS, POLL_COST_FACTOR x last scan) */
  readonly pollMs?: number;
  /**
   * Names compare letter case aside (NTFS, APFS): lstat finds `readme.md` after its rename to
   * `README.md`, so a created path also marks its folder, whose listing has the exact names.
   * @default true on Windows and macOS
   */
  readonly caseInsensitive?: boolean;
  /** Wall clock (tests move it to fake a sleep). @default Date.now */
  readonly now?: () => number;
  /**
   * Called at each tick (throws when the root is gone or replaced: reported as an 'error'). A backend
   * that names paths by the root's old place reports nothing once it moved: no batch would look.
   */
  readonly checkRoot?: () => void;
  /** The mount table's text (tests); undefined where there is none. @default /proc/self/mountinfo on Linux */
  readonly mountTable?: () => string | undefined;
}

/** This process's mount table (Linux), or undefined. */
function procMountTable(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
}

/** A mount point as mountinfo spells it: space, tab, newline and backslash as octal escapes. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The mount points strictly inside `root` (a real path) in mountinfo text `table`, relative to it, each
 * with its mount id (a mount made again at the same place is another one).
 */
export function mountsInside(root: string, table: string): Set<string> {
  const out = new Set<string>();
  const prefix = root.endsWith('/') ? root : `${root}/`;
  for (const line of table.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const at = unescapeMount(f[4]);
    if (at.startsWith(prefix) && at.length > prefix.length) out.add(`${f[0]} ${at.slice(prefix.length)}`);
  }
  return out;
}

export class WatchGuard extends EventEmitter<GuardEvents> {
  readonly backend: WatchBackend;
  private armed = false;
  private closed = false;
  private running?: Promise<void>;
  /** Scopes owed: '' = the whole tree, with the reason. */
  private readonly owed = new Map<string, string>();
  private lastScanMs = 0;
  private periodic?: NodeJS.Timeout;
  private tick?: NodeJS.Timeout;
  private lastTick = 0;
  private readonly relooks = new Set<NodeJS.Timeout>();
  private readonly now: () => number;
  /** The real root and the mounts inside it at the last tick (undefined: no mount table). */
  private realRoot?: string;
  private mounts?: Set<string>;
  /** The root check failed at the last tick: a second failure in a row is reported. */
  private rootFailed = false;

  constructor(private readonly o: GuardOptions) {
    super();
    this.backend = o.backend;
    this.now = o.now ?? Date.now;
    this.backend.on('dirty', (rels) => this.onDirty(rels));
    this.backend.on('created', (rels) => this.onCreated(rels));
    this.backend.on('rescan', (rel, reason) => this.request(rel, reason));
    this.backend.on('warning', (m) => this.emit('warning', m));
    this.backend.on('error', (e) => this.emit('error', e));
  }

  /** The root itself reported (a coalesced event): the batch never looks at '', so rescan the tree. */
  private onDirty(rels: string[]): void {
    const paths = rels.filter((r) => r !== '');
    if (paths.length < rels.length) this.request('', 'the root folder was reported changed');
    if (paths.length > 0) this.emit('dirty', paths);
  }

  get name(): string {
    return this.backend.name;
  }

  /** Starts the pause detector (the backend is started by openWatcher). */
  async start(): Promise<void> {
    this.lastTick = this.now();
    this.mounts = this.readMounts();
    this.tick = setInterval(() => {
      this.checkPause();
      this.checkMounts();
      // Twice in a row (5 s apart) before it is reported: a network file system's passing ESTALE or EIO
      // must not halt an idle session (a batch checks the root again before it writes anyway).
      try {
        this.o.checkRoot?.();
        this.rootFailed = false;
      } catch (e) {
        if (this.rootFailed && !this.closed) this.emit('error', e as Error);
        this.rootFailed = true;
      }
    }, TICK_MS);
    this.tick.unref();
  }

  add(rel: string): void {
    this.backend.add(rel);
  }

  removeTree(rel: string): void {
    this.backend.removeTree(rel);
  }

  /** The first mirror is done: rescans may run (those asked for meanwhile run now). */
  arm(): void {
    if (this.armed || this.closed) return;
    this.armed = true;
    this.schedulePeriodic();
    this.pump();
  }

  /** Asks for a rescan of folder `scope` ('' = the whole tree). */
  request(scope: string, reason: string): void {
    if (this.closed) return;
    if (this.owed.has('')) return;
    if (scope === '') this.owed.clear();
    this.owed.set(scope, reason);
    this.pump();
  }

  /** Compares the wall clock with the last tick: a jump means this process slept. */
  checkPause(): void {
    const t = this.now();
    const gap = t - this.lastTick;
    this.lastTick = t;
    if (gap > TICK_MS + PAUSE_MS) this.request('', `the process was paused for ${Math.round(gap / 1000)} s (sleep or suspend)`);
  }

  private readMounts(): Set<string> | undefined {
    const table = (this.o.mountTable ?? procMountTable)();
    if (table === undefined) return undefined;
    try {
      this.realRoot ??= fs.realpathSync.native(this.o.root);
    } catch {
      return undefined; // the root is gone: the session's root check halts
    }
    return mountsInside(this.realRoot, table);
  }

  /** A mount inside the tree that came or went: its watches dropped, its folder rescanned. */
  checkMounts(): void {
    if (this.closed || this.mounts === undefined) return;
    const now = this.readMounts();
    if (now === undefined) return;
    const changed = new Set<string>();
    for (const m of now) if (!this.mounts.has(m)) changed.add(m);
    for (const m of this.mounts) if (!now.has(m)) changed.add(m);
    this.mounts = now;
    for (const m of changed) {
      const rel = m.slice(m.indexOf(' ') + 1);
      this.backend.removeTree(rel);
      this.request(rel, `a file system was mounted or unmounted at '${rel}'`);
    }
  }

  private interval(): number {
    if (this.backend.polls) return this.o.pollMs ?? Math.max(POLL_MIN_MS, POLL_COST_FACTOR * this.lastScanMs);
    return this.o.rescanMs ?? Math.max(RESCAN_MIN_MS, RESCAN_COST_FACTOR * this.lastScanMs);
  }

  private schedulePeriodic(): void {
    clearTimeout(this.periodic);
    if (this.closed) return;
    this.periodic = setTimeout(() => this.request('', this.backend.polls ? 'polling' : 'periodic rescan'), this.interval());
    this.periodic.unref();
  }

  private onCreated(rels: readonly string[]): void {
    if (this.o.caseInsensitive ?? (process.platform === 'win32' || process.platform === 'darwin')) {
      for (const rel of rels) void this.checkCase(rel);
    }
    this.relook(rels);
  }

  /**
   * A path lstat finds but its folder does not list by that exact name changed letter case: its folder
   * is marked dirty (listed whole, with exact names), or the tree rescanned when it is the root.
   */
  private async checkCase(rel: string): Promise<void> {
    const i = rel.lastIndexOf('/');
    const [parent, name] = i < 0 ? ['', rel] : [rel.slice(0, i), rel.slice(i + 1)];
    try {
      const names = await fs.promises.readdir(path.join(this.o.root, parent));
      if (names.includes(name)) return;
      await fs.promises.lstat(path.join(this.o.root, rel));
    } catch {
      return; // gone: the batch sees that by itself
    }
    if (parent === '') this.request('', `'${rel}' changed letter case`);
    else this.onDirty([parent]);
  }

  private relook(rels: readonly string[]): void {
    for (const rel of rels) {
      fs.lstat(path.join(this.o.root, rel), (err, st) => {
        if (err || !st.isDirectory() || this.closed) return;
        const t = setTimeout(() => {
          this.relooks.delete(t);
          this.request(rel, 'a new folder, looked at again');
        }, RELOOK_MS);
        t.unref();
        this.relooks.add(t);
      });
    }
  }

  private pump(): void {
    if (!this.armed || this.running || this.closed || this.owed.size === 0) return;
    const [scope, reason] = this.owed.entries().next().value as [string, string];
    this.owed.delete(scope);
    const t0 = performance.now();
    this.running = this.o.rescan(scope).then((changed) => {
      const ms = performance.now() - t0;
      if (scope === '') {
        this.lastScanMs = ms;
        this.schedulePeriodic();
      }
      if (this.closed) return;
      if (changed.length > 0) this.emit('dirty', changed);
      this.emit('rescanned', { scope, reason, changed: changed.length, ms });
    }, (e: Error) => {
      if (!this.closed) this.emit('warning', `rescan of '${scope === '' ? this.o.root : scope}' failed (${e.message}); the next one will try again`);
      if (scope === '') this.schedulePeriodic();
    }).finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.periodic);
    clearInterval(this.tick);
    for (const t of this.relooks) clearTimeout(t);
    this.relooks.clear();
    await this.backend.close();
    await this.running?.catch(() => undefined);
  }
}
