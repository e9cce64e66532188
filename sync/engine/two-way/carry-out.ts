/**
 * The steps of a two-way pass that change either side, in the order reconcile.ts runs them once the
 * paths are classified: deletes (deepest first), pushes (the mirror's apply under guards), pulls
 * (local-write.ts: temp + rename), conflict copies. Each step writes only what its decisions say, each
 * path only if it is still what was classified; a path changed meanwhile is skipped (`Carry.skip`), and
 * the next pass looks at it again. What the steps did goes into `Carry.done`; what both sides then
 * agree on is returned for the ancestor (reconcile.ts records it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyPlan } from '../apply';
import { planDiff } from '../plan';
import { busyWarning, FixOp, remoteFix, removeOps, runFix } from '../remote-fix';
import { OutsideRootError } from '../remote-helper';
import { movedFrom, RemoteRootMovedError } from '../remote-place';
import { Connection, RemoteError } from '../transport';
import { Entry, shQuote, Tree } from '../tree';
import { Decision } from './classify';
import { ChangedMeanwhile, commitFetched, deleteLocal, dropFetched, fetchBytes, Fetched, keepConflictCopy, pullDir, pullLink } from './local-write';
import { BulkItem, fetchAsListed } from './pull-bulk';
import { PushSection } from './push-inline';
import { guardOverwrites, Guards, releaseGuards } from './remote-guard';
import { ExactListing } from './remote-list';
import type { PassHost } from './reconcile';
import { Agreed, ConflictRecord, Sig } from './state-store';

/** What a pass did, as PassStats reports it. */
export interface Done {
  pushed: string[];
  pulled: string[];
  deletedLocal: string[];
  deletedRemote: string[];
  conflicts: number;
  bytes: number;
  /** Something changed while the pass ran (left as it was): another pass is owed. */
  retry: boolean;
  again: string[];
}

/** The guard releases a pass has started or may start, each returning the same promise when called again. */
export type Releases = (() => Promise<boolean>)[];

/** What the steps of one pass share. */
export interface Carry {
  readonly h: PassHost;
  readonly conn: Connection;
  readonly decisions: ReadonlyMap<string, Decision>;
  readonly remote: ExactListing;
  readonly local: Tree;
  readonly done: Done;
  /** The decisions of one action, in tree order (parents first). */
  of(action: Decision['action']): Decision[];
  /** A path left as it is: a race (`done.retry`), or a local error warned; anything else is thrown. */
  skip(d: Decision, e: unknown): void;
  /** The listing's sig of a remote path (what a fetch must still find). */
  rsig(rel: string): Sig | undefined;
}

const skipRel = (c: Carry) => (rel: string, e: unknown): void => c.skip(c.decisions.get(rel) as Decision, e);


/** 1. Deletes, deepest first; locally each only if still what was classified. Returns the remote deletes decided. */
export async function deletes(c: Carry, delLocal: readonly Decision[], leftovers: readonly string[]): Promise<Decision[]> {
  const { h, done } = c;
  h.step('deleting');
  for (const d of [...delLocal].reverse()) {
    try {
      deleteLocal(h.localRoot, d.rel, d.l as Sig);
      done.deletedLocal.push(d.rel);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY') continue; // something new inside: kept
      c.skip(d, e);
    }
  }
  const delRemote = c.of('delete-remote');
  if (delRemote.length > 0 || leftovers.length > 0) {
    const kept = await remoteDeletes(h, c.conn, [...delRemote].reverse(), leftovers);
    // Kept there: not agreed as deleted (nor the folders holding it), so the next pass deletes them again.
    for (const d of delRemote) if (kept.has(d.rel) || [...kept].some((k) => k.startsWith(`${d.rel}/`))) d.action = 'hold';
    done.deletedRemote.push(...delRemote.filter((d) => d.action === 'delete-remote').map((d) => d.rel));
  }
  return delRemote;
}

/**
 * 2. Pushes: the mirror's apply over exactly these paths (files always sent: the decision was made).
 * Files swapped in with the listing are done (their guards go into the same release). Returns the paths
 * pushed and the guards' release under way (not waited for: the session's next command is sent behind
 * it on the same shell; a kept container write asks for another pass when it comes).
 */
