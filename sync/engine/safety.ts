/**
 * The mirror's safety checks, each a named function called from every place it applies (Mutagen's
 * `safety.go` is the model): a root that vanished or was replaced halts the session; symlinks are
 * contained by resolution, not by text; paths that could not be read keep their remote copy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Entry, Refusal, Tree } from './tree';

/** Links followed while resolving one symlink before it counts as a loop (the kernel's own limit). */
const MAX_HOPS = 40;

/**
 * Whether the symlink at `rel` (relative to `root`) with `target` resolves inside the root, following
 * the links it passes through inside the tree (`a/b/c/up -> ../../..` then `p -> a/b/c/up/../..`
 * leads out, although the text of `p` stays inside). Components that do not exist (yet) are taken
 * as written. Absolute targets, loops and anything that climbs above the root are outside.
 */
export function linkStaysInside(root: string, rel: string, target: string): boolean {
  if (target === '' || path.posix.isAbsolute(target)) return false;
  const at: string[] = rel.split('/').slice(0, -1);
  const todo: string[] = target.split('/').reverse();
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.pop() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (at.length === 0) return false;
      at.pop();
      continue;
    }
    at.push(c);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(path.join(root, ...at));
    } catch {
      st = undefined; // missing: the rest is taken as written
    }
    if (!st?.isSymbolicLink()) continue;
    if (++hops > MAX_HOPS) return false;
    let next: string;
    try {
      next = fs.readlinkSync(path.join(root, ...at));
    } catch {
      return false;
    }
    if (next === '' || path.posix.isAbsolute(next)) return false;
    at.pop();
    for (const p of next.split('/').reverse()) todo.push(p);
  }
  return true;
}

/** What identifies the local root: the device and inode it had when the session started. */
export interface RootIdentity {
  readonly dev: number;
  readonly ino: number;
  /** The path was a symlink (to the folder) when the session started. */
  readonly link?: boolean;
}

export function rootIdentity(localRoot: string): RootIdentity {
  const st = fs.statSync(localRoot);
  return { dev: st.dev, ino: st.ino, link: fs.lstatSync(localRoot).isSymbolicLink() };
}

/** Thrown when the local root is gone, replaced or emptied: the session stops, nothing is deleted. */
export class RootHaltError extends Error {}

/**
 * Halts (throws RootHaltError) when the local root no longer is the folder the session started with:
 * removed, moved away, replaced by another folder or a file, or unmounted. `known` is how many entries
 * the remote holds: a root that held at least 2 and now lists none (ignored names aside) was emptied
 * (an unmounted disk, a wiped checkout), and mirroring that would delete everything remotely.
 */
export function haltIfRootGone(localRoot: string, id: RootIdentity, known: number, isIgnored: (name: string, isDir: boolean) => boolean): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(localRoot);
  } catch {
    st = undefined;
  }
  if (!st) throw new RootHaltError(`local folder '${localRoot}' is gone (removed, moved away or unmounted); the sync stopped and deleted nothing remotely. Restore the folder and start the sync again`);
  if (!st.isDirectory()) throw new RootHaltError(`local folder '${localRoot}' was replaced by a file; the sync stopped and deleted nothing remotely. Restore the folder and start the sync again`);
  if (st.dev !== id.dev || st.ino !== id.ino) {
    throw new RootHaltError(`local folder '${localRoot}' was replaced by another folder (or re-mounted) while it was mirrored; the sync stopped and deleted nothing remotely. Start the sync again to mirror the new folder`);
  }
  // Moved away and a symlink to it put in its place: the same folder, but no longer the path the session
  // watches (a watcher may go on naming paths by either place, or by none).
  if (id.link === false && fs.lstatSync(localRoot, { throwIfNoEntry: false })?.isSymbolicLink()) {
    throw new RootHaltError(`local folder '${localRoot}' was replaced by a symlink while it was mirrored; the sync stopped and deleted nothing remotely. Start the sync again (with the folder's real path)`);
  }
  if (known < 2) return;
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(localRoot, { withFileTypes: true });
  } catch (e) {
    throw new RootHaltError(`local folder '${localRoot}' cannot be listed (${(e as NodeJS.ErrnoException).code}); the sync stopped and deleted nothing remotely. Fix its permissions and start the sync again`);
  }
  if (names.every((d) => isIgnored(d.name, d.isDirectory()))) {
    throw new RootHaltError(`local folder '${localRoot}' was emptied (the remote holds ${known} entries); the sync stopped and deleted nothing remotely. If you meant to empty it, delete the remote files yourself or start the sync again`);
  }
}

/**
 * For every refusal marked `keep` (a path that exists locally but could not be read), makes `local`
 * say what `remote` holds at and below that path, so the plan neither sends nor deletes anything there.
 */
export function keepRemoteFor(refused: readonly Refusal[], local: Tree, remote: Tree): void {
  const folders: string[] = [];
  for (const r of refused) {
    if (!r.keep) continue;
    // A file (or a path that is a file on both sides) is one entry; only folders need the trees walked.
    if (local.get(r.rel)?.type !== 'dir' && remote.get(r.rel)?.type !== 'dir' && r.rel !== '') {
      local.delete(r.rel);
      const e = remote.get(r.rel);
      if (e) local.set(r.rel, { ...e, kept: true });
    } else folders.push(r.rel);
  }
  if (folders.length === 0) return;
  // One walk of each tree for all refused folders (not one per folder).
  const kept = new Set(folders);
  const under = (k: string): boolean => {
    if (kept.has('')) return true;
    for (let p = k; ; ) {
      if (kept.has(p)) return true;
      const i = p.lastIndexOf('/');
      if (i < 0) return false;
      p = p.slice(0, i);
    }
  };
  for (const k of [...local.keys()]) if (under(k)) local.delete(k);
  for (const [k, v] of remote) if (under(k)) local.set(k, { ...(v as Entry), kept: true });
}
