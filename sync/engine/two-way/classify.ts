/**
 * The three-way classification: for every path, each side is compared with the ancestor (what both
 * held when they last agreed), and the result says what to do.
 *
 * | local vs ancestor | remote vs ancestor | result                                               |
 * |-------------------|--------------------|------------------------------------------------------|
 * | same              | same               | nothing                                              |
 * | changed / new     | same               | push (local -> remote)                               |
 * | deleted           | same               | delete remotely                                      |
 * | same              | changed / new      | pull (remote -> local)                               |
 * | same              | deleted            | delete locally                                       |
 * | deleted           | deleted            | nothing (the ancestor entry goes)                    |
 * | deleted           | changed            | pull: the change wins                                |
 * | changed           | deleted            | push: the change wins                                |
 * | changed           | changed            | equal on both sides: agree; else conflict            |
 *
 * A local file that differs from the ancestor by its mtime only, while the remote file changed, is read:
 * when its bytes are the ancestor's (its content hash, content-hash.ts) it did not change, and the
 * remote change is pulled instead of making a conflict. One that differs by its ctime only (size, mtime
 * and mode put back: `cp -p`, `rsync -t`, an unpacked archive; or a chmod to the same mode) is read
 * too, whatever the remote did: the ancestor's bytes, not changed; other bytes, or bytes the ancestor
 * does not know, changed (a push, or a conflict that keeps both: never a pull over it).
 *
 * Then the tree's shape is honoured: a folder deleted on one side whose subtree still holds something
 * that stays (a change, a new file) is made again instead; a path replaced by another type whose
 * subtree does not all go is a conflict; below a conflict or a held path everything is held.
 * Ownership: a `remoteOwns` path never pushes or deletes remotely, a `localOwns` path never pulls or
 * deletes locally (the change is held, not lost).
 */
import { Agreed, sameLocal, sameSig, Sig } from './state-store';

export type Action = 'none' | 'push' | 'pull' | 'delete-local' | 'delete-remote' | 'conflict' | 'hold';

export interface Decision {
  readonly rel: string;
  action: Action;
  readonly l?: Sig;
  readonly r?: Sig;
  /** Why a conflict or hold (for the report). */
  why?: string;
  /** The local file read and found to hold the ancestor's bytes (HoldsBytes): it must still be that inode, unchanged, when the pull lands. */
  readonly seen?: Seen;
}

/** A local file as it was when read: its inode and ctime (which only the kernel sets). */
export interface Seen {
  readonly ino: number;
  readonly ctimeMs: number;
}

export interface Ownership {
  remoteOwns(rel: string, isDir: boolean): boolean;
  localOwns(rel: string, isDir: boolean): boolean;
}

/** Whether a local and a remote sig say the same thing (whole-second mtimes: the runner sets those). */
export function sameAcross(l: Sig, r: Sig): boolean {
  if (l.t !== r.t) return false;
  if (l.t === 'd') return true;
  if (l.t === 'l') return l.x === r.x;
  return l.s === r.s && l.p === r.p && Math.floor(l.m / 1000) === Math.floor(r.m / 1000) && r.m % 1000 === 0;
}

/** Whether the local file `rel`, still `l` as listed, holds bytes of content hash `hash` (the ancestor's bytes): the file as read, or undefined. */
export type HoldsBytes = (rel: string, l: Sig, hash: string) => Seen | undefined;

/**
 * A local file that only looks changed (its mtime while the remote file changed; or only its ctime,
 * whatever the remote did): are its bytes the ancestor's?
 */
function touchedOnly(rel: string, a: Agreed, l: Sig | undefined, r: Sig | undefined, holds: HoldsBytes | undefined, ctimeOnly = false): Seen | undefined {
  // A ctime-only change is read whatever the remote did (deleted there too: then deleted here as well).
  if (!holds || !a.h || l?.t !== 'f' || a.l.t !== 'f' || !(r?.t === 'f' || (ctimeOnly && !r))) return undefined;
  return l.s === a.l.s && l.p === a.l.p ? holds(rel, l, a.h) : undefined;
}

