/**
 * The remote side of a full pass: one `find -printf` listing of the remote root, parsed into the
 * compact index.
 *
 * - Output starts after a marker the command prints first (a random nonce), so whatever a login
 *   shell prints at start (`echo` in `.bashrc`) never reaches the parser.
 * - Fields are split as bytes; a path that is not valid UTF-8 is reported apart (`foreign`), never
 *   listed as an entry, so it is neither "deleted" on every pass nor mistaken for another name.
 * - The runner's own temporary names (`.kubedev-*`: staging folders, temp files of a killed run) are
 *   printed but not descended into: the pass deletes them (`leftovers`).
 * - Folder-only ignores with plain names (`node_modules/`, `.git/`) are pruned as folders only
 *   (`-type d`): a *file* of that name is listed and compared like any other file.
 */
import * as crypto from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { IgnoreMatcher, INTERNAL_PREFIX } from './ignore';
import { CompactIndex } from './index-store';
import { normalPlace } from './remote-place';
import { EntryType, shQuote, Tree } from './tree';

const FORMAT = `'%y\\0%s\\0%T@\\0%m\\0%P\\0%l\\0'`;

export interface RemoteListing {
  readonly tree: Tree;
  /** The runner's own temporary names left by an interrupted run (top-most only). */
  readonly leftovers: string[];
  /** Paths whose names are not valid UTF-8 (printed with replacement characters): left alone. */
  readonly foreign: string[];
  /** Where the root led on the server (its physical path, remote-place.ts) when it was listed; undefined if not told. */
  readonly physicalRoot?: Buffer;
}

/** How many bytes of unexpected output a message shows. */
const SHOWN_BYTES = 120;

