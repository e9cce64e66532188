/**
 * One two-way pass: list both sides, classify every path against the ancestor (classify.ts), and carry
 * out the result — deletes (deepest first, each only if the path is still what was classified),
 * pushes (the mirror's apply: temp + rename remotely), pulls (local-write.ts: temp + rename locally),
 * conflict copies (carry-out.ts, a step each) — then record what both sides now agree on. Halts before
 * anything is written when either root is gone, replaced or emptied.
 */
import * as path from 'node:path';
import { ApplyContext } from '../apply';
import { ClientChannel } from 'ssh2';
import { IgnoreMatcher } from '../ignore';
import { haltIfRootGone, RootIdentity } from '../safety';
import { Connection } from '../transport';
import { Entry, Refusal } from '../tree';
import { Carry, conflicts, deletes, Done, pulls, pushes, Releases, swapsDone } from './carry-out';
import { holdUnportablePulls } from './pull-names';
import { classify, Decision, HoldsBytes, Ownership, treeOrder } from './classify';
import { holdsBytes } from './content-hash';
import { ChangedMeanwhile, checkedParent, LocalPathError } from './local-write';
import { inlinePushes, PushSection } from './push-inline';
import { RemoteRun } from './remote-list';
import { applyTake } from './take';
import { anchorsOf, gatherFull, gatherScoped, Gathered, GatherHost, ScopeTooWide } from './scope';
import { Agreed, ConflictRecord, sameLocal, sameSig, Sig, sigOf } from './state-store';

/** Thrown when the remote root was emptied or replaced: the session stops, nothing local is deleted. */
export class RemoteRootHaltError extends Error {}

/** A pass that would delete at least this share of the agreed paths locally waits and looks again. */
const MASS_DELETE_SHARE = 0.5;
const SETTLE_MS = 300;

export interface PassHost extends GatherHost {
  readonly ig: IgnoreMatcher;
  readonly own?: Ownership;
  readonly rootId: RootIdentity;
  /** Runs a command on the server (the session's remote shell). */
  readonly run: RemoteRun;
  /** The printf text one pass's swaps may take at most (push-inline.ts); no cap when undefined. */
  readonly swapTextMax?: number;
  /** The session's shell runs the swap helper (swap-helper.ts): swaps use it. */
  readonly helper?: boolean;
  /** A swap found the helper gone: later swaps take the sh path. */
  helperGone?(): void;
  /** Sides taken by `kubedev conflicts --take`, applied to the ancestor once both sides are listed. */
  readonly take?: ReadonlyMap<string, 'local' | 'remote'>;
  /** Saves the ancestor (now, or soon while watching: an older ancestor is safe, see StateStore.reload). */
  persist(): void;
  /** A started `tar -c` channel (pull-bulk.ts TarStandby). */
  tar(): Promise<ClientChannel>;
  warn(message: string): void;
  /**
   * A file swapped in with the listing (push-inline.ts): the server's watcher will report the runner's
   * own rename of it; `after` is its `ino/size/mtime/mode` then, `guard` the guard the release removes.
   */
  swapped?(rel: string, guard: string, after: string): void;
  /** What the guards' release found of a swapped file (`ino/size/mtime/mode`, or 'gone'), just before its guard went. */
  lookedAfter?(rel: string, stat: string): void;
  refused(refused: readonly Refusal[]): void;
  conflict(c: ConflictRecord, isNew: boolean): void;
  step(what: string): void;
  ctx(conn: Connection, remote: { get(rel: string): Entry | undefined }): ApplyContext;
}

/** The paths each side's watcher named (a scoped pass fetches small remote ones inline). */
export interface Named {
  readonly remote?: ReadonlySet<string>;
}

export interface PassStats {
  readonly pushed: string[];
  readonly pulled: string[];
  readonly deletedLocal: string[];
  readonly deletedRemote: string[];
  readonly conflicts: number;
  readonly bytes: number;
  readonly ms: number;
  /** Something changed while the pass ran (left as it was): another pass is owed. */
  readonly retry: boolean;
  /** The paths left for that reason: the owed pass looks at them (no watcher may name them, `--once`). */
  readonly again: string[];
  /** Looked only at the dirty paths. */
  readonly scoped: boolean;
  /** The push guards' release, under way: true when a container write was kept (another pass is owed). */
  readonly released?: Promise<boolean>;
}

/** More dirty paths than this make a full pass (one listing is then cheaper than many starting points). */
export const SCOPED_MAX = 1000;

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One pass: whole (`dirty` undefined), or scoped to the paths the watchers named (falls back to a
 * whole pass when they are too many, name the root, or the scoped pass would delete a large share).
 */
