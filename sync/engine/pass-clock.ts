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
 * A whole-tree rescan of a watching session (watch/rescan.ts) compares every path with the index, as a
 * full pass compares it with the remote: once the paths it found changed are on the remote, the tree as
 * it was when the rescan began is mirrored, and the clock moves to that moment. Without it, a watching
 * session's changes (a `chmod -R` its batches handled) stayed "since the last full pass" for good: the
 * next run compared them by content again and sent every file whose mtime was after it once more.
 */
export class SessionClock {
  private last?: number;
  /** A whole-tree rescan's start and the paths it found changed that no batch has sent yet. */
  private owed?: { start: number; rels: Set<string> };

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

  /** A rescan of the whole tree that began at `start` found `changed` (to be sent by batches); `fingerprint` once connected. */
  rescanned(start: number, changed: readonly string[], fingerprint: string | undefined): void {
    this.owed = { start, rels: new Set(changed) };
    this.sent([], fingerprint);
  }

  /** A batch put `rels` on the remote as the index has them (apply-common.ts landed). */
  sent(rels: readonly string[], fingerprint: string | undefined): void {
    const owed = this.owed;
    if (!owed) return;
    for (const rel of rels) owed.rels.delete(rel);
    if (owed.rels.size > 0 || fingerprint === undefined) return;
    this.owed = undefined;
    if (this.last !== undefined && this.last >= owed.start) return;
    this.last = owed.start;
    this.store(fingerprint).remember(owed.start);
  }
}
