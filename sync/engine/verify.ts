/**
 * Files whose bytes may have changed though their size and mtime did not (plan.ts `verify`: their change
 * time moved): hashed on both sides, and sent only where the hashes differ.
 *
 * The change time moves for new bytes written under the old mtime (`cp -p`, `touch -r`, an archive
 * unpacked over the file, a reproducible build's fixed dates) and also for what leaves the bytes alone:
 * a chmod or chown (to the same mode or owner too), a hard link made or removed (`cp -al` backups), an
 * access time put back. Sending every such file again would send a whole tree after a `chown -R`; not
 * sending them leaves the first kind stale for good. So both sides hash them: one command on the server
 * (`xxh128sum`, else `sha1sum`, over the names given on stdin), the same algorithm here (guessed while
 * the server works: the one it used last), read 4 MiB at a time. A file that cannot be hashed on either
 * side (gone, unreadable, a name with a newline or a backslash, which the tools print escaped or
 * ambiguously) counts as different: it is sent, as before.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { Connection } from './transport';
import { Plan, PlanItem } from './plan';
import { enterRoot, throwIfMoved } from './remote-place';
import { readAhead, readSmallSync } from './local-read';
import { shQuote } from './tree';

/** Bytes of names per server command. */
const NAMES_MAX = 128 * 1024;
/** How long the local hashing works before it lets the event loop run. */
const SLICE_MS = 5;
const TOOLS = ['xxh128sum', 'sha1sum'] as const;
type Tool = (typeof TOOLS)[number];

/** The tool each connection's server hashed with last (null: it has none), so the runner hashes its side the same way at once. */
const toolOf = new WeakMap<Connection, Tool | null>();

/**
 * `items` split into those whose bytes differ from the remote copy's (or could not be compared) and those
 * equal. Rejects with the signal's reason once `signal` aborts: a file left unhashed is not "different"
 * (a closing session would send it).
 */
export async function verifyByContent(conn: Connection, localRoot: string, remoteRoot: string, items: readonly PlanItem[], signal?: AbortSignal): Promise<{ differ: PlanItem[]; same: PlanItem[] }> {
  const differ: PlanItem[] = [];
  const same: PlanItem[] = [];
  const comparable = items.filter((i) => !/[\n\\]/.test(i.rel));
  differ.push(...items.filter((i) => /[\n\\]/.test(i.rel)));
  const hashers = new Map<Tool, Hasher>(); // one per algorithm for the whole comparison
  const hasher = async (tool: Tool): Promise<Hasher> => {
    const h = hashers.get(tool) ?? (await hasherFor(tool));
    hashers.set(tool, h);
    return h;
  };
  for (let at = 0; at < comparable.length; ) {
    signal?.throwIfAborted();
    const batch: PlanItem[] = [];
    for (let bytes = 0; at < comparable.length && bytes < NAMES_MAX; at++) {
      batch.push(comparable[at]);
      bytes += comparable[at].rel.length + 3;
    }
    let answered = false;
    const asked = untilAborted(remoteHashes(conn, remoteRoot, batch, signal), signal).finally(() => (answered = true));
    asked.catch(() => undefined); // awaited below, after the local side
    // The local side is hashed while the server hashes its own, the way that server hashed last (xxh128sum
    // at first: kubedev's sidecar image has it), until the server answers: then only the files it hashed.
    const known = toolOf.get(conn);
    const guess = known === undefined ? TOOLS[0] : known;
    const early = guess === null ? undefined : await hasher(guess).catch(() => undefined); // hash-wasm missing: after the answer
    const ahead = early ? await localHashes(localRoot, batch, early, signal, () => answered) : new Map<string, string | undefined>();
    const remote = await asked;
    toolOf.set(conn, remote.tool ?? null);
    const local = remote.tool === guess ? ahead : new Map<string, string | undefined>();
    if (remote.tool) {
      const rest = batch.filter((i) => remote.hashes.has(i.rel) && !local.has(i.rel));
      for (const [rel, h] of await localHashes(localRoot, rest, await hasher(remote.tool), signal)) local.set(rel, h);
    }
    signal?.throwIfAborted();
    for (const item of batch) {
      const r = remote.hashes.get(item.rel);
      const l = local.get(item.rel);
      (remote.tool !== undefined && r !== undefined && l !== undefined && l === r ? same : differ).push(item);
    }
  }
  return { differ, same };
}

