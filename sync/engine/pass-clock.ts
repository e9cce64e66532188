/**
 * When the last full pass of a root began reading the local tree: files modified since are "racy" (as
 * git calls such index entries) and are sent again by the next full pass.
 *
 * The remote keeps whole-second mtimes (SFTP v3 carries no fraction), and a full pass compares size and
 * whole-second mtime. A file the last pass read at 10.3 s with an mtime of 10.2 s, then saved again at
 * 10.7 s with the same size, looks unchanged to the next pass (both are second 10): rsync's default
 * misses it too. A file modified after the last pass began reading has an mtime from then on, so every
 * file with an mtime at or after that moment goes again: a few files, the ones edited as the last pass
 * ran or since. A file modified before it is never sent again for this (a margin of a second, for
 * whole-second file systems, resent every file saved in the second before a pass: a re-run at once was
 * no longer a no-op). Left: a save within a millisecond, or one tick of the kernel's coarse clock
 * (4-10 ms) where mtimes lag that much, after the pass began; whole-second file systems (HFS+, FAT).
 *
 * Kept in the block cache's folder (`$XDG_STATE_HOME/kubedev/blocks/passes/`), one file per server host
 * key, remote root and local root: the time in ms, written to a temporary name and renamed. Missing or
 * unreadable: nothing is racy (as before); the session keeps the latest in memory as well.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { blockCacheDir, hash } from './block-cache';

export class PassClock {
  private constructor(private readonly file: string | undefined) {}

  /** The clock of `localRoot` mirrored to `remoteRoot` on the server `fingerprint`; none when `folder` is false. */
  static for(folder: string | false | undefined, fingerprint: string, remoteRoot: string, localRoot: string): PassClock {
    if (folder === false) return new PassClock(undefined);
    const base = path.join(folder ?? blockCacheDir(), 'passes');
    return new PassClock(path.join(base, hash(`${fingerprint}\0${remoteRoot}\0${localRoot}`, 32)));
  }

  /** When the last full pass began reading the local tree (ms), if known. */
  last(): number | undefined {
    if (!this.file) return undefined;
    try {
      const text = fs.readFileSync(this.file, 'utf8').trim();
      const ms = Number(text);
      return /^\d{1,15}$/.test(text) && ms <= Date.now() + 60_000 ? ms : undefined;
    } catch {
      return undefined;
    }
  }

  /** Notes that a full pass that began reading at `ms` completed. */
  remember(ms: number): void {
    if (!this.file) return;
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, `${Math.floor(ms)}\n`, { mode: 0o600 });
      fs.renameSync(tmp, this.file);
    } catch {
      // No state folder (unwritable, a file in its place): the next run knows nothing racy (as before).
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // the temporary name was never made
      }
    }
  }
}

/**
 * The mtime (ms) from which files are racy, given when the last full pass began reading (Date.now():
 * whole ms; an mtime has a fraction, so a file written in that same ms but before the read would look
 * later: the next ms).
 */
export function racyFrom(lastStart: number | undefined): number | undefined {
  return lastStart === undefined ? undefined : lastStart + 1;
}

/**
 * A session's pass clock: when its last full pass began reading, in memory and in the state folder
 * (PassClock, keyed by the server's host key, known once connected).
 *
 * Only a full pass moves it: it compares the local tree with the remote's listing. A watching session's
 * rescan compares it with the index, which can hold what the remote listing said (a file left unsent
 * keeps that entry: whole-second mtime, no ctime) or what a batch read before a later save in the same
 * second; moving the clock to a rescan's start left such files stale for good (the third review's
 * finding, tests in racy.test.ts). The price: after a `chmod -R` a watching session handled, the next
 * run compares those files by content once more (0 bytes sent).
 */
export class SessionClock {
  private last?: number;

  constructor(private readonly store: (fingerprint: string) => PassClock) {}

  /** The mtime (ms) from which files are racy for a full pass on the server `fingerprint` (racyFrom). */
  racyFrom(fingerprint: string): number | undefined {
    return racyFrom(this.last ?? this.store(fingerprint).last());
  }

  /** A full pass on the server `fingerprint` whose local listing began at `start` is applied. */
  passDone(fingerprint: string, start: number): void {
    this.last = Math.max(start, this.last ?? start);
    this.store(fingerprint).remember(this.last);
  }
}
