/**
 * The ancestor's content hash: for a file whose bytes went through the runner (pulled, or swapped in
 * with the listing), the ancestor also records a hash of those bytes. When both sides changed a file
 * and the local side differs from the ancestor only by its mtime (a `touch`, an editor's save of the
 * same bytes, a `git checkout` that restored it), the local bytes are hashed: the same hash means the
 * local side did not change, so the container's version is pulled instead of making a conflict.
 *
 * SHA-256 cut to 128 bits (base64, 22 characters): a collision is not a risk to plan for, and the
 * state file grows by about 30 bytes per hashed path. Files above HASHED_MAX are not hashed (the hash
 * would cost every pull of them, for a case that is rare for large files).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { Sig } from './state-store';

export const HASHED_MAX = 8 * 1024 * 1024;

export class ContentHash {
  private readonly h = crypto.createHash('sha256');

  update(b: Buffer): void {
    this.h.update(b);
  }

  digest(): string {
    return this.h.digest().subarray(0, 16).toString('base64url');
  }
}

/** The content hash of `chunks`. */
export function hashOf(chunks: readonly Buffer[]): string {
  const h = new ContentHash();
  for (const b of chunks) h.update(b);
  return h.digest();
}

/**
 * Whether the regular file `abs`, still as the local listing saw it (`l`: size, mtime, mode), holds
 * bytes that hash to `hash`. Looked at with lstat first (a symlink, FIFO or device is no), opened without
 * following a link or blocking, and read only if it is the same inode; looked at again after the read
 * (size, mtime, ctime): a file written meanwhile answers no. Anything odd answers no, which leaves the
 * decision as it was (a conflict keeps both versions). Yes is the file's inode and ctime as read: the
 * pull that follows lands only over that (a write since, even one that put the mtime back, changes the
 * ctime). Never throws.
 */
export function holdsBytes(abs: string, l: Sig, hash: string): { ino: number; ctimeMs: number } | undefined {
  if (l.t !== 'f' || l.s > HASHED_MAX) return undefined;
  let fd: number | undefined;
  try {
    const before = fs.lstatSync(abs);
    if (!before.isFile() || !asListed(before, l)) return undefined;
    fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    const st = fs.fstatSync(fd);
    if (st.ino !== before.ino || st.dev !== before.dev || !asListed(st, l)) return undefined;
    const buf = Buffer.alloc(l.s + 1);
    let n = 0;
    for (let k; n < buf.length && (k = fs.readSync(fd, buf, n, buf.length - n, n)) > 0; ) n += k;
    const after = fs.fstatSync(fd);
    if (n !== l.s || !asListed(after, l) || after.ctimeMs !== st.ctimeMs) return undefined;
    return hashOf([buf.subarray(0, n)]) === hash ? { ino: after.ino, ctimeMs: after.ctimeMs } : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function asListed(st: fs.Stats, l: Sig): boolean {
  return st.size === l.s && st.mtimeMs === l.m && (st.mode & 0o7777) === l.p;
}
