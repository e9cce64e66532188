/**
 * Trees as the runner sees them: one compact entry per path (type, size, mtime, mode, link target),
 * keyed by POSIX path relative to the root. The local scanner walks with lstat (never following
 * symlinks); the remote listing is parsed from `find -printf` output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnoreMatcher } from './ignore';
import { CompactIndex } from './index-store';

export type EntryType = 'file' | 'dir' | 'symlink';

export interface Entry {
  readonly type: EntryType;
  readonly size: number;
  /** Modification time in ms. Remote listings and local stats are compared at whole seconds. */
  readonly mtimeMs: number;
  /** Permission bits (mode & 0o7777). */
  readonly mode: number;
  /** Symlink target, as written in the link. */
  readonly target?: string;
  /** Set on entries read from a local stat: mtimes then compare to the nanosecond, not the second. */
  readonly exact?: boolean;
  /** Local inode (local entries only): tells a folder replaced by another of the same name. */
  readonly ino?: number;
}

/** What the runner needs of a tree; a Map<string, Entry> is one, and so is the CompactIndex. */
export interface Tree {
  readonly size: number;
  get(rel: string): Entry | undefined;
  has(rel: string): boolean;
  set(rel: string, e: Entry): unknown;
  delete(rel: string): boolean;
  keys(): IterableIterator<string>;
  entries(): IterableIterator<[string, Entry]>;
  [Symbol.iterator](): IterableIterator<[string, Entry]>;
}

/** A local symlink that points outside the root (or is absolute): refused, never sent. */
export interface Refusal {
  readonly rel: string;
  readonly reason: string;
}

export function entryFromStats(st: fs.Stats, target?: string): Entry | undefined {
  const mode = st.mode & 0o7777;
  if (st.isFile()) return { type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode, exact: true };
  if (st.isDirectory()) return { type: 'dir', size: 0, mtimeMs: st.mtimeMs, mode, exact: true, ino: st.ino };
  if (st.isSymbolicLink()) return { type: 'symlink', size: 0, mtimeMs: st.mtimeMs, mode: 0o777, target, exact: true };
  return undefined; // sockets, fifos, devices: not mirrored
}

/** Whether a symlink at `rel` with `target` stays inside the root. */
export function symlinkInside(rel: string, target: string): boolean {
  if (target === '' || path.posix.isAbsolute(target)) return false;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
  return resolved !== '..' && !resolved.startsWith('../');
}

/** Equal as far as the remote can tell: type, size, whole-second mtime, permission bits, link target. */
export function sameEntry(a: Entry, b: Entry): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'dir') return a.mode === b.mode;
  if (a.type === 'symlink') return a.target === b.target;
  if (a.size !== b.size || a.mode !== b.mode) return false;
  return sameMtime(a, b);
}

/**
 * Whether `local` and `remote` mtimes agree. Two local stats compare exactly. Against a remote listing
 * the runner compares whole seconds (tar and SFTP carry whole seconds), and a remote mtime with a
 * fraction (marked by parseRemoteScan) was not written by the runner, so it never matches.
 */
export function sameMtime(local: Entry, remote: Entry): boolean {
  if (local.exact && remote.exact) return local.mtimeMs === remote.mtimeMs;
  return Math.floor(local.mtimeMs / 1000) * 1000 === remote.mtimeMs;
}

export interface ScanResult {
  readonly tree: Tree;
  readonly refused: Refusal[];
}

/**
 * Walks `root/base` (base '' for the whole root) with lstat, skipping ignored paths. Paths that vanish
 * during the walk are skipped (a race with the user's edits is normal); other errors are thrown.
 * `onDir(rel)` is called for each folder before it is listed.
 */
export async function scanLocal(root: string, ig: IgnoreMatcher, base = '', into: Tree = new Map(), refused: Refusal[] = [], onDir?: (rel: string) => void): Promise<ScanResult> {
  return scanLocalSync(root, ig, base, into, refused, onDir);
}

/**
 * The walk itself, synchronous: lstat of a small file costs a few microseconds, far less than a
 * thread-pool round trip, so a synchronous walk of 10,000 files takes tens of milliseconds.
 */
