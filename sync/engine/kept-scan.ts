/**
 * The local listing an agent keeps between one-shot runs (sync/agent/): a run that finds nothing
 * reported changed under its local folder since the last listing takes that listing instead of
 * walking the folder again. Only the local side is kept: the remote side is listed in full by every
 * run, so a container's edits and files a run failed to send are found as before.
 *
 * It trusts the per-folder inotify watcher as a watching session does, with the same bounds:
 * - a walk (the session's own: a worker thread where that pays) is kept only if every folder it found
 *   was watched before it began (fresh watches of the folders the last walk found: the first walk of
 *   a folder is never kept, the second is), so no change after a folder's read goes unreported;
 * - any event under the root that is not ignored, more than EVENTS_MAX events of any kind (libuv
 *   drops the kernel's overflow notice), a watcher that lost track (an event without a name, an
 *   error), the root replaced (another folder's dev:ino at that path), the mount table changed (a
 *   volume mounted inside the root raises no event), a listing older than RESCAN_MIN_MS (as a watching
 *   session's periodic rescan), or a sleep of the machine (wall clock and monotonic clock apart by
 *   more than PAUSE_MS) makes the next run list the folder again;
 * - a listing that found hard links, unreadable paths or names it refused is not kept (the session
 *   keeps side tables for those);
 * - before a listing is taken, the event loop turns twice, so that events of changes made before the
 *   run began (the kernel queued them already) are read first.
 * Linux only (per-folder inotify); on other systems, and on network file systems (which report no
 * changes made elsewhere), every run lists the folder.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnoreMatcher, isInternalPath } from './ignore';
import { CompactIndex } from './index-store';
import { copyOf, ignoredPath, KeptRemote } from './kept-remote';
import { ScanResult } from './tree';
import { networkFsOf } from './watch/fs-kind';
import { PAUSE_MS, RESCAN_MIN_MS } from './watch/guard';
import { TreeWatcher } from './watch/per-folder';

/** Local folders kept at most (the oldest goes, with its watcher). */
const KEPT_MAX = 4;

export interface KeptScanOptions {
  /** How long a listing is trusted. @default RESCAN_MIN_MS */
  readonly maxAgeMs?: number;
  /** Wall clock (tests move it to fake a sleep). @default Date.now */
  readonly now?: () => number;
  /** @default process.platform */
  readonly platform?: NodeJS.Platform;
}

/** What `read` gives the session: its own copy of the listing, and when it was true of the folder. */
export interface KeptRead {
  readonly result: ScanResult;
  /**
   * Date.now() of the moment the listing held: for a kept one, when it was walked, not now. What no
   * event told of since (a file written through a hard link from outside, its mtime put back) then
   * stays after the pass clock's mark (pass-clock.ts), racy for the next walk; with `now`, a run taking
   * the kept listing moved the mark past it, and no later walk looked at it again.
   */
  readonly readStart: number;
}

function rootId(root: string): string | undefined {
  try {
    const st = fs.lstatSync(root);
    return st.isDirectory() ? `${st.dev}:${st.ino}` : undefined;
  } catch {
    return undefined;
  }
}

/** Events since a walk past which the listing is not trusted (the kernel queues 16,384; libuv drops its overflow notice). */
const EVENTS_MAX = 1_000;

