/**
 * One two-way pass: list both sides, classify every path against the ancestor (classify.ts), and carry
 * out the result — deletes (deepest first, each only if the path is still what was classified),
 * pushes (the mirror's apply: temp + rename remotely), pulls (local-write.ts: temp + rename locally),
 * conflict copies — then record what both sides now agree on. Halts before anything is written when
 * either root is gone, replaced or emptied.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyPlan, ApplyContext } from '../apply';
import { ClientChannel } from 'ssh2';
import { IgnoreMatcher } from '../ignore';
import { planDiff } from '../plan';
import { busyWarning, FixOp, remoteFix, removeOps, runFix } from '../remote-fix';
import { OutsideRootError } from '../remote-helper';
import { haltIfRootGone, RootIdentity } from '../safety';
import { Connection, RemoteError } from '../transport';
import { Entry, Refusal, shQuote } from '../tree';
import { holdUnportablePulls } from './pull-names';
import { classify, Decision, HoldsBytes, Ownership, treeOrder } from './classify';
import { holdsBytes } from './content-hash';
import { ChangedMeanwhile, checkedParent, commitFetched, deleteLocal, dropFetched, fetchBytes, Fetched, keepConflictCopy, LocalPathError, pullDir, pullLink } from './local-write';
import { BulkItem, fetchAsListed } from './pull-bulk';
import { inlinePushes, PushSection } from './push-inline';
import { guardOverwrites, Guards, releaseGuards } from './remote-guard';
import { RemoteRun } from './remote-list';
import { applyTake } from './take';
import { anchorsOf, gatherFull, gatherScoped, Gathered, GatherHost, ScopeTooWide } from './scope';
import { Agreed, ConflictRecord, Sig, sigOf } from './state-store';

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

/** The guard releases a pass has started or may start, each returning the same promise when called again. */
type Releases = (() => Promise<boolean>)[];

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
    const pushes = store.remoteRootId && !h.take && dirty ? inlinePushes(h, dirty) : [];
    swap = pushes.length > 0 ? new PushSection(h.remoteRoot, store.remoteRootId as string, pushes) : undefined;
    try {
      got = await gatherScoped(h, h.run, anchors, [...(named.remote ?? [])], swap);
    } catch (e) {
      if (swap) releases.push(swapsDone(h, conn, swap).release);
      if (e instanceof ScopeTooWide) return onePass(h, conn, releases, undefined, settled);
      throw e;
    }
  } else {
    h.step(`listing '${h.remoteRoot}' and the local folder`);
    got = await gatherFull(h, h.run);
  }
  const { remote, local, refused } = { remote: got.remote, local: { tree: got.local }, refused: got.refused };
  // A swapped file: both sides hold the version sent (the ancestor says so, and the listing, taken
  // just after the swap, shows it): it classifies as done, as a push of a newer local save, or as a
  // pull of a container write after the swap. The swaps' own guards are no leftovers to delete.
  const swapped = swap ? swapsDone(h, conn, swap, true) : undefined;
  if (swapped) releases.push(swapped.release);
  const ownGuards = new Set([...(swap?.swapped.values() ?? [])].map((s) => s.guard));
  const leftovers = remote.leftovers.filter((rel) => !ownGuards.has(rel));
  h.refused(refused);
  checkRemoteRoot(h, anchors ? (remote.rootEmpty ? 0 : Infinity) : remote.tree.size, remote.rootId);
  const lsig = (rel: string): Sig | undefined => {
    const e = local.tree.get(rel);
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
  const done = { pushed: [] as string[], pulled: [] as string[], deletedLocal: [] as string[], deletedRemote: [] as string[], conflicts: 0, bytes: 0, retry: false, again: [] as string[] };
  let released: Promise<boolean> | undefined;
  const skip = (d: Decision, e: unknown): void => {
    if (e instanceof ChangedMeanwhile) {
      done.retry = true; // a race with the user or the container: the next pass looks again
      done.again.push(d.rel);
    }
    else if (e instanceof LocalPathError) h.warn(e.message);
    else if ((e as NodeJS.ErrnoException).code) h.warn(`'${d.rel}' was not ${d.action === 'pull' ? 'fetched' : 'changed'} locally (${(e as NodeJS.ErrnoException).code}); it is left as it is and tried again next pass`);
    else throw e;
  };
  const bySkip = (rel: string, e: unknown): void => skip(decisions.get(rel) as Decision, e);

  // 1. Deletes, deepest first; locally each only if still what was classified.
  h.step('deleting');
  for (const d of [...delLocal].reverse()) {
    try {
      deleteLocal(h.localRoot, d.rel, d.l as Sig);
      done.deletedLocal.push(d.rel);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY') continue; // something new inside: kept
      skip(d, e);
    }
  }
  const delRemote = of('delete-remote');
  if (delRemote.length > 0 || leftovers.length > 0) {
    const kept = await remoteDeletes(h, conn, [...delRemote].reverse(), leftovers);
    // Kept there: not agreed as deleted (nor the folders holding it), so the next pass deletes them again.
    for (const d of delRemote) if (kept.has(d.rel) || [...kept].some((k) => k.startsWith(`${d.rel}/`))) d.action = 'hold';
    done.deletedRemote.push(...delRemote.filter((d) => d.action === 'delete-remote').map((d) => d.rel));
  }

  // 2. Pushes: the mirror's apply over exactly these paths (files always sent: the decision was made).
  // Files swapped in with the listing are done (their guards go into the same release).
  const push = of('push');
  const pushedOk = new Set<string>();
  if (swapped) {
    done.pushed.push(...swapped.rels);
    done.bytes += swapped.bytes;
  }
  if (push.length === 0 && swapped && conn.alive) released = swapped.release();
  if (push.length > 0) {
    h.step('sending');
    // A remote file written since the listing is not overwritten (left for the next pass); one written
    // in place during the upload is kept beside it (remote-guard.ts).
    const overwrites = push.filter((d) => d.r?.t === 'f' && !delRemote.some((x) => x.rel === d.rel)).map((d) => d.rel);
    const listed = (rel: string): Entry | undefined => remote.tree.get(rel);
    const guards = await guardOverwrites(h.run, h.remoteRoot, overwrites, listed);
    const moved = guards.moved;
    if (moved.size > 0) {
      done.retry = true;
      done.again.push(...moved);
    }
    const want = new Map<string, Entry>();
    const have = new Map<string, Entry>();
    for (const d of push.filter((x) => !moved.has(x.rel))) {
      want.set(d.rel, local.tree.get(d.rel) as Entry);
      const r = remote.tree.get(d.rel);
      if (r && !delRemote.some((x) => x.rel === d.rel)) have.set(d.rel, r.type === 'file' ? { ...r, mtimeMs: -1 } : r);
    }
    const plan = planDiff(want, have);
    const release = (): Promise<boolean> => Promise.all([releaseAndWarn(h, guards), swapped?.release() ?? false]).then(([a, b]) => a || b);
    let res: Awaited<ReturnType<typeof applyPlan>>;
    try {
      res = await applyPlan(h.ctx(conn, remote.tree), plan);
    } catch (e) {
      if (conn.alive) await release().catch(() => undefined);
      throw e;
    }
    // Not waited for here: the session's next command is sent behind it on the same shell (the result,
    // a kept container write, asks for another pass when it comes).
    if (conn.alive) {
      const r = release();
      releases.push(() => r);
      released = r;
    }
    for (const w of res.warnings) h.warn(w);
    const failed = new Set([...res.unsent, ...res.changed]);
    for (const d of push) if (!failed.has(d.rel) && !moved.has(d.rel)) pushedOk.add(d.rel);
    for (const [rel, why] of guards.unguarded) if (pushedOk.has(rel)) h.warn(why);
    done.pushed.push(...pushedOk);
    done.bytes += res.bytes;
  }

  // 3. Pulls: folders (parents first), then links, files that came inside the listing, the other files.
  const pull = of('pull');
  const pulledSig = new Map<string, Sig>();
  const pulledHash = new Map<string, string | undefined>();
  if (pull.length > 0) {
    h.step('fetching');
    for (const d of pull.filter((x) => x.r?.t === 'd')) {
      try {
        pulledSig.set(d.rel, pullDir(h.localRoot, d.rel, d.r as Sig, d.l));
      } catch (e) {
        skip(d, e);
      }
    }
    // Small files that came inside the listing (still as listed once read) are placed at once.
    const inline = remote.inline ?? new Map<string, Buffer>();
    const files: Decision[] = [];
    for (const d of pull) {
      const r = d.r as Sig;
      if (r.t === 'd') continue;
      if (r.t === 'f' && inline.get(d.rel)?.length !== r.s) {
        files.push(d);
        continue;
      }
      try {
        if (r.t === 'l') pulledSig.set(d.rel, pullLink(h.localRoot, d.rel, r, d.l));
        else {
          const f = fetchBytes([inline.get(d.rel) as Buffer], h.localRoot, d.rel, r, d.l);
          pulledSig.set(d.rel, commitPull(f, d));
          pulledHash.set(d.rel, f.h);
        }
        if (r.t === 'f') done.bytes += r.s;
      } catch (e) {
        skip(d, e);
      }
    }
    const fetched = await fetchAsListed(h, conn, files.map(bulkItem), rsig, bySkip);
    let at = 0;
    try {
      for (; at < fetched.length; at++) {
        const f = fetched[at];
        try {
          pulledSig.set(f.rel, commitPull(f, decisions.get(f.rel) as Decision));
          pulledHash.set(f.rel, f.h);
          done.bytes += f.sig.s;
        } catch (e) {
          dropFetched(f);
          skip(decisions.get(f.rel) as Decision, e);
        }
      }
    } finally {
      // An error the pass does not skip ends it: the files fetched after it leave no temporary file.
      for (const f of fetched.slice(at + 1)) dropFetched(f);
    }
    done.pulled.push(...pulledSig.keys());
  }

  // 4. Conflicts: the remote version kept beside the local file (unless the bytes are the same).
  const agreedNow = new Map<string, Agreed>();
  const conflicts = of('conflict').filter((d) => {
    const known = store.conflict(d.rel);
    if (!known || !sameKnown(known.r, d.r)) return true;
    if (!sameKnown(known.l, d.l)) store.setConflict({ ...known, l: d.l });
    return false;
  });
  // Both sides files: the remote versions are fetched together (as pulls are) before any copy is kept.
  const both = conflicts.filter((d) => d.l?.t === 'f' && d.r?.t === 'f');
  const copies = new Map<string, string>();
  const fetchedCopies = await fetchAsListed(h, conn, both.map(bulkItem), rsig, bySkip);
  try {
    for (const f of fetchedCopies) {
      const d = decisions.get(f.rel) as Decision;
      try {
        const kept = keepConflictCopy(f, h.localRoot);
        if (kept) copies.set(d.rel, kept);
        else {
          // The same bytes: agreed. Modes that differ follow the local one (as folders' do).
          const l = d.l as Sig;
          if (l.p !== (d.r as Sig).p) await remoteFix(conn, h.remoteRoot, [{ k: 'C', rel: d.rel, mode: l.p }], { what: `changing the mode of '${d.rel}'` });
          agreedNow.set(d.rel, { l, r: { ...(d.r as Sig), p: l.p }, h: f.h });
        }
      } catch (e) {
        skip(d, e);
      }
    }
  } finally {
    for (const f of fetchedCopies) dropFetched(f);
  }
  const bothRels = new Set(both.map((d) => d.rel));
  for (const d of conflicts) {
    if (agreedNow.has(d.rel)) continue;
    // Both files, but no copy kept (the remote version changed while fetched, or a local error): skipped above.
    if (bothRels.has(d.rel) && !copies.has(d.rel)) continue;
    const c: ConflictRecord = { rel: d.rel, copy: copies.get(d.rel), l: d.l, r: d.r, at: new Date().toISOString(), why: d.why ?? 'changed on both sides' };
    store.setConflict(c);
    done.conflicts++;
    h.conflict(c, true);
  }

  // 5. The ancestor: what both sides agree on now.
  for (const d of decisions.values()) {
    if (d.action !== 'conflict' && store.conflict(d.rel) && d.action !== 'hold') store.clearConflict(d.rel);
    if (d.action === 'none') store.agree(d.rel, d.l && d.r ? { l: d.l, r: d.r } : undefined);
    else if (d.action === 'delete-local' && done.deletedLocal.includes(d.rel)) store.agree(d.rel, undefined);
    else if (d.action === 'delete-remote') store.agree(d.rel, undefined);
    else if (d.action === 'push' && pushedOk.has(d.rel)) store.agree(d.rel, { l: d.l as Sig, r: remoteAfterPush(d.l as Sig) });
    else if (d.action === 'pull' && pulledSig.has(d.rel)) store.agree(d.rel, { l: pulledSig.get(d.rel) as Sig, r: d.r as Sig, h: pulledHash.get(d.rel) });
    else if (agreedNow.has(d.rel)) {
      store.agree(d.rel, agreedNow.get(d.rel));
      store.clearConflict(d.rel);
    }
  }
  store.remoteRootId = remote.rootId || store.remoteRootId;
  h.persist();
  return { ...done, scoped: anchors !== undefined, ms: performance.now() - t0, released };
}