export async function pushes(c: Carry, delRemote: readonly Decision[], swapped: SwapsDone | undefined, releases: Releases): Promise<{ pushedOk: Set<string>; released?: Promise<boolean> }> {
  const { h, conn, done, remote, local } = c;
  const push = c.of('push');
  const pushedOk = new Set<string>();
  let released: Promise<boolean> | undefined;
  if (swapped) {
    done.pushed.push(...swapped.rels);
    done.bytes += swapped.bytes;
  }
  if (push.length === 0 && swapped && conn.alive) released = swapped.release();
  if (push.length === 0) return { pushedOk, released };
  h.step('sending');
  // A remote file written since the listing is not overwritten (left for the next pass); one written
  // in place during the upload is kept beside it (remote-guard.ts).
  const overwrites = push.filter((d) => d.r?.t === 'f' && !delRemote.some((x) => x.rel === d.rel)).map((d) => d.rel);
  const listed = (rel: string): Entry | undefined => remote.tree.get(rel);
  const guards = await guardOverwrites(h.run, h.remoteRoot, overwrites, listed, conn.listedRoots.get(h.remoteRoot));
  const moved = guards.moved;
  if (moved.size > 0) {
    done.retry = true;
    done.again.push(...moved);
  }
  const want = new Map<string, Entry>();
  const have = new Map<string, Entry>();
  for (const d of push.filter((x) => !moved.has(x.rel))) {
    want.set(d.rel, local.get(d.rel) as Entry);
    const r = remote.tree.get(d.rel);
    if (r && !delRemote.some((x) => x.rel === d.rel)) have.set(d.rel, r.type === 'file' ? { ...r, mtimeMs: -1 } : r);
  }
  const plan = planDiff(want, have);
  const release = (): Promise<boolean> => Promise.all([releaseAndWarn(h, conn, guards), swapped?.release() ?? false]).then(([a, b]) => a || b);
  let res: Awaited<ReturnType<typeof applyPlan>>;
  try {
    res = await applyPlan(h.ctx(conn, remote.tree), plan);
  } catch (e) {
    if (conn.alive) await release().catch(() => undefined);
    throw e;
  }
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
  return { pushedOk, released };
}

/**
 * 3. Pulls: folders (parents first), then links, files that came inside the listing, the other files.
 * Returns each path pulled with the local sig it now has, and a file's content hash.
 */
export async function pulls(c: Carry): Promise<{ sigs: Map<string, Sig>; hashes: Map<string, string | undefined> }> {
  const { h, done, remote } = c;
  const pull = c.of('pull');
  const sigs = new Map<string, Sig>();
  const hashes = new Map<string, string | undefined>();
  if (pull.length === 0) return { sigs, hashes };
  h.step('fetching');
  for (const d of pull.filter((x) => x.r?.t === 'd')) {
    try {
      sigs.set(d.rel, pullDir(h.localRoot, d.rel, d.r as Sig, d.l));
    } catch (e) {
      c.skip(d, e);
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
      if (r.t === 'l') sigs.set(d.rel, pullLink(h.localRoot, d.rel, r, d.l));
      else {
        const f = fetchBytes([inline.get(d.rel) as Buffer], h.localRoot, d.rel, r, d.l);
        sigs.set(d.rel, commitPull(f, d));
        hashes.set(d.rel, f.h);
      }
      if (r.t === 'f') done.bytes += r.s;
    } catch (e) {
      c.skip(d, e);
    }
  }
  const fetched = await fetchAsListed(h, c.conn, files.map(bulkItem), c.rsig, skipRel(c));
  let at = 0;
  try {
    for (; at < fetched.length; at++) {
      const f = fetched[at];
      try {
        sigs.set(f.rel, commitPull(f, c.decisions.get(f.rel) as Decision));
        hashes.set(f.rel, f.h);
        done.bytes += f.sig.s;
      } catch (e) {
        dropFetched(f);
        c.skip(c.decisions.get(f.rel) as Decision, e);
      }
    }
  } finally {
    // An error the pass does not skip ends it: the files fetched after it leave no temporary file.
    for (const f of fetched.slice(at + 1)) dropFetched(f);
  }
  done.pulled.push(...sigs.keys());
  return { sigs, hashes };
}

