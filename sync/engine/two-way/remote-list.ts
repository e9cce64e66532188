/**
 * The remote listing for two-way: the same `find -printf` as the mirror's (after a random marker,
 * internal names reported apart, foreign names left alone), with mtimes kept to the nanosecond (a
 * container that rewrites a file twice in one second with the same size is still seen), and the root's
 * identity (`dev:ino`) so that a root replaced by another folder (a pod restarted on a new volume) halts.
 */
import { IgnoreMatcher, INTERNAL_PREFIX } from '../ignore';
import { enterRoot, throwIfMoved } from '../remote-place';
import { fieldsAfterMarker, listingMarker, physicalBefore, remoteScanCommand, topMost } from '../remote-scan';
import { Connection, RemoteError } from '../transport';
import { Entry, EntryType, shQuote } from '../tree';
import { sameSig, Sig, sigOf } from './state-store';

export interface ExactListing {
  readonly tree: Map<string, Entry>;
  readonly leftovers: string[];
  readonly foreign: string[];
  /** `dev:ino` of the root. */
  readonly rootId: string;
  /** The root holds nothing at all (scoped listings only; a full listing tells by its size). */
  readonly rootEmpty?: boolean;
  /**
   * The bytes of small regular files among the starting points asked for inline (read just after the
   * listing, then each file looked at again: only those still as listed are kept, see parseInline).
   */
  readonly inline?: ReadonlyMap<string, Buffer>;
  /** Where the root led on the server (its physical path) when it was listed (remote-place.ts). */
  readonly physicalRoot?: Buffer;
}

/** Files up to this size are sent inside a scoped listing when asked (base64: a third more bytes). */
export const INLINE_MAX = 64 * 1024;
/** At most this many files inline per listing (each costs a fork of base64 on the server). */
export const INLINE_COUNT = 16;

/** Runs a shell command on the server: the session's RemoteShell, or an exec channel (`conn.exec`). */
export type RemoteRun = (command: string) => Promise<{ readonly code: number | null; readonly stdout: Buffer; readonly stderr: string }>;

/**
 * Lines run at the start of a scoped listing's command, before the listing (which then shows what they
 * did); `took` gets what they printed, cut from the listing's output (push-inline.ts). They must not
 * `exit` (the listing follows); they run in the command's own subshell (cwd, umask, `set -C` stay there).
 */
export interface ListingSection {
  lines(): string[];
  took(out: Buffer): void;
}

/** Thrown when the remote root is gone: the session halts, nothing is deleted locally. */
export class RemoteRootGoneError extends Error {}

const GONE = 41;
/** `%p` (not `%P`): a scoped listing names its starting points too (`./a/b`). */
const FORMAT = `'%y\\0%s\\0%T@\\0%m\\0%p\\0%l\\0'`;

/** `conn.exec` as a RemoteRun. */
export function execRun(conn: Connection): RemoteRun {
  return (command) => conn.exec(command);
}

/**
 * Lists the remote root whole, or (`scope`) only the given paths and everything below the folders
 * among them. Either way the root is checked first (gone: RemoteRootGoneError) and its `dev:ino` read;
 * a scoped listing also says whether the root is empty, so a scoped pass keeps every halt.
 */