/** `p`, or the signal's reason as soon as it aborts (a command given its whole stdin at once runs on regardless: it only reads). */
function untilAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  p.catch(() => undefined); // settled after an abort: nobody waits for it
  return new Promise<T>((resolve, reject) => {
    const stop = (): void => reject(signal.reason);
    if (signal.aborted) return stop();
    signal.addEventListener('abort', stop, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
  });
}

/**
 * The server's hash of each file of `batch` it could read as a regular file at its listed path, and the
 * tool that made them. Every folder above a file must be a real folder there, not a symlink: `find -P
 * -type f` looks at the last name only, and `d/keep.txt` with `d -> elsewhere` (the container's doing,
 * since the listing) would read the other file's bytes. So the folders above the batch's files go with
 * its names, one more `find` in the same command lists those that are real folders (on stderr,
 * NUL-separated), and a file's hash counts only when each folder above it is listed, by that look and
 * by one made after the hashing (a folder swapped for a symlink while the tool worked). Left: a folder
 * swapped and put back in between.
 */
async function remoteHashes(conn: Connection, remoteRoot: string, batch: readonly PlanItem[], signal?: AbortSignal): Promise<{ tool?: Tool; hashes: Map<string, string> }> {
  const look = "find \"$@\" -maxdepth 0 -type d -print0 2>/dev/null >&3; exec find \"$@\" -maxdepth 0 -type f -print0 2>/dev/null";
  const script = [
    enterRoot(remoteRoot, conn.listedRoots.get(remoteRoot), 'exit 3'),
    // Regular files only (find -P: not through a symlink; never a FIFO the container put there, whose open would wait for a writer).
    `for x in ${TOOLS.join(' ')}; do command -v $x >/dev/null 2>&1 && { echo "$x"; xargs -0 -r sh -c ${shQuote(look)} sh 3>&2 | xargs -0 -r "$x" 2>/dev/null; exit 0; }; done`,
    'exit 65',
  ].join('\n');
  const folders = foldersAbove(batch);
  const names = Buffer.from([...folders, ...batch.map((i) => i.rel)].map((rel) => `./${rel}\0`).join(''));
  // The folders' list comes on stderr: kept whole (it is no longer than the names sent).
  const res = await conn.exec(`sh -c ${shQuote(script)}`, names, { signal, stderrMax: names.length + 64 * 1024 });
  throwIfMoved(remoteRoot, res);
  // Only whole records: a find that died mid-name left a cut one.
  const real = new Set(res.stderr.split('\0').slice(0, -1));
  const lines = res.stdout.toString('utf8').split('\n');
  const tool = TOOLS.find((t) => t === lines[0]);
  const hashes = new Map<string, string>();
  // Only whole lines: a tool that died mid-line left a cut name, which could name a shorter path.
  for (const line of lines.slice(1, -1)) {
    const m = /^([0-9a-f]{32,40}) [ *]\.\/(.*)$/.exec(line);
    if (m && foldersOf(m[2]).every((d) => real.has(`./${d}`))) hashes.set(m[2], m[1]);
  }
  // A folder made a symlink while the tool hashed (after the look above) is caught by a look after it:
  // the folders above the hashed files are listed again (one more command, only when a file is nested).
  const above = new Set([...hashes.keys()].flatMap(foldersOf));
  if (above.size > 0) {
    const after = await realFolders(conn, remoteRoot, above, signal);
    for (const rel of [...hashes.keys()]) if (!foldersOf(rel).every((d) => after.has(`./${d}`))) hashes.delete(rel);
  }
  return { tool, hashes };
}

/** Those of `folders` that are real folders on the server (not symlinks), as `./rel`. */
async function realFolders(conn: Connection, remoteRoot: string, folders: Set<string>, signal?: AbortSignal): Promise<Set<string>> {
  const script = [enterRoot(remoteRoot, conn.listedRoots.get(remoteRoot), 'exit 3'), "xargs -0 -r sh -c 'exec find \"$@\" -maxdepth 0 -type d -print0 2>/dev/null' sh"].join('\n');
  const res = await conn.exec(`sh -c ${shQuote(script)}`, Buffer.from([...folders].map((rel) => `./${rel}\0`).join('')), { signal });
  throwIfMoved(remoteRoot, res);
  return new Set(res.stdout.toString('utf8').split('\0').slice(0, -1));
}

