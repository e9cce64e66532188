/**
 * The runner's memory of the large files it last put in place by changed blocks (delta.ts): for each,
 * the remote file's identity as the server reported it just after the rename (`size mtime ino ctime`,
 * find's `%s %T@ %i %C@`), how its blocks were hashed and each block's hash (block-hash.ts). When the
 * remote file still has that identity, the server need not read and hash it again: it only copies it,
 * writes the changed blocks, verifies and renames (delta-remote.ts, "cached").
 *
 * Why the identity says the content: a write to the file, a chmod or a rename over it sets its ctime
 * (nanoseconds; no system call sets it back), a new file has another inode. The entry is only a hint:
 * the server checks the identity itself, before and after its copy (and takes the entry only if it can
 * still hash blocks that way), and the whole copy is checked before the rename against the local file's
 * digest, so a stale or wrong entry is a mismatch and the file goes the full way, never a wrong file in place.
 *
 * One file per remote file and server, under the user's state folder (`$XDG_STATE_HOME/kubedev/blocks/`,
 * else `~/.local/state/kubedev/blocks/`), one folder per remote root: the names hash the root, the path
 * and the server's host key, and the entry names all three again (an entry of another root or server, or
 * moved here, is ignored). Written through a temporary name and a rename; it carries a SHA-256 of its
 * own fields: a truncated or altered file is ignored (and removed). `changedSinceSent` reads the folder
 * before the connection is up (no host key yet): which large local files changed since they were sent.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockHashKind, HASH_HEX } from './block-hash';
import { stateDir } from './two-way/state-store';

/** A remote file as the runner last wrote it. */
export interface CachedFile {
  /** `size mtime ino ctime` as find printed them (`%s %T@ %i %C@`). */
  readonly id: string;
  readonly blockSize: number;
  /** How the blocks were hashed (block-hash.ts). */
  readonly kind: BlockHashKind;
  /** Each block's hash (hex). */
  readonly sums: readonly string[];
}

interface Stored {
  v: 1;
  server: string;
  root: string;
  rel: string;
  id: string;
  blockSize: number;
  sums: string;
  /** Each block's CRC-32, in the entries written before the whole file's digest replaced them (read, unused). */
  crcs?: string;
  /** The blocks' hash: absent for SHA-1 (the entries written before XXH3-128 came). */
  hash?: 'xxh128';
  check?: string;
}

/** `size mtime ino ctime` of a file on a file system with sub-second times, mtime in whole seconds. */
const ID = /^(\d+) (\d+)\.(\d+) (\d+) (\d+)\.(\d+)$/;

/** The cache's folder: `$XDG_STATE_HOME/kubedev/blocks`, else `~/.local/state/kubedev/blocks`. */
export function blockCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(path.dirname(stateDir(env)), 'blocks');
}

/**
 * Whether `id` (as the server printed it after the rename) may be remembered for a file of `size` bytes
 * and mtime `mtime` (whole seconds): the size and the mtime as set, and a ctime with a fraction (a file
 * system keeping whole seconds only could see a write in the same second keep the ctime).
 */
export function rememberable(id: string, size: number, mtime: number): boolean {
  const m = ID.exec(id);
  return !!m && Number(m[1]) === size && Number(m[2]) === mtime && /^0+$/.test(m[3]) && !/^0+$/.test(m[6]);
}