export function scanLocalSync(root: string, ig: IgnoreMatcher, base = '', into: Tree = new Map(), refused: Refusal[] = [], onDir?: (rel: string) => void): ScanResult {
  const stack: string[] = [base];
  if (base !== '') {
    const st = lstatSyncOrUndefined(path.join(root, base));
    if (!st) return { tree: into, refused };
    const e = toEntry(root, base, st, refused);
    if (!e) return { tree: into, refused };
    into.set(base, e);
    if (e.type !== 'dir') return { tree: into, refused };
  }
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    onDir?.(dir); // e.g. start watching it before listing it
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(path.join(root, dir), { withFileTypes: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw e;
    }
    for (const d of names) {
      const rel = dir === '' ? d.name : `${dir}/${d.name}`;
      const isDir = d.isDirectory();
      if (ig.ignores(rel, isDir)) continue;
      const st = lstatSyncOrUndefined(path.join(root, rel));
      if (!st) continue;
      if (st.isDirectory() !== isDir && ig.ignores(rel, st.isDirectory())) continue;
      const e = toEntry(root, rel, st, refused);
      if (!e) continue;
      into.set(rel, e);
      if (e.type === 'dir') stack.push(rel);
    }
  }
  return { tree: into, refused };
}

function lstatSyncOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

function toEntry(root: string, rel: string, st: fs.Stats, refused: Refusal[]): Entry | undefined {
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = fs.readlinkSync(path.join(root, rel));
    } catch {
      return undefined;
    }
    if (!symlinkInside(rel, target)) {
      refused.push({ rel, reason: `symlink '${rel}' points outside the synced folder (-> ${target}); it is not sent. Point it inside the folder, or add it to .kubedevignore` });
      return undefined;
    }
    return entryFromStats(st, target);
  }
  return entryFromStats(st);
}

export async function lstatOrUndefined(p: string): Promise<fs.Stats | undefined> {
  try {
    return await fs.promises.lstat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/**
 * The remote listing command: prints `type NUL size NUL mtime NUL mode NUL path NUL target NUL` per
 * entry under the root (GNU find). Names in `prune` are not descended into (and not listed).
 */
export function remoteScanCommand(root: string, prune: readonly string[]): string {
  const pruneExpr = prune.length > 0 ? `\\( ${prune.map((n) => `-name ${shQuote(n)}`).join(' -o ')} -o -name '.kubedev-stage-*' \\) -prune -o` : `-name '.kubedev-stage-*' -prune -o`;
  return `cd ${shQuote(root)} && find . -mindepth 1 ${pruneExpr} -printf '%y\\0%s\\0%T@\\0%m\\0%P\\0%l\\0'`;
}

/** Parses remoteScanCommand's output (ignored paths dropped, internal temp names reported apart). */
export function parseRemoteScan(out: Buffer, ig: IgnoreMatcher): { tree: Tree; leftovers: string[] } {
  const tree: Tree = new CompactIndex();
  const leftovers: string[] = [];
  const fields = out.toString('utf8').split('\0');
  for (let i = 0; i + 5 < fields.length; i += 6) {
    const [y, size, mtime, mode, rel, target] = fields.slice(i, i + 6);
    const type: EntryType | undefined = y === 'f' ? 'file' : y === 'd' ? 'dir' : y === 'l' ? 'symlink' : undefined;
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    if (base.startsWith('.kubedev-')) {
      leftovers.push(rel);
      continue;
    }
    if (!type || ig.ignores(rel, type === 'dir')) continue;
    // skip entries below an ignored or leftover folder
    tree.set(rel, {
      type,
      size: Number(size),
      // Whole seconds; + 0.5 ms marks a fraction (a time the runner did not set: never equal).
      mtimeMs: Number(mtime.split('.')[0]) * 1000 + (/^\d+\.0*$/.test(mtime) || !mtime.includes('.') ? 0 : 0.5),
      mode: type === 'symlink' ? 0o777 : parseInt(mode, 8),
      target: type === 'symlink' ? target : undefined,
    });
  }
  // drop entries whose parent is not in the tree (inside ignored folders)
  for (const rel of tree.keys()) {
    const slash = rel.lastIndexOf('/');
    if (slash > 0 && !tree.has(rel.slice(0, slash))) tree.delete(rel);
  }
  return { tree, leftovers };
}

/** Quotes a string for POSIX sh. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
