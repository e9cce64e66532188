/**
 * Writing on the developer's side (two-way pulls): the same guarantees the runner keeps remotely.
 * - Never outside the root, never through a symlink: every folder above the target is lstat'ed and
 *   must be a real folder (checkedParent); files are opened O_NOFOLLOW | O_EXCL under a temporary name.
 * - Atomic: the bytes land in `.kubedev-<random>.tmp` beside the target, get the remote's mode and
 *   mtime, and are renamed over it; a file that did not come whole is never put in place, nor one the
 *   server no longer holds as listed once it was read (the pass asks: Fetched, stillAsListed).
 * - Never over a local change: just before the rename the target is lstat'ed again and must still be
 *   what the classification saw; otherwise nothing is written (the next pass sees a conflict).
 * - Conflict copies never overwrite anything (link(2) refuses an existing name).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { INTERNAL_PREFIX } from '../ignore';
import { linkStaysInside } from '../safety';
import { Entry, entryFromStats } from '../tree';
import { ContentHash, HASHED_MAX, hashOf } from './content-hash';
import { sameLocal, sameSig, Sig, sigOf } from './state-store';

/** A remote file's bytes: a tar member's stream. */
export type Bytes = AsyncIterable<unknown> & { resume(): unknown };

/** A local write refused for safety (a symlink or a file where a folder should be); a warning. */
export class LocalPathError extends Error {}

/** Thrown when the target changed since it was classified: nothing was written. */
export class ChangedMeanwhile extends Error {}

/** Temporary names: a random part per process and a counter (O_EXCL refuses any name that exists). */
const TEMP_STEM = `${INTERNAL_PREFIX}${crypto.randomBytes(6).toString('hex')}-`;
let tempCount = 0;

function tempIn(dir: string): string {
  return path.join(dir, `${TEMP_STEM}${(tempCount++).toString(36)}.tmp`);
}

/**
 * Removes a temporary file of the runner's; one already gone is no error, nor one whose folder went or
 * became a file meanwhile (ENOTDIR: the user flipped it; the temp went with the folder).
 */
function removeTemp(tmp: string): void {
  try {
    fs.unlinkSync(tmp);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
  }
}

/**
 * realpath of each local root, kept while the root still leads to the same folder (a process that
 * lives on, the agent, may meet a root whose link was pointed elsewhere since).
 */
const realRoots = new Map<string, { real: string; dev: number; ino: number }>();

function realRootOf(root: string): string {
  const st = fs.statSync(root);
  const known = realRoots.get(root);
  if (known && known.dev === st.dev && known.ino === st.ino) return known.real;
  const real = fs.realpathSync.native(root);
  realRoots.set(root, { real, dev: st.dev, ino: st.ino });
  return real;
}

/**
 * The absolute parent folder of `rel`, after checking every folder from the root down is a real folder.
 * One realpath(3) answers for the whole chain when it resolves to the same path below the root (no
 * component is a symlink: a link always resolves elsewhere); otherwise each folder is lstat'ed in
 * turn, which gives the exact refusal (or passes, on a file system that folds letter case).
 */
export function checkedParent(root: string, rel: string): string {
  const parts = rel.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) throw new LocalPathError(`'${rel}' is not a plain relative path; nothing was written`);
  if (parts.length === 1) return root;
  const dir = path.join(root, ...parts.slice(0, -1));
  const realRoot = realRootOf(root);
  try {
    // The trailing separator: a file where the folder was fails (ENOTDIR) instead of resolving.
    if (fs.realpathSync.native(dir + path.sep) === path.join(realRoot, ...parts.slice(0, -1))) return dir;
  } catch {
    // missing or not a folder: the walk below says which
  }
  let at = root;
  for (const p of parts.slice(0, -1)) {
    at = path.join(at, p);
    const st = fs.lstatSync(at, { throwIfNoEntry: false });
    if (!st) throw new LocalPathError(`local folder '${path.relative(root, at)}' is missing; '${rel}' was not written`);
    if (!st.isDirectory()) throw new LocalPathError(`local '${path.relative(root, at)}' is ${st.isSymbolicLink() ? 'a symlink' : 'not a folder'}; '${rel}' was not written through it`);
  }
  return at;
}