/** `b`'s first SHOWN_BYTES as text a message can hold: printable ASCII as it is, the rest escaped (\n, \0, \xNN). */
export function escapedStart(b: Buffer): string {
  let s = '';
  for (const c of b.subarray(0, SHOWN_BYTES)) {
    if (c === 0x0a) s += '\\n';
    else if (c === 0x0d) s += '\\r';
    else if (c === 0x09) s += '\\t';
    else if (c === 0x00) s += '\\0';
    else if (c === 0x5c) s += '\\\\';
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return b.length > SHOWN_BYTES ? `${s}...` : s;
}

/**
 * The listing's output never held its marker: the command did not run as sent. What came instead is
 * shown (escaped, capped), with what it means and the fix.
 */
export class ListingMarkerError extends Error {
  constructor(readonly root: string, readonly received: Buffer) {
    super(
      `the listing of remote folder '${root}' did not start with its marker (got ${received.length} bytes${received.length > 0 ? `: "${escapedStart(received)}"` : ''}). ` +
        'The command did not run as sent: the SSH user\'s login shell is not a POSIX shell (nologin, a restricted or menu shell), or a shell start file ' +
        '(~/.bashrc, ~/.profile, /etc/profile) printed this and exited or ran something else. Give the user /bin/sh or bash as its login shell, and make ' +
        'its start files print nothing and return early for non-interactive sessions (for example `case $- in *i*) ;; *) return ;; esac` first in ~/.bashrc)',
    );
    this.name = 'ListingMarkerError';
  }
}

/** A fresh marker for one listing. */
export function listingMarker(): string {
  return `KUBEDEV-LISTING-${crypto.randomBytes(8).toString('hex')}`;
}

/**
 * The listing command: `<marker>-ROOT NUL <the root's physical path> NUL <marker> NUL`, then `type NUL size NUL mtime NUL mode NUL path NUL target NUL`
 * per entry under the root. Folders named in `prune` are not descended into and not listed.
 */
export function remoteScanCommand(root: string, prune: readonly string[], marker: string): string {
  const internal = `-name ${shQuote(`${INTERNAL_PREFIX}*`)} -prune -printf ${FORMAT}`;
  const ignored = prune.length > 0 ? ` -o \\( ${prune.map((n) => `-name ${shQuote(n)}`).join(' -o ')} \\) -type d -prune` : '';
  // -ignore_readdir_race: a name gone between the folder's read and its stat is left out, not an error
  // (exit 1 failed the whole listing): the copy or pipes a changed-blocks script begun beside the listing
  // removes (delta-early.ts), a container's own temporary files.
  // The physical path entered goes first, tagged with the marker (remote-place.ts): `<marker>-ROOT NUL path NUL`.
  return `cd -P -- ${shQuote(root)} && printf '%s\\0%s\\0%s\\0' ${shQuote(`${marker}-ROOT`)} "$PWD" ${shQuote(marker)} && find . -ignore_readdir_race -mindepth 1 \\( ${internal}${ignored} \\) -o -printf ${FORMAT}`;
}

/** The listing's fields after its marker: one string split when all is UTF-8 (the usual case), else per field. */
export function fieldsAfterMarker(out: Buffer, marker: string, root: string): { fields: string[]; foreignAt: Set<number> } {
  const m = Buffer.from(`${marker}\0`);
  const at = out.indexOf(m);
  if (at < 0) throw new ListingMarkerError(root, out);
  const body = out.subarray(at + m.length);
  const foreignAt = new Set<number>();
  if (isUtf8(body)) return { fields: body.toString('utf8').split('\0'), foreignAt };
  // Some name is not UTF-8: decode field by field and remember which ones were not.
  const fields: string[] = [];
  for (let start = 0; ; ) {
    const nul = body.indexOf(0, start);
    const end = nul < 0 ? body.length : nul;
    const f = body.subarray(start, end);
    if (!isUtf8(f)) foreignAt.add(fields.length);
    fields.push(f.toString('utf8'));
    if (nul < 0) break;
    start = nul + 1;
  }
  return { fields, foreignAt };
}

/**
 * Parses remoteScanCommand's output (ignored paths dropped, internal temp names reported apart). It
 * reads the bytes in place: one string per entry (its path), numbers read from their digits.
 */
export function parseRemoteScan(out: Buffer, ig: IgnoreMatcher, marker: string, root = '.'): RemoteListing {
  const p = new ListingParser(ig, marker, root);
  p.push(out);
  return p.end();
}

/**
 * parseRemoteScan fed as the output arrives: each chunk's whole entries are read at once, so reading
 * a large listing overlaps its making on the server and its transfer (the rest of an entry cut by a
 * chunk's end waits for the next chunk). `end` throws if the marker never came.
 */
export class ListingParser {
  private readonly tree: Tree = new CompactIndex();
  private readonly leftovers: string[] = [];
  private readonly foreign: string[] = [];
  private readonly marker: Buffer;
  private started = false;
  /** Whether an entry was left out (find lists folders before their contents: else none lacks its parent). */
  private dropped = false;
  private rest: Buffer = Buffer.alloc(0);

  constructor(
    private readonly ig: IgnoreMatcher,
    marker: string,
    /** The remote root (for the error naming it). */
    private readonly root: string,
  ) {
    this.marker = Buffer.from(`${marker}\0`);
  }

  private failed?: unknown;
  private physicalRoot?: Buffer;

  /** Reads a chunk of output (a failure is kept for `end`: this runs inside the stream's events). */
  push(chunk: Buffer): void {
    if (this.failed !== undefined) return;
    try {
      this.read(chunk);
    } catch (e) {
      this.failed = e;
    }
  }

  private read(chunk: Buffer): void {
    let buf = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    if (!this.started) {
      const at = buf.indexOf(this.marker);
      if (at < 0) {
        this.rest = buf;
        return;
      }
      this.started = true;
      this.physicalRoot = physicalBefore(buf.subarray(0, at), this.marker.toString('latin1', 0, this.marker.length - 1));
      buf = buf.subarray(at + this.marker.length);
    }
    this.rest = Buffer.from(buf.subarray(this.entries(buf)));
  }

  /** Reads the whole entries at the start of `b`; returns where the first incomplete one starts. */
  private entries(b: Buffer): number {
    // Field k of the entry at hand spans [start[k], stop[k]).
    const start = [0, 0, 0, 0, 0, 0];
    const stop = [0, 0, 0, 0, 0, 0];
    let pos = 0;
    let allUtf8: boolean | undefined;
    for (;;) {
      const from = pos;
      for (let k = 0; k < 6; k++) {
        const nul = b.indexOf(0, pos);
        if (nul < 0) return from;
        start[k] = pos;
        stop[k] = nul;
        pos = nul + 1;
      }
      // Entries end at a NUL, so no UTF-8 sequence is cut: one check for all the whole entries.
      allUtf8 ??= isUtf8(b.subarray(from, b.lastIndexOf(0) + 1));
      this.entry(b, start, stop, allUtf8);
    }
  }

  private entry(b: Buffer, start: number[], stop: number[], allUtf8: boolean): void {
    const y = stop[0] - start[0] === 1 ? b[start[0]] : 0;
    const isLink = y === 0x6c; // l
    if (!allUtf8 && (!isUtf8(b.subarray(start[4], stop[4])) || (isLink && !isUtf8(b.subarray(start[5], stop[5]))))) {
      this.foreign.push(b.toString('utf8', start[4], stop[4]));
      this.dropped = true;
      return;
    }
    const rel = b.toString('utf8', start[4], stop[4]);
    const type: EntryType | undefined = y === 0x66 ? 'file' : y === 0x64 ? 'dir' : isLink ? 'symlink' : undefined;
    if (rel.startsWith(INTERNAL_PREFIX, rel.lastIndexOf('/') + 1)) {
      this.leftovers.push(rel);
      this.dropped = true;
      return;
    }
    if (!type || this.ig.ignores(rel, type === 'dir')) {
      this.dropped = true;
      return;
    }
    this.tree.set(rel, {
      type,
      size: decimal(b, start[1], stop[1]),
      mtimeMs: mtimeOf(b, start[2], stop[2]),
      mode: type === 'symlink' ? 0o777 : octal(b, start[3], stop[3]),
      target: type === 'symlink' ? b.toString('utf8', start[5], stop[5]) : undefined,
    });
  }

  /** The listing; throws if the output never held the marker. */
  end(): RemoteListing {
    if (this.failed !== undefined) throw this.failed;
    if (!this.started) throw new ListingMarkerError(this.root, this.rest);
    const tree = this.tree;
    // Drop entries whose parent is not in the tree (inside ignored, leftover or foreign folders).
    if (this.dropped) {
      for (const rel of tree.keys()) {
        const slash = rel.lastIndexOf('/');
        if (slash > 0 && !tree.has(rel.slice(0, slash))) tree.delete(rel);
      }
    }
    return { tree, leftovers: topMost(this.leftovers), foreign: topMost(this.foreign), physicalRoot: this.physicalRoot };
  }
}

/** The physical root printed before the marker (`<marker>-ROOT NUL path NUL`), when there and absolute (normalPlace); the last one counts. */
export function physicalBefore(before: Buffer, marker: string): Buffer | undefined {
  const tag = Buffer.from(`${marker}-ROOT\0`);
  const at = before.lastIndexOf(tag);
  const end = at < 0 ? -1 : before.indexOf(0, at + tag.length);
  if (end < 0) return undefined;
  const p = before.subarray(at + tag.length, end);
  return p.length > 0 && p[0] === 0x2f ? normalPlace(Buffer.from(p)) : undefined;
}

/** A run of decimal digits (anything else: read as Number() reads it). */
function decimal(b: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return Number(b.toString('latin1', from, to));
    n = n * 10 + d;
  }
  return n;
}