/**
 * 4. Conflicts: the remote version kept beside the local file (unless the bytes are the same). Returns
 * the paths found to hold the same bytes on both sides: agreed now.
 */
export async function conflicts(c: Carry): Promise<Map<string, Agreed>> {
  const { h, conn, done } = c;
  const store = h.store;
  const agreedNow = new Map<string, Agreed>();
  const open = c.of('conflict').filter((d) => {
    const known = store.conflict(d.rel);
    if (!known || !sameKnown(known.r, d.r)) return true;
    if (!sameKnown(known.l, d.l)) store.setConflict({ ...known, l: d.l });
    return false;
  });
  // Both sides files: the remote versions are fetched together (as pulls are) before any copy is kept.
  const both = open.filter((d) => d.l?.t === 'f' && d.r?.t === 'f');
  const copies = new Map<string, string>();
  const fetchedCopies = await fetchAsListed(h, conn, both.map(bulkItem), c.rsig, skipRel(c));
  try {
    for (const f of fetchedCopies) {
      const d = c.decisions.get(f.rel) as Decision;
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
        c.skip(d, e);
      }
    }
  } finally {
    for (const f of fetchedCopies) dropFetched(f);
  }
  const bothRels = new Set(both.map((d) => d.rel));
  for (const d of open) {
    if (agreedNow.has(d.rel)) continue;
    // Both files, but no copy kept (the remote version changed while fetched, or a local error): skipped above.
    if (bothRels.has(d.rel) && !copies.has(d.rel)) continue;
    const rec: ConflictRecord = { rel: d.rel, copy: copies.get(d.rel), l: d.l, r: d.r, at: new Date().toISOString(), why: d.why ?? 'changed on both sides' };
    store.setConflict(rec);
    done.conflicts++;
    h.conflict(rec, true);
  }
  return agreedNow;
}

/** Releases push guards (remote-guard.ts); true when a container write was kept beside a file (warned). */
function releaseAndWarn(h: PassHost, conn: Connection, guards: Guards): Promise<boolean> {
  if (guards.held.size === 0) return Promise.resolve(false);
  const helper = h.helper && h.store.remoteRootId ? { rootId: h.store.remoteRootId } : undefined;
  return releaseGuards(h.run, h.remoteRoot, guards, (rel, stat) => h.lookedAfter?.(rel, stat), helper, conn.listedRoots.get(h.remoteRoot)).then((kept) => {
    for (const [rel, copy] of kept) h.warn(`'${rel}' was written in the container while the laptop's version was sent; the container's version is kept as '${copy}'`);
    return kept.size > 0;
  });
}

export interface SwapsDone {
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
export function swapsDone(h: PassHost, conn: Connection, swap: PushSection, listed = false): SwapsDone {
  let bytes = 0;
  for (const [rel, s] of swap.swapped) {
    h.store.agree(rel, { l: s.l, r: s.r, h: s.h });
    bytes += s.l.s;
    if (listed) h.swapped?.(rel, s.guard, s.after);
  }
  let releasing: Promise<boolean> | undefined;
  const release = (): Promise<boolean> => (releasing ??= conn.alive ? releaseAndWarn(h, conn, swap.guarded()) : Promise.resolve(false));
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
  const moved = movedFrom(rep.code, rep.stderr);
  if (moved) throw new RemoteRootMovedError(h.remoteRoot, moved.listed, moved.now);
  if (rep.code !== 0 && rep.failed.length === 0) throw new RemoteError(`deleting in '${h.remoteRoot}' failed (exit ${rep.code}): ${rep.stderr.trim()}`, rep.code, rep.stderr);
  for (const rel of rep.busy) h.warn(busyWarning(rel));
  for (const [rel, msg] of rep.failed) {
    const dir = path.posix.dirname(rel);
    h.warn(`'${rel}' was deleted on the laptop but could not be deleted in the container (${msg}); it is kept there and deleted again by the next pass. Make its folder writable there (chmod u+w ${shQuote(dir)})`);
  }
  return new Set(rep.failed.map(([rel]) => rel));
}