/** The local sig of `abs` now (undefined when absent). */
export function localSig(abs: string): Sig | undefined {
  // throwIfNoEntry: an absent target is the usual case of a pull, and a thrown error costs ~20 µs.
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(abs, { throwIfNoEntry: false });
  } catch {
    return undefined; // ENOTDIR and the like: nothing there either
  }
  if (!st) return undefined;
  const e = entryFromStats(st, st.isSymbolicLink() ? fs.readlinkSync(abs) : undefined);
  return e ? sigOf(e) : undefined;
}

function expectUnchanged(abs: string, rel: string, expected: Sig | undefined): void {
  if (!sameLocal(localSig(abs), expected)) throw new ChangedMeanwhile(`'${rel}' changed locally while it was fetched; left as it is`);
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

/** A new temporary file in `dir`, opened O_EXCL | O_NOFOLLOW (never an existing name, never through a link). */
function openTemp(dir: string): { tmp: string; fd: number } {
  const tmp = tempIn(dir);
  return { tmp, fd: fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600) };
}

/** Checks the temp holds exactly `r.s` bytes, gives it the remote's mode and mtime; returns its stat. */
function finishTemp(fd: number, r: Sig, what: string): fs.Stats {
  fs.fchmodSync(fd, r.p);
  fs.futimesSync(fd, r.m / 1000, r.m / 1000);
  const st = fs.fstatSync(fd);
  if (st.size !== r.s) throw new ChangedMeanwhile(`remote '${what}' changed while it was fetched (${st.size} bytes, listed ${r.s}); fetched again next pass`);
  return st;
}

/** Writes `source` into a new temporary file in `dir` (exactly `r.s` bytes, or nothing); returns its path and the bytes' hash (up to HASHED_MAX). */
async function writeTemp(source: Bytes, dir: string, r: Sig, what: string): Promise<{ tmp: string; h?: string }> {
  let t: { tmp: string; fd: number };
  try {
    t = openTemp(dir);
  } catch (e) {
    source.resume(); // drained, never written (a bulk stream goes on to the next file)
    throw e;
  }
  let ok = false;
  const hash = r.s <= HASHED_MAX ? new ContentHash() : undefined;
  try {
    for await (const chunk of source) {
      const b = chunk as Buffer;
      hash?.update(b);
      for (let off = 0; off < b.length; ) off += fs.writeSync(t.fd, b, off);
    }
    finishTemp(t.fd, r, what);
    ok = true;
    return { tmp: t.tmp, h: hash?.digest() };
  } finally {
    fs.closeSync(t.fd);
    if (!ok) removeTemp(t.tmp);
  }
}

/**
 * A remote file fetched whole into a temporary file beside its target, not yet put in place: the pass
 * first asks the server whether the file is still the one listed (stillAsListed), since bytes read from
 * a file written meanwhile may be torn or another version than the one the ancestor will record.
 */
export interface Fetched {
  readonly rel: string;
  readonly tmp: string;
  readonly abs: string;
  /** The temporary file's stat: the local side once it is renamed (but for the ctime the rename sets: commitFetched). */
  readonly sig: Sig;
  /** The temporary file's inode. */
  readonly ino: number;
  readonly expected: Sig | undefined;
  /** The bytes' content hash (files up to HASHED_MAX), for the ancestor. */
  readonly h?: string;
}

/**
 * fetchFile for bytes already in memory (a small tar member), all synchronous: the same checks in the
 * same order (real folders above, O_EXCL | O_NOFOLLOW temp, exact size, mode + mtime), without a
 * promise per file.
 */
export function fetchBytes(chunks: readonly Buffer[], root: string, rel: string, r: Sig, expected: Sig | undefined): Fetched {
  const dir = checkedParent(root, rel);
  const { tmp, fd } = openTemp(dir);
  let st: fs.Stats;
  try {
    for (const b of chunks) for (let off = 0; off < b.length; ) off += fs.writeSync(fd, b, off);
    st = finishTemp(fd, r, rel);
  } catch (e) {
    fs.closeSync(fd);
    removeTemp(tmp);
    throw e;
  }
  fs.closeSync(fd);
  // The inode renamed is the one written: its stat is the local side then.
  return { rel, tmp, abs: path.join(dir, path.basename(rel)), sig: sigOf(entryFromStats(st) as Entry), ino: st.ino, expected, h: r.s <= HASHED_MAX ? hashOf(chunks) : undefined };
}