/** The folders above `rel`, top first (`a/b/c` -> `a`, `a/b`). */
function foldersOf(rel: string): string[] {
  const out: string[] = [];
  for (let i = rel.indexOf('/'); i > 0; i = rel.indexOf('/', i + 1)) out.push(rel.slice(0, i));
  return out;
}

/** Every folder above a file of `batch`, once. */
function foldersAbove(batch: readonly PlanItem[]): Set<string> {
  const out = new Set<string>();
  for (const i of batch) for (const d of foldersOf(i.rel)) out.add(d);
  return out;
}

interface Hasher {
  init(): void;
  update(b: Uint8Array): void;
  digest(): string;
}

/**
 * Each file's hash (hex) by `h`; none for a file that cannot be read as planned. Works in slices: the
 * event loop runs between them (SSH, watch events). Stops when `signal` aborts or `enough` says so (the
 * rest are left out of the map).
 */
async function localHashes(localRoot: string, batch: readonly PlanItem[], h: Hasher, signal?: AbortSignal, enough?: () => boolean): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  let slice = performance.now() + SLICE_MS;
  for (const item of batch) {
    if (signal?.aborted || enough?.()) break;
    out.set(item.rel, await localHash(path.join(localRoot, item.rel), item.rel, item.entry.size, h).catch(() => undefined));
    if (performance.now() > slice) {
      await new Promise((resolve) => setImmediate(resolve));
      slice = performance.now() + SLICE_MS;
    }
  }
  return out;
}

/** One hasher for `tool`'s algorithm, reset for each file. */
async function hasherFor(tool: Tool): Promise<Hasher> {
  if (tool === 'sha1sum') {
    let h = crypto.createHash('sha1');
    return { init: () => void (h = crypto.createHash('sha1')), update: (b) => void h.update(b), digest: () => h.digest('hex') };
  }
  const { createXXHash128 } = await import('hash-wasm');
  const h = await createXXHash128();
  return { init: () => void h.init(), update: (b) => void h.update(b), digest: () => h.digest('hex') };
}

/** Files up to this size are read in one synchronous read (a handle and its promises cost more than the read). */
const SMALL = 1024 * 1024;

/** The local file's hash as the server's tool prints it (hex), read as planned (`size` bytes exactly). */
async function localHash(abs: string, rel: string, size: number, h: Hasher): Promise<string> {
  h.init();
  if (size <= SMALL) h.update(readSmallSync(abs, rel, size));
  else for await (const b of readAhead(abs, rel, size, 4 * 1024 * 1024)) h.update(b);
  return h.digest();
}

/**
 * How much one pass compares by content: the comparison reports no progress to the session's stall
 * watchdog (60 s), and a `chown -R` of a large `node_modules` moves every ctime. What is beyond these
 * is sent, as any changed file (the transfer reports its progress). At about 0.1 ms a small file and
 * 300 MB/s (measured here), each bound is a few seconds.
 */
export const VERIFY_LIMITS = { files: 20_000, bytes: 1024 ** 3 };

/**
 * Compares the plan's `verify` files by content (within `limits`; the rest are sent): those whose bytes
 * differ go to `files` (with their mode: out of `chmods`), `verify` is emptied. Returns the equal ones:
 * the remote holds their bytes.
 */
export async function resolveVerify(conn: Connection, localRoot: string, remoteRoot: string, plan: Plan, signal?: AbortSignal, limits = VERIFY_LIMITS): Promise<PlanItem[]> {
  const all = plan.verify ?? [];
  if (all.length === 0) return [];
  let bytes = 0;
  let n = 0;
  while (n < all.length && n < limits.files && bytes + all[n].entry.size <= limits.bytes) bytes += all[n++].entry.size;
  const items = all.slice(0, n);
  const { differ, same } = await verifyByContent(conn, localRoot, remoteRoot, items, signal);
  differ.push(...all.slice(n));
  plan.verify?.splice(0);
  if (differ.length > 0) {
    const sent = new Set(differ.map((i) => i.rel));
    const chmods = plan.chmods.filter((c) => !sent.has(c.rel));
    plan.chmods.splice(0, plan.chmods.length, ...chmods);
    plan.files.push(...differ);
    plan.files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  }
  return same;
}
