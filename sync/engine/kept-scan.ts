/**
 * The local listing an agent keeps between one-shot runs (sync/agent/): a run that finds nothing
 * reported changed under its local folder since the last listing takes that listing instead of
 * walking the folder again. Only the local side is kept: the remote side is listed in full by every
 * run, so a container's edits and files a run failed to send are found as before.
 *
 * It trusts the per-folder inotify watcher as a watching session does, with the same bounds:
 * - the watcher watches each folder before the listing reads it (`onDir`), so no change after the read
 *   goes unreported;
 * - any event under the root that is not ignored, a watcher that lost track (an event without a name,
 *   an error), the root replaced (another folder's dev:ino at that path), a listing older than
 *   RESCAN_MIN_MS (as a watching session's periodic rescan), or a sleep of the machine (wall clock and
 *   monotonic clock apart by more than PAUSE_MS) makes the next run list the folder again;
 * - a listing that found hard links, unreadable paths or names it refused is not kept (the session
 *   keeps side tables for those);
 * - before a listing is taken, the event loop turns twice, so that events of changes made before the
 *   run began (the kernel queued them already) are read first.
 * Linux only (per-folder inotify); on other systems, and on network file systems (which report no
 * changes made elsewhere), every run lists the folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnoreMatcher, isInternalPath } from './ignore';
import { CompactIndex } from './index-store';
import { ScanOptions, ScanResult, Tree } from './tree';
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
  /** Date.now() of the moment the listing held (a kept one: just now, after the watcher said nothing). */
  readonly readStart: number;
  /** Whether the kept listing was taken (no walk). */
  readonly kept: boolean;
}

function rootId(root: string): string | undefined {
  try {
    const st = fs.lstatSync(root);
    return st.isDirectory() ? `${st.dev}:${st.ino}` : undefined;
  } catch {
    return undefined;
  }
}

function copyOf(tree: Tree): CompactIndex {
  const c = new CompactIndex();
  for (const [k, v] of tree.entries()) c.set(k, v);
  return c;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** One local folder's kept listing and the watcher that says whether it still holds. */
export class KeptScan {
  private readonly watcher: TreeWatcher;
  private changed = false;
  private kept?: { tree: CompactIndex; portable: ScanResult['portable']; wall: number; mono: number; rootId: string };
  constructor(
    readonly root: string,
    private readonly ig: IgnoreMatcher,
    private readonly o: KeptScanOptions = {},
    /** Runs that took a kept listing, and those that walked their folder (tests, diagnostics). */
    private readonly counts = { hits: 0, walks: 0 },
  ) {
    this.watcher = new TreeWatcher(root);
    this.watcher.on('dirty', (rels) => {
      if (rels.some((r) => !isInternalPath(r) && !(this.ig.ignores(r, false) && this.ig.ignores(r, true)))) this.changed = true;
    });
    for (const e of ['created', 'rescan', 'error', 'warning'] as const) this.watcher.on(e, () => (this.changed = true));
  }

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
    return rootId(this.root) === k.rootId;
  }

  /**
   * The local listing: the kept one while it holds, else `walk` (given the options that watch each
   * folder before it is read), kept for the next run when it can be.
   */
  async read(walk: (o: ScanOptions) => Promise<ScanResult>, session: ScanOptions): Promise<KeptRead> {
    if (await this.holds()) {
      const k = this.kept as NonNullable<KeptScan['kept']>;
      this.counts.hits++;
      return { result: { tree: copyOf(k.tree), refused: [], portable: k.portable }, readStart: this.now(), kept: true };
    }
    this.counts.walks++;
    this.kept = undefined;
    this.changed = false;
    const id = rootId(this.root);
    const readStart = this.now();
    const wall = readStart;
    const mono = performance.now();
    let linked = false;
    const result = await walk({
      onDir: (rel) => {
        this.watcher.add(rel);
        session.onDir?.(rel);
      },
      onHardLink: (rel, key) => {
        linked = true;
        session.onHardLink?.(rel, key);
      },
    });
    const clean = !linked && result.refused.length === 0 && (result.portable?.length ?? 0) === 0;
    if (clean && id !== undefined && !this.changed) this.kept = { tree: copyOf(result.tree), portable: result.portable, wall, mono, rootId: id };
    return { result, readStart, kept: false };
  }

  /** A run that failed: its listing is not trusted for the next one. */
  forget(): void {
    this.kept = undefined;
  }

  async close(): Promise<void> {
    this.kept = undefined;
    await this.watcher.close();
  }
}

/** The kept listings of one agent, by local folder and ignore rules. */
export class KeptScans {
  private readonly byKey = new Map<string, KeptScan>();
  /** Runs that took a kept listing, and those that walked their folder (tests, diagnostics). */
  readonly counts = { hits: 0, walks: 0 };

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

  private drop(key: string, k: KeptScan): void {
    this.byKey.delete(key);
    void k.close();
  }

  /** Every run's listing is walked again (a run failed: nothing kept is trusted). */
  forgetAll(): void {
    for (const k of this.byKey.values()) k.forget();
  }

  get size(): number {
    return this.byKey.size;
  }

  async closeAll(): Promise<void> {
    const all = [...this.byKey.values()];
    this.byKey.clear();
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