/** `source` (the remote file's bytes) into a temporary file beside the target `rel`. */
export async function fetchFile(source: Bytes, root: string, rel: string, r: Sig, expected: Sig | undefined): Promise<Fetched> {
  let dir: string;
  try {
    dir = checkedParent(root, rel);
  } catch (e) {
    source.resume(); // the bytes are drained, never written
    throw e;
  }
  const { tmp, h } = await writeTemp(source, dir, r, rel);
  const st = fs.lstatSync(tmp);
  return { rel, tmp, abs: path.join(dir, path.basename(rel)), sig: sigOf(entryFromStats(st) as Entry), ino: st.ino, expected, h };
}

/**
 * Renames a fetched file over its target if the local side is still as classified; its local sig. The
 * rename sets the file's ctime: the sig takes the one it has now when it is still the inode renamed,
 * as written. Otherwise (written again since, in the microseconds between) the temporary file's ctime
 * stays, and the next pass reads the file as changed (sameLocal).
 */
export function commitFetched(f: Fetched): Sig {
  putInPlace(f.tmp, f.abs, f.rel, f.expected);
  try {
    const st = fs.lstatSync(f.abs);
    const e = entryFromStats(st);
    if (st.ino === f.ino && e && sameSig(sigOf(e), f.sig)) return { ...f.sig, c: st.ctimeMs };
  } catch {
    // gone again already: the next pass sees it
  }
  return f.sig;
}

/** A fetched file that is not put in place (its remote changed meanwhile): the temporary file goes. */
export function dropFetched(f: Fetched): void {
  try {
    removeTemp(f.tmp);
  } catch {
    // Its folder made read-only meanwhile, say: the next session removes the runner's temporary files.
    // Never thrown, so that dropping a batch of them (after an error, often) always reaches the last.
  }
}

/** Renames the finished temp over `abs` if the local side is still `expected` (else the temp goes). */
function putInPlace(tmp: string, abs: string, rel: string, expected: Sig | undefined): void {
  try {
    expectUnchanged(abs, rel, expected);
    if (expected?.t === 'd') fs.rmdirSync(abs); // replaced by a file remotely; its contents went first
    fs.renameSync(tmp, abs);
  } catch (e) {
    removeTemp(tmp);
    // The folder went, or became a file, since the fetch began (the user flipped it): a race, not a fault.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ChangedMeanwhile(`the local folder of '${rel}' changed while it was fetched; looked at again next pass`);
    throw e;
  }
}

/**
 * Keeps a fetched remote version (already checked to be the one listed) beside the local file as
 * `conflictCopyName`, never over an existing name (link(2) fails with EEXIST: a copy made in the same
 * second gets a counter); its name, or undefined when the local file holds the same bytes. The
 * temporary file stays for the caller to drop.
 */
export function keepConflictCopy(f: Fetched, root: string): string | undefined {
  if (sameBytes(f.tmp, f.abs)) return undefined;
  let copy = conflictCopyName(f.rel);
  for (let n = 2; ; n++) {
    try {
      fs.linkSync(f.tmp, path.join(root, copy));
      return copy;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || n > 99) throw e;
      copy = conflictCopyName(f.rel).replace(/(\.conflict-remote-\d{8}-\d{6})/, `$1-${n}`);
    }
  }
}

