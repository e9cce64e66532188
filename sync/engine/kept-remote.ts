/**
 * The remote listing an agent keeps between one-shot runs, beside the local one (kept-scan.ts): a run
 * whose remote folder reported no change since its last listing takes that listing instead of
 * listing the server again (the server's `find` of 10,000 files: ~55 ms of its CPU, ~110 ms a run).
 *
 * The server's changes are seen by `inotifywait -m -r` on the remote root (remote-watch.ts, the
 * sidecar image has it), running on a channel of the connection the agent keeps (pooled with it):
 * - it is started, and its watches are in place, before the listing it vouches for is read; any
 *   change reported from then on (the container's writes, and the run's own: a run that wrote leaves
 *   the next run to list again), a lost track (overflow), the watcher's end (the connection dropped,
 *   the pod restarted) or another connection makes the next run list the server; an event of the root
 *   itself (deleted, moved, made again) ends the watcher too, and the next run starts another;
 * - before a listing is taken, the run makes a mark in the remote root and waits for the watcher to
 *   report it (one round trip): every change made before the mark has been reported by then, in order;
 *   the same command hashes the server's mount table, which must be as it was when the watcher began
 *   (a volume mounted under the root raises no event); a mark that does not come ends the watcher;
 * - every write is an event (`modify`: an append to a file held open), and so are an overflow of the
 *   server's event queue and a folder it could not watch (the watch limit): listed again;
 * - a listing older than RESCAN_MIN_MS, one with names it cannot read or leftovers of a killed run,
 *   a server without inotifywait, or a remote root on a network or FUSE file system (another node's
 *   writes to a shared volume raise no event here): listed by every run;
 * - the watcher is started in the background once a run is over (the folder exists then, and the
 *   run's own writes are not streamed back): the next run's listing is kept if the server said every
 *   watch was in place before it began, and the run after takes it. Two that would not start: never again.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { IgnoreMatcher } from './ignore';
import { CompactIndex } from './index-store';
import { mountsCommand, RemoteWatcher } from './remote-watch';
import type { RemoteListing } from './remote-scan';
import { Connection } from './transport';
import { shQuote, Tree } from './tree';
import { RESCAN_MIN_MS } from './watch/guard';

/** How long a run waits for its mark to come through the watcher before it lists the server instead. */
const MARK_MS = 1_000;

/** A copy of a listing: a kept one is never the one a session changes. */
export function copyOf(tree: Tree): CompactIndex {
  const c = new CompactIndex();
  for (const [k, v] of tree.entries()) c.set(k, v);
  return c;
}

/** Whether a listing leaves `rel` out: it is ignored, or below an ignored folder (its type unknown: ignored either way). */
export function ignoredPath(ig: IgnoreMatcher, rel: string): boolean {
  for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) if (ig.ignores(rel.slice(0, i), true)) return true;
  return ig.ignores(rel, true) && ig.ignores(rel, false);
}

/** One remote folder's kept listing and the server's watcher that says whether it still holds. */
export class KeptRemote {
  private watcher?: RemoteWatcher;
  /** The connection (link) the watcher runs on. */
  private link?: object;
  private changed = true;
  /** The watcher's start under way (tests wait for it: a user's next run comes seconds later). */
  starting: Promise<void> = Promise.resolve();
  /** A folder was made under the root since the last mark. */
  private folderMade = false;
  /** Watchers that would not start. */
  private failed = 0;
  /** The server cannot watch (no inotifywait, or it would not start): every run lists. */
  private unable = false;
  private kept?: { tree: CompactIndex; mono: number; physicalRoot?: Buffer };
  private readonly marks = new Map<string, () => void>();

  constructor(
    readonly root: string,
    private readonly ig: IgnoreMatcher,
    private readonly maxAgeMs = RESCAN_MIN_MS,
    private readonly counts = { hits: 0, lists: 0 },
  ) {}

  private watchingOn(conn: Connection): boolean {
    return this.watcher?.watching === true && this.link === conn.link && conn.alive;
  }