export async function twoWayPass(h: PassHost, conn: Connection, dirty?: ReadonlySet<string>, settled = false, named: Named = {}): Promise<PassStats> {
  const releases: Releases = [];
  try {
    return await onePass(h, conn, releases, dirty, settled, named);
  } catch (e) {
    // A pass that fails after it swapped files in or sent files under guards still releases them (a
    // container write in place kept by one is not left to be removed as a leftover), and waits for
    // the release: its failure (the connection lost) is this pass's, not an unhandled rejection.
    await Promise.all(releases.map((r) => r().catch(() => false)));
    throw e;
  }
}

async function onePass(h: PassHost, conn: Connection, releases: Releases, dirty?: ReadonlySet<string>, settled = false, named: Named = {}): Promise<PassStats> {
  const t0 = performance.now();
  const store = h.store;
  store.reload();
  // A vanished, replaced or emptied local folder must not read as "delete everything remotely".
  haltIfRootGone(h.localRoot, h.rootId, store.size, (name, isDir) => h.ig.ignores(name, isDir));
  const anchors = dirty && dirty.size <= SCOPED_MAX ? anchorsOf(store, h.ig, dirty) : undefined;
  let got: Gathered;
  // Small local saves are swapped in inside the scoped listing's command (push-inline.ts).
  let swap: PushSection | undefined;
  if (anchors) {
    h.step(`looking at ${anchors.length} changed path(s) in '${h.remoteRoot}' and the local folder`);
    const saves = store.remoteRootId && !h.take && dirty ? inlinePushes(h, dirty) : [];
    swap = saves.length > 0 ? new PushSection(h.remoteRoot, store.remoteRootId as string, saves, h.helper === true) : undefined;
    try {
      got = await gatherScoped(h, h.run, anchors, [...(named.remote ?? [])], swap);
      if (swap?.helperGone) h.helperGone?.();
    } catch (e) {
      if (swap) releases.push(swapsDone(h, conn, swap).release);
      if (e instanceof ScopeTooWide) return onePass(h, conn, releases, undefined, settled);
      throw e;
    }
  } else {
    h.step(`listing '${h.remoteRoot}' and the local folder`);
    got = await gatherFull(h, h.run);
  }
  const { remote, local, refused } = got;
  // A swapped file: both sides hold the version sent (the ancestor says so, and the listing, taken
  // just after the swap, shows it): it classifies as done, as a push of a newer local save, or as a
  // pull of a container write after the swap. The swaps' own guards are no leftovers to delete.
  const swapped = swap ? swapsDone(h, conn, swap, true) : undefined;
  if (swapped) releases.push(swapped.release);
  const ownGuards = new Set([...(swap?.swapped.values() ?? [])].map((s) => s.guard));
  const leftovers = remote.leftovers.filter((rel) => !ownGuards.has(rel));
  h.refused(refused);
  checkRemoteRoot(h, anchors ? (remote.rootEmpty ? 0 : Infinity) : remote.tree.size, remote.rootId);
  // The root's identity held: what writes on `conn` must reach from now on (remote-place.ts).
  if (remote.physicalRoot !== undefined) conn.listedRoots.set(h.remoteRoot, remote.physicalRoot);
  const lsig = (rel: string): Sig | undefined => {
    const e = local.get(rel);
    return e ? sigOf(e) : undefined;
  };
  const rsig = (rel: string): Sig | undefined => {
    const e = remote.tree.get(rel);
    return e ? sigOf(e) : undefined;
  };
  if (h.take) applyTake(store, h.take, got.paths, lsig, rsig);
  const decisions = classify(got.paths, (r) => store.agreed(r), lsig, rsig, h.own, localHolds(h.localRoot));
  // What could not be read locally (or leads outside) is held, with everything below it.
  for (const r of refused) for (const d of decisions.values()) if (d.rel === r.rel || d.rel.startsWith(`${r.rel}/`)) d.action = d.action === 'none' ? 'none' : 'hold';
  const of = (a: Decision['action']): Decision[] => treeOrder([...decisions.values()].filter((d) => d.action === a).map((d) => d.rel)).map((rel) => decisions.get(rel) as Decision);
  const delLocal = of('delete-local');
  if (!settled && store.size >= 4 && delLocal.length >= store.size * MASS_DELETE_SHARE) {
    // An `rm -rf` of the remote root under way is seen whole (a full pass), not mirrored half-way.
    h.step('waiting before a mass delete');
    const releasing = swapped?.release();
    await delay(SETTLE_MS);
    await releasing?.catch(() => undefined);
    return onePass(h, conn, releases, undefined, true);
  }
  if (h.names && (h.names.folds || h.names.windows)) for (const w of holdUnportablePulls(decisions, h.localRoot, h.names)) h.warn(w);
  for (const d of decisions.values()) if (d.action === 'hold' && /^(remote|local)Owns/.test(d.why ?? '')) h.warn(`'${d.rel}' is held: ${d.why}`);
  const done: Done = { pushed: [], pulled: [], deletedLocal: [], deletedRemote: [], conflicts: 0, bytes: 0, retry: false, again: [] };
  const skip = (d: Decision, e: unknown): void => {
    if (e instanceof ChangedMeanwhile) {
      done.retry = true; // a race with the user or the container: the next pass looks again
      done.again.push(d.rel);
    }
    else if (e instanceof LocalPathError) h.warn(e.message);
    else if ((e as NodeJS.ErrnoException).code) h.warn(`'${d.rel}' was not ${d.action === 'pull' ? 'fetched' : 'changed'} locally (${(e as NodeJS.ErrnoException).code}); it is left as it is and tried again next pass`);
    else throw e;
  };
  const c: Carry = { h, conn, decisions, remote, local, done, of, skip, rsig };
  const delRemote = await deletes(c, delLocal, leftovers);
  const { pushedOk, released } = await pushes(c, delRemote, swapped, releases);
  const pulled = await pulls(c);
  const agreedNow = await conflicts(c);

  // 5. The ancestor: what both sides agree on now.
  for (const d of decisions.values()) {
    if (d.action !== 'conflict' && store.conflict(d.rel) && d.action !== 'hold') store.clearConflict(d.rel);
    // Neither side changed (an ancestor from before ctimes were kept gets them now), or the local file
    // was read and holds the ancestor's bytes (classify.ts): the ancestor's hash still stands.
    if (d.action === 'none') store.agree(d.rel, d.l && d.r ? { l: d.l, r: d.r, h: unchangedHash(store.agreed(d.rel), d) } : undefined);
    else if (d.action === 'delete-local' && done.deletedLocal.includes(d.rel)) store.agree(d.rel, undefined);
    else if (d.action === 'delete-remote') store.agree(d.rel, undefined);
    else if (d.action === 'push' && pushedOk.has(d.rel)) store.agree(d.rel, { l: d.l as Sig, r: remoteAfterPush(d.l as Sig) });
    else if (d.action === 'pull' && pulled.sigs.has(d.rel)) store.agree(d.rel, { l: pulled.sigs.get(d.rel) as Sig, r: d.r as Sig, h: pulled.hashes.get(d.rel) });
    else if (agreedNow.has(d.rel)) {
      store.agree(d.rel, agreedNow.get(d.rel));
      store.clearConflict(d.rel);
    }
  }
  store.remoteRootId = remote.rootId || store.remoteRootId;
  h.persist();
  return { ...done, scoped: anchors !== undefined, ms: performance.now() - t0, released };
}