function digest(s: Stored): string {
  const fields = [s.v, s.server, s.root, s.rel, s.id, s.blockSize, s.sums, ...(s.crcs === undefined ? [] : [s.crcs]), ...(s.hash === undefined ? [] : [s.hash])];
  return crypto.createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

const kindOf = (s: Stored): BlockHashKind => (s.hash === 'xxh128' ? 'xxh128' : 'sha1');

/** The cache for the server with host key `fingerprint` and `remoteRoot`, in `folder` (default blockCacheDir(); false: none). */
export function blockCacheFor(folder: string | false | undefined, fingerprint: string, remoteRoot: string): BlockCache | undefined {
  return folder === false ? undefined : new BlockCache(folder ?? blockCacheDir(), fingerprint, remoteRoot);
}

/** The first `n` hex digits of the SHA-256 of `s`: a file name for a key (also pass-clock.ts). */
export const hash = (s: string, n: number): string => crypto.createHash('sha256').update(s).digest('hex').slice(0, n);
const rootDir = (base: string, root: string): string => path.join(base, hash(root, 32));

/**
 * The local files (relative paths) that have an entry for `remoteRoot` (of any server) and whose size or
 * whole-second mtime now differ from every such entry's: changed since the runner last put them in
 * place, so about to be sent by changed blocks. Entries of local files that are gone are removed (the
 * pass deletes the remote file, or the file is no longer synced).
 */
export function changedSinceSent(base: string, remoteRoot: string, localRoot: string): string[] {
  return [...changedSinceSentHow(base, remoteRoot, localRoot).keys()];
}

/** changedSinceSent, each file with the way its blocks were hashed when it was sent (its first entry's). */
export function changedSinceSentHow(base: string, remoteRoot: string, localRoot: string): Map<string, BlockHashKind> {
  let names: string[];
  try {
    names = fs.readdirSync(rootDir(base, remoteRoot)).filter((n) => n.endsWith('.json'));
  } catch {
    return new Map();
  }
  const sent = new Map<string, { was: string[]; files: string[]; kind: BlockHashKind }>();
  for (const n of names) {
    let e: Stored | undefined;
    try {
      e = parse(fs.readFileSync(path.join(rootDir(base, remoteRoot), n), 'utf8'));
    } catch {
      continue;
    }
    if (e?.root !== remoteRoot || path.isAbsolute(e.rel) || e.rel.split('/').includes('..')) continue;
    const [size, mtime] = e.id.split(' ');
    const s = sent.get(e.rel) ?? { was: [], files: [], kind: kindOf(e) };
    s.was.push(`${size} ${mtime.split('.')[0]}`);
    s.files.push(n);
    sent.set(e.rel, s);
  }
  const changed = [...sent].filter(([rel, { was, files }]) => {
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(path.join(localRoot, rel), { throwIfNoEntry: false });
    } catch {
      return false; // a folder on the way became a file, or cannot be read: the scan says what to do
    }
    if (!st) for (const n of files) new BlockCache(base, '', remoteRoot).remove(n);
    return st?.isFile() && !was.includes(`${st.size} ${Math.floor(st.mtimeMs / 1000)}`);
  });
  return new Map(changed.map(([rel, { kind }]) => [rel, kind]));
}

/** The entries of one server (its host key's fingerprint) and remote root. */
export class BlockCache {
  readonly dir: string;

  constructor(base: string, readonly server: string, readonly root: string) {
    this.dir = rootDir(base, root);
  }

  private file(rel: string): string {
    return path.join(this.dir, `${hash(rel, 24)}-${hash(this.server, 16)}.json`);
  }

  /** The entry for `rel`, if there is a sound one (anything else is removed and reads as none). */
  get(rel: string): CachedFile | undefined {
    let raw: string;
    try {
      raw = fs.readFileSync(this.file(rel), 'utf8');
    } catch {
      return undefined;
    }
    const e = parse(raw);
    if (e && e.server === this.server && e.root === this.root && e.rel === rel) {
      const hex = HASH_HEX[kindOf(e)];
      return { id: e.id, blockSize: e.blockSize, kind: kindOf(e), sums: e.sums.match(new RegExp(`.{${hex}}`, 'g')) ?? [] };
    }
    this.drop(rel);
    return undefined;
  }

  /** Remembers `f` for `rel` (a failure to write is no error: the next transfer goes the full way). */
  put(rel: string, f: CachedFile): void {
    const s: Stored = { v: 1, server: this.server, root: this.root, rel, id: f.id, blockSize: f.blockSize, sums: f.sums.join('') };
    if (f.kind === 'xxh128') s.hash = 'xxh128';
    s.check = digest(s);
    const file = this.file(rel);
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, JSON.stringify(s), { mode: 0o600, flag: 'wx' });
      fs.renameSync(tmp, file);
    } catch {
      fs.rmSync(tmp, { force: true });
      this.drop(rel);
    }
  }

  /** Forgets `rel` (its remote file is no longer the one the entry describes). */
  drop(rel: string): void {
    this.remove(path.basename(this.file(rel)));
  }

  /** Removes the entry file `name` of this root's folder, if it can. */
  remove(name: string): void {
    try {
      fs.rmSync(path.join(this.dir, name), { force: true });
    } catch {
      // an entry that cannot be removed is checked again on its next read
    }
  }
}

/** A stored entry, if its fields are whole and consistent and its check matches; else undefined. */
function parse(raw: string): Stored | undefined {
  let s: Stored;
  try {
    s = JSON.parse(raw) as Stored;
  } catch {
    return undefined;
  }
  if (!s || typeof s !== 'object' || s.v !== 1 || typeof s.check !== 'string' || (s.hash !== undefined && s.hash !== 'xxh128') || s.check !== digest(s)) return undefined;
  const n = typeof s.sums === 'string' ? s.sums.length / HASH_HEX[kindOf(s)] : -1;
  const ok = typeof s.id === 'string' && ID.test(s.id) && Number.isSafeInteger(s.blockSize) && s.blockSize > 0 && Number.isInteger(n) && /^[0-9a-f]*$/.test(s.sums) && (s.crcs === undefined || (typeof s.crcs === 'string' && s.crcs.length === 8 * n && /^[0-9a-f]*$/.test(s.crcs)));
  return ok && n === Math.ceil(Number(ID.exec(s.id)?.[1]) / s.blockSize) ? s : undefined;
}