/**
 * Puts a pulled file in place (commitFetched); over a local file that the pull was decided on by
 * reading it (it held the ancestor's bytes: Decision.seen) only while it is still that inode with that
 * ctime: a write since, even one that put size and mtime back, leaves it as it is.
 */
function commitPull(f: Fetched, d: Decision): Sig {
  if (d.seen) {
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(f.abs, { throwIfNoEntry: false });
    } catch {
      st = undefined; // a folder on its way is a file now: not the file read either
    }
    if (st?.ino !== d.seen.ino || st.ctimeMs !== d.seen.ctimeMs) {
      dropFetched(f);
      throw new ChangedMeanwhile(`'${f.rel}' changed locally while it was fetched; left as it is`);
    }
  }
  return commitFetched(f);
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

/** Releases push guards (remote-guard.ts); true when a container write was kept beside a file (warned). */
function releaseAndWarn(h: PassHost, guards: Guards): Promise<boolean> {
  if (guards.held.size === 0) return Promise.resolve(false);
  return releaseGuards(h.run, h.remoteRoot, guards, (rel, stat) => h.lookedAfter?.(rel, stat)).then((kept) => {
    for (const [rel, copy] of kept) h.warn(`'${rel}' was written in the container while the laptop's version was sent; the container's version is kept as '${copy}'`);
    return kept.size > 0;
  });
}

