/**
 * The changed-blocks cache (sync/engine/block-cache.ts) against the sidecar's sshd run by a non-root
 * user: a file the runner put in place by changed blocks is not hashed again by the server the next
 * time; a stale entry (the container rewrote the file in place with its size and mtime restored, or
 * replaced it), an entry of another root, a truncated or altered entry file, and an entry with a wrong
 * block hash all end with the right file in place and nothing left behind.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplyResult } from '../../sync/engine/apply';
import { BlockCache, changedSinceSent, rememberable } from '../../sync/engine/block-cache';
import { BlockHashKind, blockHasher } from '../../sync/engine/block-hash';
import { Connection } from '../../sync/engine/transport';
import { deltaContext, leftovers, put, scatter, sendOne } from '../support/delta';
import { Arena, useArena } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { eventually, tempDir } from '../support/trees';
import { remote } from '../support/two-way';

jest.setTimeout(60_000);

const SIZE = 16 * 1024 * 1024;
const REL = 'data/big.bin';

const h = useArena();
let sshd: Sshd;
let a: Arena;
let base: string;
const conns: Connection[] = [];
beforeEach(() => {
  sshd = h.sshd();
  a = h.arena();
  base = tempDir('block-cache');
});
afterEach(async () => {
  await Promise.all(conns.splice(0).map((c) => c.close()));
  fs.rmSync(base, { recursive: true, force: true });
});

interface Sent {
  readonly res: ApplyResult;
  /** Whether the server took the cache's word (undefined: sent whole from the start). */
  readonly cached?: boolean;
  readonly fallback?: string;
  readonly bytes: number;
}

/** Sends REL by changed blocks with the cache of `root` (default: the arena's root) under `base`; `kinds`: the server's block hashes allowed. */
async function send(root = a.remote, kinds?: readonly BlockHashKind[]): Promise<Sent & { kind?: BlockHashKind }> {
  let bytes = 0;
  const ctx0 = await deltaContext(sshd, a, { onBytes: (n) => (bytes += n) });
  conns.push(ctx0.conn);
  const ctx = { ...ctx0, blockCache: new BlockCache(base, ctx0.conn.fingerprint, root) };
  let cached: boolean | undefined;
  let fallback: string | undefined;
  let kind: BlockHashKind | undefined;
  const res = await sendOne(ctx, REL, { kinds, afterPrepare: (r) => void ((cached = r.cached), (kind = r.kind)), onFallback: (w) => (fallback = w) });
  return { res, cached, fallback, bytes, kind };
}

async function settled(): Promise<void> {
  await eventually(() => leftovers(a.remote), 5000, 'temporary files removed');
  expect(a.differences()).toEqual([]);
}

/** The remote file sent whole, then changed once by changed blocks (which fills the cache). */
async function sentOnce(kinds?: readonly BlockHashKind[]): Promise<Buffer> {
  const first = crypto.randomBytes(SIZE);
  put(a, REL, first);
  const s = a.session({ watch: false }); // the folder and the file, whole
  await s.start();
  await s.close();
  const next = scatter(first, 4, 100_000);
  put(a, REL, next);
  expect((await send(a.remote, kinds)).cached).toBe(false);
  await settled();
  return next;
}

/** The cache's entry file for REL (the only file in its folder). */
function entryFile(root = a.remote): string {
  const dir = new BlockCache(base, conns[0].fingerprint, root).dir;
  const files = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  if (files.length !== 1) throw new Error(`expected one cache entry in ${dir}, found ${files.length}`);
  return path.join(dir, files[0]);
}

test('a file changed twice: the second time the server only copies it (no hashing), byte-equal, few bytes sent', async () => {
  const next = await sentOnce();
  put(a, REL, scatter(next, 3, 50_000));
  const s = await send();
  expect(s.cached).toBe(true);
  expect(s.fallback).toBeUndefined();
  expect(s.bytes).toBeLessThan(0.05 * SIZE);
  await settled();
  // and again: the entry follows each rename
  put(a, REL, scatter(fs.readFileSync(path.join(a.local, REL)), 2, 10_000));
  expect((await send()).cached).toBe(true);
  await settled();
});

test('stale: the container rewrote the file in place with its size and mtime restored (the ctime differs): hashed again, byte-equal', async () => {
  const next = await sentOnce();
  remote(sshd, a, `printf 'written in the container' | dd of=${REL} bs=1 seek=5000 conv=notrunc status=none && touch -d @${Math.floor(fs.statSync(path.join(a.remote, REL)).mtimeMs / 1000)} ${REL}`);
  put(a, REL, scatter(next, 2, 20_000)); // not touching offset 5000: only the check can tell
  const s = await send();
  expect(s.cached).toBe(false);
  await settled();
});

test('stale: the container replaced the file (another inode) with the same size and mtime: hashed again, byte-equal', async () => {
  const next = await sentOnce();
  remote(sshd, a, `head -c ${SIZE} /dev/urandom > data/other && touch -r ${REL} data/other && mv -f data/other ${REL}`);
  put(a, REL, scatter(next, 2, 20_000));
  const s = await send();
  expect(s.cached).toBe(false);
  await settled();
});

test("an entry of another root, moved to this root's name, is not used (and removed)", async () => {
  const next = await sentOnce();
  const fp = conns[0].fingerprint;
  const mine = new BlockCache(base, fp, a.remote);
  const entry = mine.get(REL);
  expect(entry).toBeDefined();
  // The same identity and blocks, written by a cache of another root, then put where this root looks.
  const other = new BlockCache(base, fp, `${a.remote}-other`);
  other.put(REL, entry as NonNullable<typeof entry>);
  fs.renameSync(entryFile(other.root), entryFile());
  put(a, REL, scatter(next, 2, 20_000));
  const s = await send();
  expect(s.cached).toBe(false);
  await settled();
  // The entry now describes the new file (its inode after the rename).
  expect(mine.get(REL)?.id.split(' ')[2]).toBe(String(fs.statSync(path.join(a.remote, REL)).ino));
});