/** The ancestor's content hash when a 'none' decision leaves both sides' bytes as it knew them. */
function unchangedHash(a: Agreed | undefined, d: Decision): string | undefined {
  if (!a?.h || !d.l || !d.r || !sameSig(d.r, a.r)) return undefined;
  return d.seen || sameLocal(d.l, a.l) ? a.h : undefined;
}

/** Bytes a pass reads at most to tell whether local files hold the ancestor's bytes (classify.ts). */
const HOLDS_BUDGET = 64 * 1024 * 1024;

/**
 * Whether a local file holds the ancestor's bytes (classify.ts), within HOLDS_BUDGET bytes read per
 * pass (beyond it, the answer is no: those stay conflicts); a folder on its way that is not one answers no.
 */
function localHolds(root: string): HoldsBytes {
  let budget = HOLDS_BUDGET;
  return (rel, l, hash) => {
    if (l.s > budget) return undefined;
    budget -= l.s;
    try {
      return holdsBytes(path.join(checkedParent(root, rel), path.posix.basename(rel)), l, hash);
    } catch {
      return undefined;
    }
  };
}

/** What the remote listing shows after the runner sent `l`: whole-second mtime (tar and SFTP carry those). */
function remoteAfterPush(l: Sig): Sig {
  return l.t === 'f' ? { ...l, m: Math.floor(l.m / 1000) * 1000 } : l;
}

/** Halts when the remote root was emptied (it held at least 2 agreed entries) or replaced by another folder. */
function checkRemoteRoot(h: PassHost, listed: number, rootId: string): void {
  const where = `remote folder '${h.remoteRoot}'`;
  const state = `If that is what you want, delete the two-way state file '${h.store.file}' and start again`;
  if (h.store.remoteRootId && rootId && rootId !== h.store.remoteRootId) {
    throw new RemoteRootHaltError(`${where} was replaced by another folder (a new volume, another mount); the sync stopped and deleted nothing locally. ${state}`);
  }
  if (listed === 0 && h.store.size >= 2) {
    throw new RemoteRootHaltError(`${where} was emptied (both sides agreed on ${h.store.size} entries); the sync stopped and deleted nothing locally. ${state}, or restore the remote files`);
  }
}