export async function listRemoteExact(run: RemoteRun, root: string, ig: IgnoreMatcher, scope?: readonly string[], inline: readonly string[] = [], section?: ListingSection): Promise<ExactListing> {
  const marker = listingMarker();
  const q = shQuote(root);
  const head = `[ -d ${q} ] || exit ${GONE}; stat -c 'KUBEDEV-ROOT-ID %d:%i' -- ${q} || exit ${GONE}`;
  let command: string;
  if (!scope) command = `${head}; ${remoteScanCommand(root, ig.prunableNames, marker)}`;
  else {
    // One find (one fork): '.' first prints the root's identity and the marker, then each starting
    // point is listed; the shell's own glob says whether the root holds anything at all.
    const internal = `-name ${shQuote(`${INTERNAL_PREFIX}*`)} -prune -printf ${FORMAT}`;
    const prune = ig.prunableNames.length > 0 ? ` -o \\( ${ig.prunableNames.map((n) => `-name ${shQuote(n)}`).join(' -o ')} \\) -type d -prune` : '';
    const rootFirst = `\\( -path . -prune -printf ${shQuote(`KUBEDEV-ROOT-ID %D:%i\\n${marker}\\0`)} \\)`;
    command = [
      ...sectionLines(section, marker),
      `cd -P -- ${q} || exit ${GONE}`,
      `printf '%s\\0%s\\0' ${shQuote(`${marker}-ROOT`)} "$PWD"`,
      'e=1; for f in * .[!.]* ..?*; do if [ -e "$f" ] || [ -L "$f" ]; then e=0; break; fi; done; [ $e = 0 ] || echo KUBEDEV-ROOT-EMPTY',
      `find . ${scope.map((r) => shQuote(`./${r}`)).join(' ')} ${rootFirst} -o \\( ${internal}${prune} \\) -o -printf ${FORMAT} 2>/dev/null`,
      ...inlineCommand(inline.slice(0, INLINE_COUNT), marker),
      'exit 0',
    ].join('\n');
  }
  const res = cutSection(await run(command), section, marker);
  if (res.code === GONE) {
    throw new RemoteRootGoneError(`remote folder '${root}' is gone or is no longer a folder; the sync stopped and deleted nothing locally. Restore it (or the pod's volume) and start the sync again`);
  }
  if (res.code !== 0) throw new RemoteError(`listing remote folder '${root}' failed (exit ${res.code}): ${res.stderr.trim()}. Check that the user may read it and that GNU find is installed`, res.code ?? -1, res.stderr);
  const opening = res.stdout.subarray(0, Math.max(0, res.stdout.indexOf(`${marker}\0`)));
  const before = opening.toString('latin1');
  const rootId = /KUBEDEV-ROOT-ID (\d+:\d+)/.exec(before)?.[1] ?? '';
  const physicalRoot = physicalBefore(opening, marker);
  const cut = inline.length > 0 ? res.stdout.indexOf(`\0${marker}-INLINE\0`) : -1;
  const listing = cut < 0 ? res.stdout : res.stdout.subarray(0, cut + 1);
  const { fields, foreignAt } = fieldsAfterMarker(listing, marker, root);
  const tree = new Map<string, Entry>();
  const leftovers: string[] = [];
  const foreign: string[] = [];
  const starts = new Set(scope ?? []);
  for (let i = 0; i + 5 < fields.length; i += 6) {
    const [y, size, mtime, mode, named, target] = fields.slice(i, i + 6);
    const rel = scope ? named.slice(2) : named;
    if (foreignAt.has(i + 4) || (y === 'l' && foreignAt.has(i + 5))) {
      foreign.push(rel);
      continue;
    }
    const type: EntryType | undefined = y === 'f' ? 'file' : y === 'd' ? 'dir' : y === 'l' ? 'symlink' : undefined;
    if (rel.slice(rel.lastIndexOf('/') + 1).startsWith(INTERNAL_PREFIX)) {
      leftovers.push(rel);
      continue;
    }
    if (!type || ig.ignores(rel, type === 'dir')) continue;
    tree.set(rel, { type, size: Number(size), mtimeMs: Number(mtime) * 1000, mode: type === 'symlink' ? 0o777 : parseInt(mode, 8), target: type === 'symlink' ? target : undefined });
  }
  for (const rel of tree.keys()) {
    const slash = rel.lastIndexOf('/');
    if (slash > 0 && !starts.has(rel) && !tree.has(rel.slice(0, slash))) tree.delete(rel);
  }
  const inlined = cut < 0 ? undefined : parseInline(res.stdout.subarray(cut + marker.length + 9), tree, marker);
  return { tree, leftovers: topMost(leftovers), foreign: topMost(foreign), rootId, rootEmpty: scope ? /KUBEDEV-ROOT-EMPTY/.test(before) : undefined, inline: inlined, physicalRoot };
}

function sectionLines(section: ListingSection | undefined, marker: string): string[] {
  const lines = section?.lines() ?? [];
  return lines.length > 0 ? [`printf '%s\\0' ${shQuote(`${marker}-SECTION`)}`, ...lines, `printf '\\0%s\\0' ${shQuote(`${marker}-SECTION-END`)}`] : [];
}

/** The output without the section's part (between its markers, before the listing), which goes to `section.took`. */
function cutSection<R extends { readonly stdout: Buffer }>(res: R, section: ListingSection | undefined, marker: string): R {
  if (!section) return res;
  const start = Buffer.from(`${marker}-SECTION\0`);
  const end = Buffer.from(`\0${marker}-SECTION-END\0`);
  if (!res.stdout.subarray(0, start.length).equals(start)) return res;
  const at = res.stdout.indexOf(end, start.length);
  if (at < 0) return res;
  section.took(res.stdout.subarray(start.length, at));
  return { ...res, stdout: res.stdout.subarray(at + end.length) };
}

/**
 * After the listing: the marker, then for each of `rels` that is a regular file (not a link) of at most
 * INLINE_MAX bytes, its name and its bytes in base64, NUL-terminated (one find, one base64 per file);
 * a base64 that failed (the file unreadable meanwhile) ends in '!', which parseInline drops. Then a
 * second marker and each file's stat once read (STAT_FORMAT): one written meanwhile is dropped too.
 * Left open: a file the container replaces by a FIFO between find's look and base64's open (the
 * milliseconds of one exec) holds the shell until the session's watchdog drops the connection
 * (`stallMs`); nothing is lost. One tar for all files would close it (GNU tar opens O_NONBLOCK) but
 * costs 4-6 ms more per listing here (tar's start-up), on every container edit.
 */