/** A hash of this process's mount table (Linux): a mount inside the root changes it without an event. */
function mountTable(): string {
  try {
    return createHash('sha1').update(fs.readFileSync('/proc/self/mountinfo')).digest('hex');
  } catch {
    return 'none';
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** One local folder's kept listing and the watcher that says whether it still holds. */
export class KeptScan {
  private watcher?: TreeWatcher;
  private changed = true;
  private kept?: { tree: CompactIndex; portable: ScanResult['portable']; wall: number; mono: number; rootId: string; mounts: string };
  /** Events (ignored ones too) since the walk began. */
  private events = 0;
  /** The folders the last walk found: watched before the next walk reads them. */
  private lastDirs: string[] = [];

  constructor(
    readonly root: string,
    private readonly ig: IgnoreMatcher,
    private readonly o: KeptScanOptions = {},
    /** Runs that took a kept listing, and those that walked their folder (tests, diagnostics). */
    private readonly counts = { hits: 0, walks: 0 },
  ) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** Whether the kept listing still holds (after the event loop read what the kernel queued). */
  private async holds(): Promise<boolean> {
    const k = this.kept;
    if (!k || this.changed) return false;
    await turn();
    await turn();
    if (this.changed) return false;
    const wall = this.now() - k.wall;
    const mono = performance.now() - k.mono;
    if (mono > (this.o.maxAgeMs ?? RESCAN_MIN_MS) || Math.abs(wall - mono) > PAUSE_MS) return false;
    // A folder mounted over (or unmounted from) inside the root raises no event in the folder above it.
    return rootId(this.root) === k.rootId && mountTable() === k.mounts;
  }

  /** A new watcher of the root and of `dirs` (fresh watches: a folder made again is its new self). */
  private rewatch(dirs: readonly string[]): TreeWatcher {
    void this.watcher?.close();
    const w = new TreeWatcher(this.root);
    this.watcher = w;
    const mark = (): void => {
      if (this.watcher === w) this.changed = true;
    };
    w.on('dirty', (rels) => {
      if (this.watcher !== w) return;
      // libuv drops the kernel's overflow notice: a flood (of ignored names, too) may have hidden a change.
      this.events += rels.length;
      if (this.events > EVENTS_MAX || rels.some((r) => !isInternalPath(r) && !ignoredPath(this.ig, r))) mark();
    });
    for (const e of ['created', 'rescan', 'error', 'warning'] as const) w.on(e, mark);
    w.add('');
    for (const d of dirs) w.add(d);
    return w;
  }

  /**
   * The local listing: the kept one while it holds, else `walk()` (the session's own walk, in a worker
   * thread where that pays). Before the walk, every folder the last walk found is watched; the listing
   * is kept for the next run when every folder it holds was watched before it was read, nothing was
   * reported meanwhile, and it found no hard links (`linked`), unreadable paths or refused names.
   */
  async read(walk: () => Promise<{ result: ScanResult; linked: boolean }>): Promise<KeptRead> {
    if (await this.holds()) {
      const k = this.kept as NonNullable<KeptScan['kept']>;
      this.counts.hits++;
      return { result: { tree: copyOf(k.tree), refused: [], portable: k.portable }, readStart: k.wall };
    }
    this.counts.walks++;
    this.kept = undefined;
    const w = this.rewatch(this.lastDirs);
    this.changed = false;
    this.events = 0;
    const mounts = mountTable();
    const id = rootId(this.root);
    const readStart = this.now();
    const mono = performance.now();
    const { result, linked } = await walk();
    const dirs: string[] = [];
    for (const [rel, e] of result.tree.entries()) if (e.type === 'dir') dirs.push(rel);
    const unwatched = dirs.filter((d) => !w.watches(d));
    for (const d of unwatched) w.add(d); // watched from now on: the next walk's listing can be kept
    this.lastDirs = dirs;
    const clean = unwatched.length === 0 && w.watches('') && !linked && result.refused.length === 0 && (result.portable?.length ?? 0) === 0;
    if (clean && id !== undefined && !this.changed && this.watcher === w) this.kept = { tree: copyOf(result.tree), portable: result.portable, wall: readStart, mono, rootId: id, mounts };
    return { result, readStart };
  }

  /** A run that failed: its listing is not trusted for the next one. */
  forget(): void {
    this.kept = undefined;
  }

  async close(): Promise<void> {
    this.kept = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    await w?.close();
  }
}

/** The kept listings of one agent: local ones by folder and ignore rules, remote ones (kept-remote.ts) by server, folder and rules. */
export class KeptScans {
  private readonly byKey = new Map<string, KeptScan>();
  private readonly remotes = new Map<string, KeptRemote>();
  /** Runs that took a kept listing, and those that walked their folder (tests, diagnostics). */
  readonly counts = { hits: 0, walks: 0 };
  /** Runs that took a kept remote listing, and those that listed the server. */
  readonly remoteCounts = { hits: 0, lists: 0 };

  constructor(private readonly o: KeptScanOptions = {}) {}

  /** The kept listing for `root` under `ig`, made on first use; undefined where none can be kept. */
  for(root: string, ig: IgnoreMatcher): KeptScan | undefined {
    if ((this.o.platform ?? process.platform) !== 'linux' || networkFsOf(root)) return undefined;
    const abs = path.resolve(root);
    const key = `${abs}\0${ig.patterns.join('\0')}`;
    let k = this.byKey.get(key);
    if (k) {
      this.byKey.delete(key); // most recent last
    } else {
      // Another set of ignore rules for the same folder: that listing is of no use any more.
      for (const [other, s] of [...this.byKey]) if (s.root === abs) this.drop(other, s);
      while (this.byKey.size >= KEPT_MAX) {
        const [oldest, s] = this.byKey.entries().next().value as [string, KeptScan];
        this.drop(oldest, s);
      }
      k = new KeptScan(abs, ig, this.o, this.counts);
    }
    this.byKey.set(key, k);
    return k;
  }

  /** The kept remote listing of `root` on that server under `ig`, made on first use. */
  remote(o: { host: string; port: number; user: string; remoteRoot: string }, ig: IgnoreMatcher): KeptRemote {
    const key = JSON.stringify([o.host, o.port, o.user, o.remoteRoot, ig.patterns]);
    let k = this.remotes.get(key);
    if (k) this.remotes.delete(key);
    else {
      while (this.remotes.size >= KEPT_MAX) {
        const [oldest, r] = this.remotes.entries().next().value as [string, KeptRemote];
        this.remotes.delete(oldest);
        r.close();
      }
      k = new KeptRemote(o.remoteRoot, ig, this.o.maxAgeMs, this.remoteCounts);
    }
    this.remotes.set(key, k);
    return k;
  }

  private drop(key: string, k: KeptScan): void {
    this.byKey.delete(key);
    void k.close();
  }

  /** Resolves once every server watcher being started has started (or failed). */
  async settled(): Promise<void> {
    await Promise.all([...this.remotes.values()].map((r) => r.starting));
  }

  /** Every run's listing is walked again (a run failed: nothing kept is trusted). */
  forgetAll(): void {
    for (const k of this.byKey.values()) k.forget();
    for (const k of this.remotes.values()) k.forget();
  }

  async closeAll(): Promise<void> {
    const all = [...this.byKey.values()];
    this.byKey.clear();
    for (const r of this.remotes.values()) r.close();
    this.remotes.clear();
    await Promise.all(all.map((k) => k.close()));
  }
}

let current: KeptScans | undefined;

/** The agent sets its kept listings (undefined: none, every run walks its folder). */
export function setKeptScans(k: KeptScans | undefined): void {
  current = k;
}

export function keptScans(): KeptScans | undefined {
  return current;
}