/** A run of octal digits (anything else: read as parseInt(s, 8) reads it). */
function octal(b: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 7) return parseInt(b.toString('latin1', from, to), 8);
    n = n * 8 + d;
  }
  return from === to ? NaN : n;
}

/**
 * `%T@` (seconds.fraction) as whole-second milliseconds; + 0.5 ms marks a fraction (a time the runner
 * did not set: never equal). Anything but digits and one dot: read from the string, the same rule.
 */
function mtimeOf(b: Buffer, from: number, to: number): number {
  let whole = 0;
  let i = from;
  for (; i < to && b[i] !== 0x2e; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return mtimeOfString(b.toString('latin1', from, to));
    whole = whole * 10 + d;
  }
  if (i === from) return mtimeOfString(b.toString('latin1', from, to));
  let fraction = false;
  for (i++; i < to; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return mtimeOfString(b.toString('latin1', from, to));
    if (d !== 0) fraction = true;
  }
  return whole * 1000 + (fraction ? 0.5 : 0);
}

function mtimeOfString(mtime: string): number {
  return Number(mtime.split('.')[0]) * 1000 + (/^\d+\.0*$/.test(mtime) || !mtime.includes('.') ? 0 : 0.5);
}

/** Drops paths below another path of the list. */
export function topMost(rels: readonly string[]): string[] {
  const all = new Set(rels);
  return rels.filter((r) => {
    for (let i = r.lastIndexOf('/'); i > 0; i = r.lastIndexOf('/', i - 1)) if (all.has(r.slice(0, i))) return false;
    return true;
  });
}