function sameBytes(a: string, b: string): boolean {
  const sa = fs.lstatSync(a);
  const sb = fs.lstatSync(b, { throwIfNoEntry: false });
  if (!sb?.isFile() || sa.size !== sb.size) return false;
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const ba = Buffer.alloc(64 * 1024);
    const bb = Buffer.alloc(64 * 1024);
    for (let pos = 0; pos < sa.size; ) {
      const n = fs.readSync(fa, ba, 0, ba.length, pos);
      const m = fs.readSync(fb, bb, 0, bb.length, pos);
      if (n !== m || n === 0 || !ba.subarray(0, n).equals(bb.subarray(0, m))) return false;
      pos += n;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/** Makes the folder `rel` locally (or gives it the remote's mode). */
export function pullDir(root: string, rel: string, r: Sig, expected: Sig | undefined): Sig {
  const abs = path.join(checkedParent(root, rel), path.basename(rel));
  expectUnchanged(abs, rel, expected);
  if (expected && expected.t !== 'd') fs.unlinkSync(abs); // replaced by a folder remotely
  if (!expected || expected.t !== 'd') fs.mkdirSync(abs, { mode: 0o700 });
  fs.chmodSync(abs, r.p);
  return localSig(abs) as Sig;
}

/** Makes the symlink `rel` locally (temp + rename), if it stays inside the root by resolution. */
export function pullLink(root: string, rel: string, r: Sig, expected: Sig | undefined): Sig {
  const dir = checkedParent(root, rel);
  const target = r.x ?? '';
  if (!linkStaysInside(root, rel, target)) throw new LocalPathError(`remote symlink '${rel}' -> '${target}' leads outside the folder (or is absolute); it was not made locally`);
  const abs = path.join(dir, path.basename(rel));
  const tmp = tempIn(dir);
  fs.symlinkSync(target, tmp);
  putInPlace(tmp, abs, rel, expected);
  return localSig(abs) as Sig;
}

/** Deletes `rel` locally if it is still `expected` (a folder only when empty). */
export function deleteLocal(root: string, rel: string, expected: Sig): void {
  const abs = path.join(checkedParent(root, rel), path.basename(rel));
  expectUnchanged(abs, rel, expected);
  if (expected.t === 'd') fs.rmdirSync(abs);
  else fs.unlinkSync(abs);
}

/**
 * Removes the temporary files a killed pull left in the local folder `rel` (`.kubedev-*.tmp`, plain files
 * or links only; the listing ignores them). Called once per folder by the first pass of a session.
 */
export function removeLocalLeftovers(root: string, rel: string): void {
  const dir = path.join(root, rel);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(INTERNAL_PREFIX) || !n.endsWith('.tmp')) continue;
    const st = fs.lstatSync(path.join(dir, n), { throwIfNoEntry: false });
    if (st && (st.isFile() || st.isSymbolicLink())) removeTemp(path.join(dir, n));
  }
}

/** `dir/name.ext` -> `dir/name.conflict-remote-20261130-232200.ext` (a name the runner never syncs). */
export function conflictCopyName(rel: string, when = new Date()): string {
  const slash = rel.lastIndexOf('/');
  const dir = rel.slice(0, slash + 1);
  const base = rel.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [base.slice(0, dot), fitBytes(base.slice(dot), EXT_MAX)] : [base, ''];
  const ts = when.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  // A long name's copy must still be a name the file system takes (a copy that cannot be made is a
  // version lost: the container's, kept by a guard): the stem is cut to fit.
  return `${dir}${fitBytes(stem, NAME_MAX - COPY_ROOM - Buffer.byteLength(ext))}${CONFLICT_INFIX}${ts}${ext}`;
}

/** Bytes a file name may hold (Linux, macOS; Windows counts UTF-16 units, never more than these bytes). */
const NAME_MAX = 255;
/** Room a copy's name keeps beside the stem: the longest infix (`.conflict-container-`), the time, a counter (`-<n>`). */
const COPY_ROOM = '.conflict-container-'.length + 15 + 6;
/** An extension longer than this is cut too. */
const EXT_MAX = 40;

/** The longest start of `s` of at most `max` UTF-8 bytes, whole characters only. */
function fitBytes(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let out = '';
  let n = 0;
  for (const ch of s) {
    n += Buffer.byteLength(ch);
    if (n > max) break;
    out += ch;
  }
  return out;
}

export const CONFLICT_INFIX = '.conflict-remote-';
/** Conflict copies are the user's to look at: never sent, never deleted by the runner. */
export const CONFLICT_IGNORE = `*${CONFLICT_INFIX}[0-9]*`;
