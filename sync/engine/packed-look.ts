/**
 * The bulk path's look at what it packed (apply-tar.ts): a file that changed, vanished or could not be
 * read while the archive was made must not take a real name on the server, so every packed file is
 * looked at once the local tar has read it, and one that no longer matches the plan is kept out.
 *
 * With GNU tar the look follows the archive as it is written: once tar has written as many bytes as
 * the upper bound of a member's end (local-tar.ts, gnuMemberEnds), it has read that member whole, and
 * the member is looked at then, while the stream goes on, instead of all of them after it. The bounds
 * hold while every member is as planned; a member that tar found otherwise (larger, another type: one
 * that could push the later members past their bounds) is itself seen as changed by its look, which
 * comes after tar's own lstat of it. From the first member seen changed on, the rest are looked at
 * after tar is done, as with bsdtar and the in-process packer.
 */
import * as fs from 'node:fs';
import { changedSince } from './local-read';
import type { PlanItem } from './plan';

/** How long the look after the archive works before it lets the event loop run (ms). */
const SLICE_MS = 5;

export class PackedLook {
  /** The first member not looked at yet. */
  private next = 0;
  /** The bounds hold so far (no member was seen changed). */
  private following: boolean;
  private readonly changed: string[] = [];

  constructor(
    private readonly root: string,
    private readonly members: readonly PlanItem[],
    /** Upper bounds of each member's end in the archive; none: everything is looked at after it. */
    private readonly ends?: Float64Array,
  ) {
    this.following = ends !== undefined;
  }

  /** The members looked at while the archive was written (tests, diagnostics). */
  get lookedEarly(): number {
    return this.following ? this.next : -1;
  }

  /** The local tar has written `bytes` of the archive: looks at the members it has read whole. */
  archived(bytes: number): void {
    const ends = this.ends;
    if (!this.following || !ends) return;
    while (this.next < this.members.length && ends[this.next] <= bytes) {
      if (this.look(this.members[this.next++])) {
        this.following = false; // the later bounds may not hold: they are looked at after the archive
        return;
      }
    }
  }

  /** After the local tar has closed (every member read): the files that changed since they were planned. */
  async rest(): Promise<string[]> {
    this.following = false;
    let sliceEnd = performance.now() + SLICE_MS;
    while (this.next < this.members.length) {
      if (performance.now() > sliceEnd) {
        await new Promise((r) => setImmediate(r));
        sliceEnd = performance.now() + SLICE_MS;
      }
      this.look(this.members[this.next++]);
    }
    return this.changed;
  }

  /** Whether `m` is no longer as planned; a file that is not is noted changed. */
  private look(m: PlanItem): boolean {
    const abs = `${this.root}/${m.rel}`;
    if (m.entry.type === 'file') {
      if (!changedSince(abs, m.entry)) return false;
      this.changed.push(m.rel);
      return true;
    }
    // A folder or link is not kept out (as before: only files can be torn), but one that tar found as
    // something else may have taken more of the archive than its bound.
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    return m.entry.type === 'dir' ? !st?.isDirectory() : !st?.isSymbolicLink();
  }
}
