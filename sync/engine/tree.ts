/**
 * Trees as the runner sees them: one compact entry per path (type, size, mtime, mode, link target),
 * keyed by POSIX path relative to the root. The local scanner walks with lstat (never following
 * symlinks); the remote listing is parsed from `find -printf` output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isUtf8 } from 'node:buffer';
import { IgnoreMatcher } from './ignore';
import { linkStaysInside } from './safety';

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
  /**
   * A local file's change time (ms), which only the kernel sets: two-way tells by it a rewrite that
   * put the size and the mtime back (state-store.ts sameLocal).
   */
  readonly ctimeMs?: number;
  /** Copied from the remote for a path that could not be read locally: leave it as it is. */
  readonly kept?: boolean;
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

/** A local path not sent: a symlink that leads outside the root, an unreadable path, a foreign name. */
export interface Refusal {
  readonly rel: string;
  readonly reason: string;
  /** The path exists but could not be read: keep the remote copy as it is (never delete it). */
  readonly keep?: boolean;
}

export function entryFromStats(st: fs.Stats, target?: string): Entry | undefined {
  const mode = st.mode & 0o7777;
  if (st.isFile()) return { type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode, exact: true, ctimeMs: st.ctimeMs };
  if (st.isDirectory()) return { type: 'dir', size: 0, mtimeMs: st.mtimeMs, mode, exact: true, ino: st.ino };
  if (st.isSymbolicLink()) return { type: 'symlink', size: 0, mtimeMs: st.mtimeMs, mode: 0o777, target, exact: true };
  return undefined; // sockets, fifos, devices: not mirrored
}

/**
 * Equal as far as the remote can tell: type, size, whole-second mtime, permission bits, link target;
 * between two local stats, a file's change time too (sameCtime).
 */
export function sameEntry(a: Entry, b: Entry): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'dir') return a.mode === b.mode;
  if (a.type === 'symlink') return a.target === b.target;
  if (a.size !== b.size || a.mode !== b.mode) return false;
  return sameMtime(a, b) && sameCtime(a, b);
}

/**
 * Whether two local stats of a file agree on its change time (either unknown: they do). New bytes of
 * the same size under the old mtime (`cp -p`, `touch -r`, a reproducible build's fixed dates, an
 * archive unpacked over the file) differ only there: only the kernel sets it. It also moves for what
 * leaves the bytes alone (a chmod or chown, a hard link made or removed), so the plan compares such a
 * file by content before it sends it (plan.ts `verify`, verify.ts).
 */
export function sameCtime(a: Entry, b: Entry): boolean {
  return !(a.exact && b.exact) || a.ctimeMs === undefined || b.ctimeMs === undefined || a.ctimeMs === b.ctimeMs;
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
  /** Warnings for names other systems cannot hold (portable-names.ts), when the scan made them. */
  readonly portable?: Refusal[];
}

export interface ScanOptions {
  /** Called for each folder before it is listed (e.g. to watch it first). */
  readonly onDir?: (rel: string) => void;
  /** Called for each file with more than one hard link, with a key shared by all its names. */
  readonly onHardLink?: (rel: string, key: string) => void;
}