  /** Makes a look mark in the root and waits for the watcher to report it; false if it did not come. */
  private async mark(conn: Connection): Promise<boolean> {
    const rel = `.kubedev-look-${crypto.randomBytes(6).toString('hex')}-0`;
    const abs = shQuote(path.posix.join(this.root, rel));
    const seen = new Promise<boolean>((resolve) => {
      const t = setTimeout(() => {
        this.marks.delete(rel);
        resolve(false);
      }, MARK_MS);
      this.marks.set(rel, () => {
        clearTimeout(t);
        this.marks.delete(rel);
        resolve(true);
      });
    });
    let mounts: string;
    try {
      const r = await conn.exec(`: > ${abs} && rm -f ${abs} && ${mountsCommand()}`);
      if (r.code !== 0) {
        this.marks.get(rel)?.();
        return false;
      }
      mounts = r.stdout.toString('utf8').trim();
    } catch {
      this.marks.get(rel)?.();
      return false;
    }
    const came = await seen;
    if (!came) this.stop(); // watching something else than the root now (its parent replaced, say): a new one next run
    // A volume mounted or unmounted under the root since the watcher began raises no event: listed again.
    return came && mounts === this.watcher?.mounts;
  }

  private async holds(conn: Connection): Promise<boolean> {
    const k = this.kept;
    if (!k || this.changed || !this.watchingOn(conn) || performance.now() - k.mono > this.maxAgeMs) return false;
    return (await this.mark(conn)) && !this.changed && this.watchingOn(conn);
  }

  /** Starts the server's watcher on `conn`, in the background (the run does not wait for it). */
  private watch(conn: Connection): void {
    this.stop();
    const w = new RemoteWatcher(this.root, 60_000, false, true); // strict: a network volume is listed by every run
    this.watcher = w;
    this.link = conn.link;
    w.on('change', (rels) => {
      // Under an ignored folder (node_modules in the container: watched too, never listed): no change.
      if (rels !== undefined && rels.every((r) => r !== '' && ignoredPath(this.ig, r))) return;
      this.changed = true;
      // The root itself (deleted, moved, made again): this watcher may be watching what is gone. A new one.
      if ((rels === undefined || rels.includes('')) && this.watcher === w) this.stop();
    });
    w.on('warning', () => (this.changed = true));
    w.on('looking', (rel) => this.marks.get(rel)?.());
    w.on('folderMade', () => (this.folderMade = true));
    // Not `alive`: a watcher whose channel ends just stops (it never falls back to polling here).
    this.starting = w
      .start({ channel: (c) => conn.sideChannel(c), alive: false })
      .catch(() => 'poll' as const)
      .then((how) => {
        if (how === 'inotify' || this.watcher !== w) return;
        if (++this.failed >= 2) this.unable = true; // no inotifywait there, or it cannot watch this folder
        this.stop();
      })
      .then(() => undefined);
  }

  /** The remote listing: the kept one while it holds, else `list()`, kept for the next run when it can be. */
  async read(conn: Connection, list: () => Promise<RemoteListing>): Promise<RemoteListing> {
    if (await this.holds(conn)) {
      this.counts.hits++;
      // Where the root led then: the mark just seen was written through the root's path, so it leads there still.
      const k = this.kept as NonNullable<KeptRemote['kept']>;
      return { tree: copyOf(k.tree), leftovers: [], foreign: [], physicalRoot: k.physicalRoot };
    }
    this.counts.lists++;
    this.kept = undefined;
    // Kept only when the server watched every folder before the listing began: once it said so, and
    // after a folder made since, once a mark came through (inotifywait watches a new folder's tree
    // after printing its event, before it reads the next; a folder moved in can be large).
    let vouched = this.watchingOn(conn) && this.watcher?.established === true;
    if (vouched && this.folderMade) {
      this.folderMade = false;
      vouched = await this.mark(conn);
    }
    this.changed = false;
    const mono = performance.now();
    const listing = await list();
    if (vouched && !this.changed && this.watchingOn(conn) && listing.foreign.length === 0 && listing.leftovers.length === 0) {
      this.kept = { tree: copyOf(listing.tree), mono, physicalRoot: listing.physicalRoot };
    }
    return listing;
  }

  /**
   * The run is over (its connection goes to the pool next): the server's watcher starts now, in the
   * background, if none runs on that connection. Not earlier: the run's own writes would come back
   * as events (a first mirror's 10,000 files: 3 MB on the wire, and the CPU to read them).
   */
  follow(conn: Connection): void {
    const starting = this.watcher !== undefined && this.link === conn.link && this.watcher.how === undefined;
    if (!this.unable && !starting && conn.alive && !this.watchingOn(conn)) this.watch(conn);
  }

  /** A run that failed: its listing is not trusted for the next one. */
  forget(): void {
    this.kept = undefined;
  }

  private stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.link = undefined;
    this.changed = true;
  }

  close(): void {
    this.kept = undefined;
    this.stop();
  }
}
