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
import { EntryType, shQuote, Tree } from './tree';

const FORMAT = `'%y\\0%s\\0%T@\\0%m\\0%P\\0%l\\0'`;

export interface RemoteListing {
  readonly tree: Tree;
  /** The runner's own temporary names left by an interrupted run (top-most only). */
  readonly leftovers: string[];
  /** Paths whose names are not valid UTF-8 (printed with replacement characters): left alone. */
  readonly foreign: string[];
}

/** A fresh marker for one listing. */
export function listingMarker(): string {
  return `KUBEDEV-LISTING-${crypto.randomBytes(8).toString('hex')}`;
}

/**
 * The listing command: `marker NUL`, then `type NUL size NUL mtime NUL mode NUL path NUL target NUL`
 * per entry under the root. Folders named in `prune` are not descended into and not listed.
 */
export function remoteScanCommand(root: string, prune: readonly string[], marker: string): string {
  const internal = `-name ${shQuote(`${INTERNAL_PREFIX}*`)} -prune -printf ${FORMAT}`;
  const ignored = prune.length > 0 ? ` -o \\( ${prune.map((n) => `-name ${shQuote(n)}`).join(' -o ')} \\) -type d -prune` : '';
  return `printf '%s\\0' ${shQuote(marker)} && cd ${shQuote(root)} && find . -mindepth 1 \\( ${internal}${ignored} \\) -o -printf ${FORMAT}`;
}

/** The listing's fields after its marker: one string split when all is UTF-8 (the usual case), else per field. */
function fieldsAfterMarker(out: Buffer, marker: string): { fields: string[]; foreignAt: Set<number> } {
  const m = Buffer.from(`${marker}\0`);
  const at = out.indexOf(m);
  if (at < 0) throw new Error('the remote listing did not start with its marker');
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

/** Parses remoteScanCommand's output (ignored paths dropped, internal temp names reported apart). */
export function parseRemoteScan(out: Buffer, ig: IgnoreMatcher, marker: string): RemoteListing {
  const tree: Tree = new CompactIndex();
  const leftovers: string[] = [];
  const foreign: string[] = [];
  const { fields, foreignAt } = fieldsAfterMarker(out, marker);
  for (let i = 0; i + 5 < fields.length; i += 6) {
    const [y, size, mtime, mode, rel, target] = fields.slice(i, i + 6);
    if (foreignAt.size > 0 && (foreignAt.has(i + 4) || (y === 'l' && foreignAt.has(i + 5)))) {
      foreign.push(rel);
      continue;
    }
    const type: EntryType | undefined = y === 'f' ? 'file' : y === 'd' ? 'dir' : y === 'l' ? 'symlink' : undefined;
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    if (base.startsWith(INTERNAL_PREFIX)) {
      leftovers.push(rel);
      continue;
    }
    if (!type || ig.ignores(rel, type === 'dir')) continue;
    tree.set(rel, {
      type,
      size: Number(size),
      // Whole seconds; + 0.5 ms marks a fraction (a time the runner did not set: never equal).
      mtimeMs: Number(mtime.split('.')[0]) * 1000 + (/^\d+\.0*$/.test(mtime) || !mtime.includes('.') ? 0 : 0.5),
      mode: type === 'symlink' ? 0o777 : parseInt(mode, 8),
      target: type === 'symlink' ? target : undefined,
    });
  }
  // Drop entries whose parent is not in the tree (inside ignored, leftover or foreign folders).
  for (const rel of tree.keys()) {
    const slash = rel.lastIndexOf('/');
    if (slash > 0 && !tree.has(rel.slice(0, slash))) tree.delete(rel);
  }
  return { tree, leftovers: topMost(leftovers), foreign: topMost(foreign) };
}

/** Drops paths below another path of the list. */
export function topMost(rels: readonly string[]): string[] {
  const all = new Set(rels);
  return rels.filter((r) => {
    for (let i = r.lastIndexOf('/'); i > 0; i = r.lastIndexOf('/', i - 1)) if (all.has(r.slice(0, i))) return false;
    return true;
  });
}