test('a truncated entry file, then one with a digit changed: not used, hashed again, byte-equal', async () => {
  let next = await sentOnce();
  const file = entryFile();
  fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
  next = scatter(next, 2, 20_000);
  put(a, REL, next);
  expect((await send()).cached).toBe(false);
  await settled();
  const text = fs.readFileSync(file, 'utf8');
  const at = text.indexOf('"sums":"') + 8;
  fs.writeFileSync(file, text.slice(0, at) + (text[at] === '0' ? '1' : '0') + text.slice(at + 1)); // still JSON, a SHA-1 altered
  put(a, REL, scatter(next, 2, 20_000));
  expect((await send()).cached).toBe(false);
  await settled();
});

test('an entry hashed the SHA-1 way (a server without xxh128sum, or written before XXH3-128): stored as before, the server takes its word, byte-equal', async () => {
  const next = await sentOnce(['sha1']);
  const raw = JSON.parse(fs.readFileSync(entryFile(), 'utf8')) as Record<string, unknown>;
  expect(raw.hash).toBeUndefined(); // the format entries had before XXH3-128 came
  expect((raw.sums as string).length % 40).toBe(0);
  expect(new BlockCache(base, conns[0].fingerprint, a.remote).get(REL)?.kind).toBe('sha1');
  put(a, REL, scatter(next, 3, 50_000));
  const s = await send(); // the server has xxh128sum, the entry says SHA-1: its word is taken all the same
  expect(s.cached).toBe(true);
  expect(s.kind).toBe('sha1');
  expect(s.bytes).toBeLessThan(0.05 * SIZE);
  await settled();
});

test('an SHA-1 entry, the remote file changed in the container: the server hashes its XXH3-128 way, the runner again in that way, byte-equal, the entry now XXH3-128', async () => {
  const next = await sentOnce(['sha1']);
  remote(sshd, a, `printf 'written in the container' | dd of=${REL} bs=1 seek=5000 conv=notrunc status=none`);
  put(a, REL, scatter(next, 2, 20_000));
  const s = await send();
  expect(s.cached).toBe(false);
  expect(s.kind).toBe('xxh128');
  expect(s.bytes).toBeLessThan(0.05 * SIZE);
  await settled();
  const e = new BlockCache(base, conns[0].fingerprint, a.remote).get(REL);
  expect(e?.kind).toBe('xxh128');
  expect(e?.sums[0]).toMatch(/^[0-9a-f]{32}$/);
});

test("an entry whose block hash is wrong (the file's identity right): the runner keeps a block it should send, the verify catches it, sent whole, the entry forgotten", async () => {
  const next = await sentOnce();
  const cache = new BlockCache(base, conns[0].fingerprint, a.remote);
  const e = cache.get(REL) as NonNullable<ReturnType<BlockCache['get']>>;
  // Block 7 changed locally; the entry says the server already holds the new block 7: it is not sent.
  const changed = Buffer.from(next);
  changed.fill(0x5a, 7 * e.blockSize + 100, 7 * e.blockSize + 200);
  put(a, REL, changed);
  const hash = await blockHasher(e.kind);
  const block7 = hash(changed.subarray(7 * e.blockSize, 8 * e.blockSize));
  expect(block7).not.toBe(e.sums[7]);
  cache.put(REL, { ...e, sums: e.sums.map((x, i) => (i === 7 ? block7 : x)) });
  const s = await send();
  expect(s.cached).toBe(true);
  expect(s.fallback).toMatch(/verify/);
  expect(s.res.unsent).toEqual([]);
  await settled();
  expect(cache.get(REL)).toBeUndefined();
});

test('whole sessions (as `kubedev sync --once` runs): the file changed since the last pass is hashed before the listing, byte-equal, the entry follows', async () => {
  const pass = async (): Promise<void> => {
    const s = a.session({ watch: false, blockCache: base });
    await s.start();
    await s.close();
  };
  const first = crypto.randomBytes(SIZE);
  put(a, REL, first);
  await pass(); // whole
  put(a, REL, scatter(first, 2, 30_000));
  await pass(); // by changed blocks, hashed by the server: the entry is made
  expect(changedSinceSent(base, a.remote, a.local)).toEqual([]);
  put(a, REL, scatter(fs.readFileSync(path.join(a.local, REL)), 2, 30_000));
  expect(changedSinceSent(base, a.remote, a.local)).toEqual([REL]);
  await pass(); // the early sums and the cache
  await settled();
  expect(changedSinceSent(base, a.remote, a.local)).toEqual([]);
});

test('what is remembered: the size and whole-second mtime as set, and a ctime with a fraction', () => {
  expect(rememberable('100 1700000000.0000000000 42 1700000123.1234567890', 100, 1700000000)).toBe(true);
  expect(rememberable('100 1700000000.0000000000 42 1700000123.0000000000', 100, 1700000000)).toBe(false); // whole-second file system
  expect(rememberable('100 1700000000.5000000000 42 1700000123.1234567890', 100, 1700000000)).toBe(false); // not the mtime set
  expect(rememberable('101 1700000000.0000000000 42 1700000123.1234567890', 100, 1700000000)).toBe(false);
  expect(rememberable('', 100, 1700000000)).toBe(false);
});