interface SwapsDone {
  readonly rels: string[];
  readonly bytes: number;
  /** Releases the swapped files' guards, once (later calls return the same promise). */
  release(): Promise<boolean>;
}

/**
 * What the command's swaps did: the ancestor records each swapped file as agreed (the laptop's sig
 * sent, the server's stat after the swap). `listed` (the listing after the swaps came back): the
 * session is told to expect the swap's echo; not (the pass gave up after the command ran): the guards
 * are released at once.
 */
function swapsDone(h: PassHost, conn: Connection, swap: PushSection, listed = false): SwapsDone {
  let bytes = 0;
  for (const [rel, s] of swap.swapped) {
    h.store.agree(rel, { l: s.l, r: s.r, h: s.h });
    bytes += s.l.s;
    if (listed) h.swapped?.(rel, s.guard, s.after);
  }
  let releasing: Promise<boolean> | undefined;
  const release = (): Promise<boolean> => (releasing ??= conn.alive ? releaseAndWarn(h, swap.guarded()) : Promise.resolve(false));
  if (!listed) void release().catch(() => undefined);
  return { rels: [...swap.swapped.keys()], bytes, release };
}

/** A decision to fetch, as pull-bulk.ts takes it. */
function bulkItem(d: Decision): BulkItem {
  return { rel: d.rel, r: d.r as Sig, l: d.l };
}