function decideOne(rel: string, a: Agreed | undefined, l: Sig | undefined, r: Sig | undefined, holds?: HoldsBytes): Decision {
  const rc = a ? !sameSig(r, a.r) : r !== undefined;
  // Size, mtime and mode as the ancestor's but another ctime: rewritten with them put back, or only
  // its mode, owner or links touched. Changed, unless its bytes are read and are the ancestor's.
  const ctimeOnly = !!a && sameSig(l, a.l) && !sameLocal(l, a.l);
  const seen = a && ((rc && !sameSig(l, a.l)) || ctimeOnly) ? touchedOnly(rel, a, l, r, holds, ctimeOnly) : undefined;
  const lc = a ? !sameLocal(l, a.l) && !seen : l !== undefined;
  const d = (action: Action, why?: string): Decision => ({ rel, action, l, r, why, seen });
  if (!lc && !rc) return d('none');
  if (lc && !rc) return d(l ? 'push' : r ? 'delete-remote' : 'none');
  if (!lc && rc) return d(r ? 'pull' : l ? 'delete-local' : 'none');
  if (!l && !r) return d('none');
  if (!l) return d('pull'); // deleted locally, changed remotely: the change wins
  if (!r) return d('push'); // deleted remotely, changed locally: the change wins
  if (l.t === 'd' && r.t === 'd') return d(l.p === r.p ? 'none' : 'push'); // folders merge; local mode wins
  if (sameAcross(l, r)) return d('none');
  if (l.t !== r.t) return d('conflict', `a ${kind(l)} locally and a ${kind(r)} remotely`);
  return d('conflict', 'changed on both sides');
}

function kind(s: Sig): string {
  return s.t === 'd' ? 'folder' : s.t === 'l' ? 'symlink' : 'file';
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/**
 * Decides every path of `paths` (the union of the ancestor's, the local and the remote paths).
 * Returns the decisions that are not 'none' and the paths that agree now (for the ancestor).
 */
export function classify(paths: Iterable<string>, agreed: (rel: string) => Agreed | undefined, local: (rel: string) => Sig | undefined, remote: (rel: string) => Sig | undefined, own?: Ownership, holds?: HoldsBytes): Map<string, Decision> {
  const all = new Map<string, Decision>();
  for (const rel of paths) if (!all.has(rel)) all.set(rel, decideOne(rel, agreed(rel), local(rel), remote(rel), holds));
  // Ownership: a one-way path's change against its flow is held (kept where it is, not sent).
  if (own) {
    for (const d of all.values()) {
      const isDir = (d.l ?? d.r)?.t === 'd';
      if ((d.action === 'push' || d.action === 'delete-remote') && own.remoteOwns(d.rel, isDir)) hold(d, 'remoteOwns: the container owns it; the local change stays local');
      if ((d.action === 'pull' || d.action === 'delete-local') && own.localOwns(d.rel, isDir)) hold(d, 'localOwns: the laptop owns it; the remote change stays remote');
    }
  }
  const sorted = treeOrder(all.keys());
  const pos = new Map(sorted.map((rel, i) => [rel, i]));
  const childrenOf = (rel: string): Decision[] => {
    const prefix = `${rel}/`;
    const out: Decision[] = [];
    // In tree order a subtree is contiguous, right after its folder.
    let i = (pos.get(rel) as number) + 1;
    while (i < sorted.length && sorted[i].startsWith(prefix)) out.push(all.get(sorted[i++]) as Decision);
    return out;
  };
  // Deepest first: a folder deleted on one side is made again when something below it stays.
  for (const rel of [...sorted].reverse()) {
    const d = all.get(rel) as Decision;
    if (d.action === 'delete-remote' && d.r?.t === 'd' && childrenOf(rel).some((c) => c.r && c.action !== 'delete-remote')) d.action = 'pull';
    if (d.action === 'delete-local' && d.l?.t === 'd' && childrenOf(rel).some((c) => c.l && c.action !== 'delete-local')) d.action = 'push';
    if (d.action === 'push' && d.r?.t === 'd' && d.l?.t !== 'd' && childrenOf(rel).some((c) => c.r && c.action !== 'delete-remote')) {
      d.action = 'conflict';
      d.why = `replaced by a ${kind(d.l as Sig)} locally while the remote folder changed`;
    }
    if (d.action === 'pull' && d.l?.t === 'd' && d.r?.t !== 'd' && childrenOf(rel).some((c) => c.l && c.action !== 'delete-local')) {
      d.action = 'conflict';
      d.why = `replaced by a ${kind(d.r as Sig)} remotely while the local folder changed`;
    }
  }
  // Below a conflict or a held path, nothing moves.
  const stuck = new Set<string>();
  for (const rel of sorted) {
    const d = all.get(rel) as Decision;
    let p = parentOf(rel);
    while (p !== '' && !stuck.has(p)) p = parentOf(p);
    if (p !== '' && d.action !== 'none') hold(d, `inside '${p}', which is held or in conflict`);
    if (d.action === 'conflict' || d.action === 'hold') stuck.add(rel);
  }
  return all;
}

/** Paths in tree order: parents first, each subtree contiguous ('a', 'a/b', 'a-b'; not 'a', 'a-b', 'a/b'). */
export function treeOrder(rels: Iterable<string>): string[] {
  const key = (r: string): string => r.replaceAll('/', '\u0000');
  return [...rels].map((r) => [key(r), r]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((x) => x[1]);
}

function hold(d: Decision, why: string): void {
  d.action = 'hold';
  d.why = why;
}