/** Error codes that mean "gone while we looked": the path is simply not there (a normal race). */
function vanished(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** How long the asynchronous walk works before it lets the event loop run (SSH packets, watch events). */
const SLICE_MS = 5;

/**
 * Walks `root/base` (base '' for the whole root) with lstat, skipping ignored paths. Paths that vanish
 * during the walk are skipped (a race with the user's edits is normal). A path that cannot be read
 * (permissions, a name too long, an I/O error) or named (not UTF-8) is refused with a reason; refusals
 * marked `keep` tell the caller to leave the remote copy as it is, never to delete it.
 *
 * The walk is synchronous in slices of a few milliseconds (lstat of a small file costs a few
 * microseconds, far less than a thread-pool round trip); between slices the event loop runs, so an SSH
 * handshake or a remote listing under way meanwhile is not held up until the whole tree is walked.
 */
export async function scanLocal(root: string, ig: IgnoreMatcher, base = '', into: Tree = new Map(), refused: Refusal[] = [], options: ScanOptions = {}): Promise<ScanResult> {
  const w = walker(root, ig, base, into, refused, options);
  while (!w(performance.now() + SLICE_MS)) await new Promise((resolve) => setImmediate(resolve));
  return { tree: into, refused };
}

/**
 * One path not a folder, from the lstat the caller already made (a watch batch's dirty file): what
 * `scanLocalSync(root, ig, rel, ...)` adds for it, without a second lstat.
 */
export function takeEntry(root: string, rel: string, st: fs.Stats, into: Tree, refused: Refusal[], options: ScanOptions = {}): void {
  const e = toEntry(root, rel, st, refused);
  if (!e) return;
  into.set(rel, e);
  if (e.type === 'file' && st.nlink > 1) options.onHardLink?.(rel, `${st.dev}:${st.ino}`);
}

/** The walk in one go, without yielding (see scanLocal). */
export function scanLocalSync(root: string, ig: IgnoreMatcher, base = '', into: Tree = new Map(), refused: Refusal[] = [], options: ScanOptions = {}): ScanResult {
  walker(root, ig, base, into, refused, options)(Infinity);
  return { tree: into, refused };
}

/** The walk's state; each call lists folders until `until` (performance.now()) has passed; true once done. */
function walker(root: string, ig: IgnoreMatcher, base: string, into: Tree, refused: Refusal[], options: ScanOptions): (until: number) => boolean {
  const stack: string[] = [base];
  const take = (rel: string, st: fs.Stats): Entry | undefined => {
    const e = toEntry(root, rel, st, refused);
    if (!e) return undefined;
    into.set(rel, e);
    if (e.type === 'file' && st.nlink > 1) options.onHardLink?.(rel, `${st.dev}:${st.ino}`);
    return e;
  };
  if (base !== '') {
    const st = lstatForScan(root, base, refused);
    if (!st || take(base, st)?.type !== 'dir') stack.length = 0;
  }
  return (until) => {
    while (stack.length > 0) {
      const dir = stack.pop() as string;
      options.onDir?.(dir);
      let names: fs.Dirent[];
      try {
        names = fs.readdirSync(under(root, dir), { withFileTypes: true });
      } catch (e) {
        if (vanished(e)) continue;
        refused.push(unreadable(root, dir, e, 'listed'));
        continue;
      }
      let spelled: Set<string> | undefined;
      for (const d of names) {
        if (d.name.includes('\uFFFD')) {
          spelled ??= utf8Names(root, dir, refused);
          if (!spelled.has(d.name)) continue;
        }
        const rel = dir === '' ? d.name : `${dir}/${d.name}`;
        const isDir = d.isDirectory();
        if (ig.ignores(rel, isDir)) continue;
        const st = lstatForScan(root, rel, refused);
        if (!st) continue;
        if (st.isDirectory() !== isDir && ig.ignores(rel, st.isDirectory())) continue;
        if (take(rel, st)?.type === 'dir') stack.push(rel);
      }
      if (until !== Infinity && performance.now() >= until) return stack.length === 0;
    }
    return true;
  };
}

/** `root/rel` for the walk's own names (no '.', '..' or '//' to normalize): path.join costs more than the lstat's setup. */
function under(root: string, rel: string): string {
  return rel === '' ? root : `${root}/${rel}`;
}

/** lstat for the walk: undefined when vanished; a refusal (remote kept) when it cannot be read. */
function lstatForScan(root: string, rel: string, refused: Refusal[]): fs.Stats | undefined {
  try {
    return fs.lstatSync(under(root, rel));
  } catch (e) {
    if (!vanished(e)) refused.push(unreadable(root, rel, e, 'read'));
    return undefined;
  }
}

function unreadable(root: string, rel: string, e: unknown, what: string): Refusal {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  const where = rel === '' ? root : rel;
  const hint = code === 'ENAMETOOLONG' ? 'Shorten the path' : code === 'EACCES' || code === 'EPERM' ? 'Fix its permissions (chmod/chown)' : 'Check the disk';
  return { rel, keep: true, reason: `'${where}' cannot be ${what} (${code}); it is skipped and its remote copy left as it is. ${hint}, or add it to .kubedevignore` };
}

/**
 * The names of `dir` that are valid UTF-8 (a name may hold U+FFFD itself); names that are not cannot be
 * carried byte-exact, so each is refused with a warning (nothing remote is deleted for them).
 */
function utf8Names(root: string, dir: string, refused: Refusal[]): Set<string> {
  const ok = new Set<string>();
  let raw: Buffer[];
  try {
    raw = fs.readdirSync(path.join(root, dir), { encoding: 'buffer' });
  } catch {
    return ok;
  }
  for (const b of raw) {
    if (isUtf8(b)) {
      ok.add(b.toString('utf8'));
      continue;
    }
    const shown = b.toString('utf8');
    const rel = dir === '' ? shown : `${dir}/${shown}`;
    refused.push({ rel, reason: `'${rel}' has a name that is not valid UTF-8 (bytes ${b.toString('hex')}); it is not sent. Rename it, or add it to .kubedevignore` });
  }
  return ok;
}

function toEntry(root: string, rel: string, st: fs.Stats, refused: Refusal[]): Entry | undefined {
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = fs.readlinkSync(path.join(root, rel));
    } catch (e) {
      if (!vanished(e)) refused.push(unreadable(root, rel, e, 'read'));
      return undefined;
    }
    if (!linkStaysInside(root, rel, target)) {
      refused.push({ rel, reason: `symlink '${rel}' points outside the synced folder (-> ${target}); it is not sent. Point it inside the folder, or add it to .kubedevignore` });
      return undefined;
    }
    return entryFromStats(st, target);
  }
  const e = entryFromStats(st);
  if (!e) refused.push({ rel, keep: true, reason: `'${rel}' is a ${specialKind(st)}, which cannot be mirrored; it is skipped and its remote copy left as it is. Add it to .kubedevignore to silence this` });
  return e;
}

function specialKind(st: fs.Stats): string {
  if (st.isFIFO()) return 'named pipe';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'device';
  return 'special file';
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

/** Quotes a string for POSIX sh. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