function inlineCommand(rels: readonly string[], marker: string): string[] {
  if (rels.length === 0) return [];
  return [
    `printf '%s\\0' ${shQuote(`${marker}-INLINE`)}`,
    `find ${rels.map((r) => shQuote(`./${r}`)).join(' ')} -maxdepth 0 -type f -size -${INLINE_MAX + 1}c -printf '%p\\0' \\( -exec base64 -w 0 -- {} \\; -printf '\\0' -o -printf '!\\0' \\) 2>/dev/null`,
    `printf '%s\\0' ${shQuote(`${marker}-AFTER`)}`,
    `find ${rels.map((r) => shQuote(`./${r}`)).join(' ')} -maxdepth 0 -printf ${STAT_FORMAT} 2>/dev/null`,
  ];
}

/**
 * The name/base64 pairs after the inline marker; only files the listing holds, and the server still
 * held as listed once their bytes were read (the stats after the second marker), are kept.
 */
function parseInline(out: Buffer, tree: ReadonlyMap<string, Entry>, marker: string): Map<string, Buffer> {
  const after = out.indexOf(`${marker}-AFTER\0`);
  if (after < 0) return new Map();
  const fields = out.subarray(0, after).toString('latin1').split('\0');
  const asListed = new Set<string>();
  for (const [rel, sig] of statFields(out.subarray(after + marker.length + 7).toString('utf8').split('\0'))) {
    const e = tree.get(rel);
    if (e?.type === 'file' && sameSig(sig, sigOf(e))) asListed.add(rel);
  }
  const got = new Map<string, Buffer>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const rel = Buffer.from(fields[i], 'latin1').toString('utf8').slice(2);
    const b64 = fields[i + 1];
    if (!asListed.has(rel) || !/^[A-Za-z0-9+/]*=*$/.test(b64)) continue;
    got.set(rel, Buffer.from(b64, 'base64'));
  }
  return got;
}

/**
 * Of `rels` (files the listing gave as `listed`), those the server still holds as that very file: a
 * regular file of the listed size, mode and mtime (to the nanosecond). Asked once their bytes were
 * read: what was written, truncated, appended to, removed or replaced (by a link, which the read
 * followed, or a FIFO) since the listing is left out, as its bytes may be torn or another version than
 * the one the ancestor would record.
 */
export async function stillAsListed(run: RemoteRun, root: string, rels: readonly string[], listed: (rel: string) => Sig | undefined, place?: Buffer): Promise<Set<string>> {
  const same = new Set<string>();
  for (let i = 0; i < rels.length; ) {
    const batch: string[] = [];
    for (let bytes = 0; i < rels.length && bytes < STAT_ARGS_MAX; i++) {
      batch.push(rels[i]);
      bytes += rels[i].length + 4;
    }
    const marker = listingMarker();
    // Where the listing found the root (remote-place.ts): bytes read through a root that leads elsewhere now are another folder's.
    const res = await run(`${enterRoot(root, place, `exit ${GONE}`)}\nprintf '%s\\0' ${shQuote(marker)}\nfind ${batch.map((r) => shQuote(`./${r}`)).join(' ')} -maxdepth 0 -printf ${STAT_FORMAT} 2>/dev/null\nexit 0`);
    if (res.code === GONE) continue; // the root is gone: nothing is as listed
    throwIfMoved(root, res);
    if (res.code !== 0) throw new RemoteError(`checking fetched files in '${root}' failed (exit ${res.code}): ${res.stderr.trim()}`, res.code ?? -1, res.stderr);
    for (const [rel, sig] of statFields(fieldsAfterMarker(res.stdout, marker, root).fields)) if (sameSig(sig, listed(rel))) same.add(rel);
  }
  return same;
}

/** Bytes of names per stillAsListed command (one find each). */
const STAT_ARGS_MAX = 128 * 1024;
/** What stillAsListed and the inline bytes' second look print of a file. */
const STAT_FORMAT = `'%p\\0%y\\0%s\\0%T@\\0%m\\0'`;

/** `./rel`, type, size, mtime, mode fields (STAT_FORMAT) as [rel, sig] for the regular files among them. */
function statFields(fields: readonly string[]): [string, Sig][] {
  const out: [string, Sig][] = [];
  for (let i = 0; i + 4 < fields.length; i += 5) {
    const [named, y, size, mtime, mode] = fields.slice(i, i + 5);
    if (y === 'f') out.push([named.slice(2), { t: 'f', s: Number(size), m: Number(mtime) * 1000, p: parseInt(mode, 8) }]);
  }
  return out;
}

/** `p`, or the connection's loss if that comes first (the drop listener is removed either way). */
export async function unlessDropped<T>(conn: Connection, p: Promise<T>): Promise<T> {
  let off: () => void = () => undefined;
  const dropped = new Promise<never>((_, reject) => {
    off = conn.onDrop(reject);
  });
  try {
    return await Promise.race([p, dropped]);
  } finally {
    off();
  }
}
