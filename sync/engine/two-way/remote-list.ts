/**
 * The remote listing for two-way: the same `find -printf` as the mirror's (after a random marker,
 * internal names reported apart, foreign names left alone), with mtimes kept to the nanosecond (a
 * container that rewrites a file twice in one second with the same size is still seen), and the root's
 * identity (`dev:ino`) so that a root replaced by another folder (a pod restarted on a new volume) halts.
 */
import { IgnoreMatcher, INTERNAL_PREFIX } from '../ignore';
import { fieldsAfterMarker, listingMarker, remoteScanCommand, topMost } from '../remote-scan';
import { Connection, RemoteError } from '../transport';
import { Entry, EntryType, shQuote } from '../tree';

export interface ExactListing {
  readonly tree: Map<string, Entry>;
  readonly leftovers: string[];
  readonly foreign: string[];
  /** `dev:ino` of the root. */
  readonly rootId: string;
}

/** Thrown when the remote root is gone: the session halts, nothing is deleted locally. */
export class RemoteRootGoneError extends Error {}

const GONE = 41;

export async function listRemoteExact(conn: Connection, root: string, ig: IgnoreMatcher, signal?: AbortSignal): Promise<ExactListing> {
  const marker = listingMarker();
  const q = shQuote(root);
  const command = `[ -d ${q} ] || exit ${GONE}; stat -c 'KUBEDEV-ROOT-ID %d:%i' -- ${q} >&2 || exit ${GONE}; ${remoteScanCommand(root, ig.prunableNames, marker)}`;
  const res = await conn.exec(command, undefined, { signal });
  if (res.code === GONE) {
    throw new RemoteRootGoneError(`remote folder '${root}' is gone or is no longer a folder; the sync stopped and deleted nothing locally. Restore it (or the pod's volume) and start the sync again`);
  }
  if (res.code !== 0) throw new RemoteError(`listing remote folder '${root}' failed (exit ${res.code}): ${res.stderr.trim()}. Check that the user may read it and that GNU find is installed`, res.code, res.stderr);
  const rootId = /KUBEDEV-ROOT-ID (\d+:\d+)/.exec(res.stderr)?.[1] ?? '';
  const { fields, foreignAt } = fieldsAfterMarker(res.stdout, marker);
  const tree = new Map<string, Entry>();
  const leftovers: string[] = [];
  const foreign: string[] = [];
  for (let i = 0; i + 5 < fields.length; i += 6) {
    const [y, size, mtime, mode, rel, target] = fields.slice(i, i + 6);
    if (foreignAt.has(i + 4) || (y === 'l' && foreignAt.has(i + 5))) {
      foreign.push(rel);
      continue;
    }
    const type: EntryType | undefined = y === 'f' ? 'file' : y === 'd' ? 'dir' : y === 'l' ? 'symlink' : undefined;
    if (rel.slice(rel.lastIndexOf('/') + 1).startsWith(INTERNAL_PREFIX)) {
      leftovers.push(rel);
      continue;
    }
    if (!type || ig.ignores(rel, type === 'dir')) continue;
    tree.set(rel, { type, size: Number(size), mtimeMs: Number(mtime) * 1000, mode: type === 'symlink' ? 0o777 : parseInt(mode, 8), target: type === 'symlink' ? target : undefined });
  }
  for (const rel of tree.keys()) {
    const slash = rel.lastIndexOf('/');
    if (slash > 0 && !tree.has(rel.slice(0, slash))) tree.delete(rel);
  }
  return { tree, leftovers: topMost(leftovers), foreign: topMost(foreign), rootId };
}

/**
 * Of `rels` (remote files the pass is about to overwrite, as listed in `listed`), the ones that changed
 * on the server since: one `find -maxdepth 0 -printf` over exactly those paths, just before the
 * writes. A process in the container writing a file meanwhile is not overwritten (the next pass sees a
 * conflict); the window left is the upload itself.
 */
export async function changedSinceListing(conn: Connection, root: string, rels: readonly string[], listed: (rel: string) => Entry | undefined): Promise<Set<string>> {
  const changed = new Set<string>();
  if (rels.length === 0) return changed;
  const command = `cd ${shQuote(root)} && xargs -0 sh -c 'find "$@" -maxdepth 0 -printf "%p\\\\0%y\\\\0%s\\\\0%T@\\\\0%m\\\\0" 2>/dev/null; exit 0' sh`;
  const res = await conn.exec(command, Buffer.from(rels.map((r) => `./${r}\0`).join('')));
  const now = new Map<string, string[]>();
  const f = res.stdout.toString('utf8').split('\0');
  for (let i = 0; i + 4 < f.length; i += 5) now.set(f[i].slice(2), f.slice(i + 1, i + 5));
  for (const rel of rels) {
    const e = listed(rel);
    const n = now.get(rel);
    if (!e || !n || n[0] !== 'f' || Number(n[1]) !== e.size || Number(n[2]) * 1000 !== e.mtimeMs || parseInt(n[3], 8) !== e.mode) changed.add(rel);
  }
  return changed;
}

/** `p`, or the connection's loss if that comes first (the drop listener is removed either way). */
export async function unlessDropped<T>(conn: Connection, p: Promise<T>): Promise<T> {
  let off: () => void = () => undefined;
  const dropped = new Promise<never>((_, reject) => {
    off = conn.onDrop(reject);
  });
  try {
    return await Promise.race([p, dropped]);
  } finally {
    off();
  }
}
