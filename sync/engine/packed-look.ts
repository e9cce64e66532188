/**
 * The bulk path's look at what it packed (apply-tar.ts): a file that changed, vanished or could not be
 * read while the archive was made must not take a real name on the server, so every packed file is
 * looked at once the local tar has read it, and one that no longer matches the plan is kept out.
 *
 * With GNU tar (`--format=gnu`) the look follows the archive as it is written: its 512-byte headers
 * are read as the bytes pass, and a member is complete (tar has read it whole) once the next member's
 * header, or the archive's end, has been written. Each file is looked at then, while the stream goes
 * on, instead of all of them after it. Names come from the archive itself (a long name from its own
 * 'L' header), so a member tar wrote larger than planned (grown, a long hard-link or symlink target)
 * or left out (vanished, unreadable) moves nothing out of step. A header it cannot read as expected
 * (checksum, type, a name not in the plan) stops the following: whatever was not looked at yet is
 * looked at after the archive, as with bsdtar and the in-process packer.
 */
import { changedSince } from './local-read';
import type { PlanItem } from './plan';

/** How long the look after the archive works before it lets the event loop run (ms). */
const SLICE_MS = 5;
const BLOCK = 512;

/** A header's checksum as tar computes it: every byte summed, the checksum field counted as spaces. */
function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  const field = h.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').trim();
  return /^[0-7]+$/.test(field) && parseInt(field, 8) === sum;
}

/** A header's size field: octal, or base-256 (GNU tar, 8 GiB and more); undefined if neither. */
function sizeOf(h: Buffer): number | undefined {
  if (h[124] & 0x80) {
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + h[i];
    return Number.isSafeInteger(n) ? n : undefined;
  }
  const f = h.subarray(124, 136).toString('latin1').replace(/[\0 ]+$/, '').trim();
  return f === '' ? 0 : /^[0-7]+$/.test(f) ? parseInt(f, 8) : undefined;
}

const cString = (b: Buffer): string => {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
};

export class PackedLook {
  /** Still reading the archive's headers (GNU tar, nothing unexpected met). */
  private following: boolean;
  private readonly looked = new Set<string>();
  private readonly changed: string[] = [];
  private readonly byName: Map<string, PlanItem>;
  /** Archive offset of the next header; bytes of it (or of a long name) gathered so far. */
  private nextHeader = 0;
  private at = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** What the bytes being gathered are: a header, or the long name of the next member (its length). */
  private want: { kind: 'header' } | { kind: 'long'; size: number } = { kind: 'header' };
  private longName?: string;
  /** The member whose data is being written: complete at the next header. */
  private open?: string;
  private early = 0;

  constructor(
    private readonly root: string,
    private readonly files: readonly PlanItem[],
    /** The archive is GNU tar's (--format=gnu): follow it as it is written. */
    follow = false,
  ) {
    this.following = follow;
    this.byName = new Map(files.map((f) => [f.rel, f]));
  }

  /** Files looked at while the archive was written (tests, diagnostics). */
  get lookedEarly(): number {
    return this.early;
  }

  /** The next bytes of the local tar's archive (before any gzip). */
  archived(chunk: Buffer): void {
    if (!this.following) return;
    try {
      this.read(chunk);
    } catch {
      this.following = false; // anything unexpected: the rest is looked at after the archive
    }
  }

  private read(chunk: Buffer): void {
    let off = 0;
    while (this.following && off < chunk.length) {
      const start = this.at + off;
      if (start < this.nextHeader) {
        off += Math.min(chunk.length - off, this.nextHeader - start); // a member's data: skipped
        continue;
      }
      const need = this.want.kind === 'header' ? BLOCK : this.want.size;
      const take = Math.min(chunk.length - off, need - this.pendingBytes);
      this.pending.push(chunk.subarray(off, off + take));
      this.pendingBytes += take;
      off += take;
      if (this.pendingBytes < need) break;
      const whole = Buffer.concat(this.pending, need);
      this.pending = [];
      this.pendingBytes = 0;
      this.gathered(whole, start + take - need);
    }
    this.at += chunk.length;
  }

  /** A header (or a long name) is whole; it began at archive offset `from`. */
  private gathered(b: Buffer, from: number): void {
    if (this.want.kind === 'long') {
      this.longName = cString(b);
      this.nextHeader = from + Math.ceil(b.length / BLOCK) * BLOCK;
      this.want = { kind: 'header' };
      return;
    }
    // A header, or the archive's end (a zero block): the member before it has been read whole.
    this.complete();
    if (b.every((x) => x === 0)) return this.stop();
    const size = sizeOf(b);
    if (!checksumOk(b) || size === undefined) return this.stop();
    const type = String.fromCharCode(b[156]);
    this.nextHeader = from + BLOCK;
    if (type === 'L' || type === 'K') {
      // The next member's long name (or link target): read whole for 'L', skipped for 'K'.
      if (type === 'L') {
        if (size === 0 || size > 1 << 20) return this.stop();
        this.want = { kind: 'long', size };
      } else this.nextHeader += Math.ceil(size / BLOCK) * BLOCK;
      return;
    }
    const name = this.longName ?? cString(b.subarray(0, 100));
    this.longName = undefined;
    if (type === '5' || type === '2') {
      this.open = undefined; // a folder or a symlink: nothing read, nothing to look at
      this.nextHeader += Math.ceil(size / BLOCK) * BLOCK;
      return;
    }
    // A file, or a hard link to one archived before; any other type, or a name not in the plan, is unexpected.
    // A name met twice (never, for a plan's unique names) stops too: the copy extracted last is the one kept.
    if (!(type === '0' || type === '\0' || type === '1') || !this.byName.has(name) || this.looked.has(name)) return this.stop();
    this.open = name;
    this.nextHeader += Math.ceil(size / BLOCK) * BLOCK;
  }

  /** The open member has been read whole by tar: look at it now. */
  private complete(): void {
    const name = this.open;
    this.open = undefined;
    const f = name === undefined ? undefined : this.byName.get(name);
    if (!f) return;
    // The result first: should anything throw in between, the file is still looked at by rest().
    if (changedSince(`${this.root}/${f.rel}`, f.entry)) this.changed.push(f.rel);
    this.looked.add(f.rel);
    this.early++;
  }

  private stop(): void {
    this.following = false;
  }

  /** After the local tar has closed (every member read): the files that changed since they were planned. */
  async rest(): Promise<string[]> {
    this.following = false;
    let sliceEnd = performance.now() + SLICE_MS;
    for (const f of this.files) {
      if (this.looked.has(f.rel)) continue;
      if (performance.now() > sliceEnd) {
        await new Promise((r) => setImmediate(r));
        sliceEnd = performance.now() + SLICE_MS;
      }
      this.looked.add(f.rel);
      if (changedSince(`${this.root}/${f.rel}`, f.entry)) this.changed.push(f.rel);
    }
    return this.changed;
  }
}
