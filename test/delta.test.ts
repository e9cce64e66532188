/**
 * The changed-blocks transfer's local pieces (issue 13): POSIX cksum computed locally equals coreutils'
 * `cksum`, block checksums combine into the whole file's, the block size grows with the file, and the
 * differing blocks become joined byte ranges. The transfer itself runs against a real sshd in
 * test/hostile/delta.test.ts.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cksumOf, crcUpdate } from '../sync/engine/cksum';
import { BlockCache, CachedFile, changedSinceSent } from '../sync/engine/block-cache';
import { blockSizeFor, changedRanges, DELTA_MIN_BYTES, localSums } from '../sync/engine/delta';
import { EarlySums } from '../sync/engine/delta-early';
import { joinRanges } from '../sync/engine/delta-write';
import { tempDir } from './support/trees';

function xxh128sum(file: string): string {
  try {
    return execFileSync('xxh128sum', ['-q', file]).toString().split(' ')[0];
  } catch (e) {
    throw new Error(`'xxh128sum' is needed for this test (${(e as Error).message}); install it with 'apt-get install -y xxhash'`);
  }
}

function cksumTool(buf: Buffer): number {
  try {
    return Number(execFileSync('cksum', { input: buf }).toString().split(' ')[0]);
  } catch (e) {
    throw new Error(`coreutils 'cksum' is needed for this test (${(e as Error).message}); install it with 'apt-get install -y coreutils'`);
  }
}

describe('cksum', () => {
  test.each([0, 1, 15, 16, 17, 255, 256, 65_537, 1_048_579])('%i bytes: the same value as coreutils cksum', (n) => {
    const buf = crypto.randomBytes(n);
    expect(cksumOf(crcUpdate(0, buf), n)).toBe(cksumTool(buf));
  });

  test('a known value: "hello\\n" is 3015617425', () => {
    expect(cksumOf(crcUpdate(0, Buffer.from('hello\n')), 6)).toBe(3015617425);
  });
});

describe('blocks', () => {
  test('block size: 64 KiB up to 128 MiB files, then about 2048 blocks a file, at most 4 MiB', () => {
    const MiB = 1024 * 1024;
    expect(blockSizeFor(16 * MiB)).toBe(64 * 1024);
    expect(blockSizeFor(128 * MiB)).toBe(64 * 1024);
    expect(blockSizeFor(200 * MiB)).toBe(128 * 1024);
    expect(blockSizeFor(1024 * MiB)).toBe(512 * 1024);
    expect(blockSizeFor(100 * 1024 * MiB)).toBe(4 * MiB);
  });

  test('local sums: a SHA-1 per block (the last one short)', async () => {
    const dir = tempDir('delta-unit');
    try {
      const buf = crypto.randomBytes(3 * 65_536 + 1000);
      const f = path.join(dir, 'f');
      fs.writeFileSync(f, buf);
      const s = await localSums(f, 'f', buf.length, 65_536, 'sha1');
      expect(s.blocks.map((b) => b.size)).toEqual([65_536, 65_536, 65_536, 1000]);
      expect(s.blocks[3].sum).toBe(crypto.createHash('sha1').update(buf.subarray(3 * 65_536)).digest('hex'));
      // The whole file's digest with SHA-1 blocks: cksum's CRC, as the server's check prints it.
      expect(s.whole).toBe(`c:${cksumTool(buf)}`);
      await expect(localSums(f, 'f', buf.length + 1, 65_536, 'sha1')).rejects.toThrow(/changed while it was sent/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("local sums, XXH3-128: each block's hash is what the server's xxh128sum prints for it", async () => {
    const dir = tempDir('delta-unit');
    try {
      const buf = crypto.randomBytes(2 * 65_536 + 17);
      const f = path.join(dir, 'f');
      fs.writeFileSync(f, buf);
      const s = await localSums(f, 'f', buf.length, 65_536, 'xxh128');
      expect(s.blocks.map((b) => b.size)).toEqual([65_536, 65_536, 17]);
      for (const [i, b] of s.blocks.entries()) {
        fs.writeFileSync(path.join(dir, `b${i}`), buf.subarray(i * 65_536, i * 65_536 + b.size));
        expect(b.sum).toBe(xxh128sum(path.join(dir, `b${i}`)));
      }
      expect(new Set(s.blocks.map((b) => b.sum)).size).toBe(3);
      expect(s.blocks[0].sum).toMatch(/^[0-9a-f]{32}$/);
      // The whole file's digest with XXH3-128 blocks: what xxh128sum prints for the whole file.
      expect(s.whole).toBe(`x:${xxh128sum(f)}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('changed ranges: differing, missing and resized blocks, adjacent ones joined', () => {
    const b = (n: number, size = 10): { sum: string; size: number } => ({ sum: `md5-${n}`, size });
    expect(changedRanges([b(1), b(2), b(3)], [b(1), b(2), b(3)], 10)).toEqual([]);
    expect(changedRanges([b(1), b(9), b(9), b(4), b(9)], [b(1), b(2), b(3), b(4), b(5)], 10)).toEqual([
      [10, 30],
      [40, 50],
    ]);
    // Grown: blocks past the remote's end are sent; the remote's short last block differs in size.
    expect(changedRanges([b(1), b(2), b(3), b(4, 5)], [b(1), b(2, 7)], 10)).toEqual([[10, 35]]);
    // Shrunk: nothing to send when the remaining blocks are equal (the size is set on commit).
    expect(changedRanges([b(1)], [b(1), b(2)], 10)).toEqual([]);
  });

  test('joined ranges: the smallest gaps closed first, down to the most allowed', () => {
    const r: [number, number][] = [
      [0, 10],
      [12, 20],
      [100, 110],
      [111, 120],
      [500, 510],
    ];
    expect(joinRanges(r, 5)).toEqual(r);
    expect(joinRanges(r, 3)).toEqual([
      [0, 20],
      [100, 120],
      [500, 510],
    ]);
    expect(joinRanges(r, 1)).toEqual([[0, 510]]);
    const many = Array.from({ length: 1000 }, (_, i): [number, number] => [i * 20, i * 20 + 10]);
    const joined = joinRanges(many);
    expect(joined.length).toBe(64);
    expect(joined[0][0]).toBe(0);
    expect(joined[joined.length - 1][1]).toBe(999 * 20 + 10);
  });
});

describe('early sums (before the listing)', () => {
  test('only a large file changed since the cache entry was made is hashed early, and used only as it was then', async () => {
    const dir = tempDir('delta-early');
    try {
      const local = path.join(dir, 'local');
      const cacheDir = path.join(dir, 'cache');
      fs.mkdirSync(path.join(local, 'd'), { recursive: true });
      const size = DELTA_MIN_BYTES + 1000;
      const bs = blockSizeFor(size);
      for (const name of ['changed.bin', 'same.bin']) fs.writeFileSync(path.join(local, 'd', name), crypto.randomBytes(size));
      const entry = (mtime: number): CachedFile => ({ id: `${size} ${mtime}.0000000000 7 1700000000.5`, blockSize: bs, kind: 'sha1', sums: Array(Math.ceil(size / bs)).fill('0'.repeat(40)) });
      const cache = new BlockCache(cacheDir, 'SHA256:server', '/remote');
      const now = Math.floor(fs.statSync(path.join(local, 'd/same.bin')).mtimeMs / 1000);
      cache.put('d/same.bin', entry(now)); // as sent: not hashed early
      cache.put('d/changed.bin', entry(now - 100)); // changed since
      cache.put('d/gone.bin', entry(now));
      new BlockCache(cacheDir, 'SHA256:other-server', '/remote').put('d/same.bin', entry(now - 100)); // another server's older copy
      expect(changedSinceSent(cacheDir, '/remote', local)).toEqual(['d/changed.bin']);
      expect(fs.readdirSync(cache.dir).length).toBe(3); // the entry of d/gone.bin (no local file) removed
      expect(changedSinceSent(cacheDir, '/other-root', local)).toEqual([]);
      const early = EarlySums.start(cacheDir, '/remote', local);
      expect(early.size).toBe(1);
      const st = fs.statSync(path.join(local, 'd/changed.bin'));
      expect(early.take('d/changed.bin', { size, mtimeMs: st.mtimeMs + 1 }, bs, 'sha1')).toBeUndefined(); // not the file as planned
      const other = EarlySums.start(cacheDir, '/remote', local);
      expect(other.take('d/changed.bin', { size, mtimeMs: st.mtimeMs }, bs, 'xxh128')).toBeUndefined(); // hashed the cache's way (SHA-1), not the one asked for
      const again = EarlySums.start(cacheDir, '/remote', local);
      const sums = again.take('d/changed.bin', { size, mtimeMs: st.mtimeMs }, bs, 'sha1');
      expect(sums).toBeDefined();
      expect(await sums).toEqual(await localSums(path.join(local, 'd/changed.bin'), 'd/changed.bin', size, bs, 'sha1'));
      expect(again.take('d/changed.bin', { size, mtimeMs: st.mtimeMs }, bs, 'sha1')).toBeUndefined(); // taken once
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