function sameKnown(a: Sig | undefined, b: Sig | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
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

/**
 * Remote deletes (remote-fix.ts: never through a folder the server made a symlink since the listing):
 * leftovers whole, then files and links one by one, folders with rmdir (kept when something new is
 * inside). A file the server refuses to remove is a warning; it is returned (not agreed as deleted: the
 * next pass deletes it again).
 */
async function remoteDeletes(h: PassHost, conn: Connection, deepestFirst: readonly Decision[], leftovers: readonly string[]): Promise<Set<string>> {
  const ops: FixOp[] = [...removeOps(leftovers), ...deepestFirst.map((d): FixOp => ({ k: d.r?.t === 'd' ? 'D' : 'F', rel: d.rel }))];
  const rep = await runFix(conn, h.remoteRoot, ops, { what: 'deleting' });
  if (rep.denied.length > 0) throw new OutsideRootError(rep.denied[0], h.remoteRoot);
  if (rep.code !== 0 && rep.failed.length === 0) throw new RemoteError(`deleting in '${h.remoteRoot}' failed (exit ${rep.code}): ${rep.stderr.trim()}`, rep.code, rep.stderr);
  for (const rel of rep.busy) h.warn(busyWarning(rel));
  for (const [rel, msg] of rep.failed) {
    const dir = path.posix.dirname(rel);
    h.warn(`'${rel}' was deleted on the laptop but could not be deleted in the container (${msg}); it is kept there and deleted again by the next pass. Make its folder writable there (chmod u+w ${shQuote(dir)})`);
  }
  return new Set(rep.failed.map(([rel]) => rel));
}
