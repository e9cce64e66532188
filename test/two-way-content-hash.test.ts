/**
 * The ancestor's content hash (content-hash.ts): `holdsBytes` says yes only for a regular file still
 * as the local listing saw it whose bytes hash to the ancestor's; a symlink, a FIFO, a file changed
 * since the listing, another size, a missing or unreadable file say no, without blocking or throwing.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HASHED_MAX, hashOf, holdsBytes } from '../sync/engine/two-way/content-hash';
import { Sig } from '../sync/engine/two-way/state-store';
import { tempDir } from './support/trees';

let dir = '';
beforeEach(() => {
  dir = tempDir('content-hash');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const H = hashOf([Buffer.from('generated v1')]);

/** A file holding `text`, and its sig as the local listing records it. */
function file(name: string, text = 'generated v1'): { abs: string; l: Sig } {
  const abs = path.join(dir, name);
  fs.writeFileSync(abs, text);
  const st = fs.lstatSync(abs);
  return { abs, l: { t: 'f', s: st.size, m: st.mtimeMs, p: st.mode & 0o7777 } };
}

test('the ancestor bytes: yes; other bytes of the same size: no', () => {
  const same = file('same.ts');
  expect(holdsBytes(same.abs, same.l, H)).toEqual({ ino: expect.any(Number), ctimeMs: expect.any(Number) });
  const other = file('other.ts', 'generated v2');
  expect(holdsBytes(other.abs, other.l, H)).toBeUndefined();
});

test('a file changed since the listing (mtime, size, mode), gone, or unreadable: no', () => {
  const f = file('f.ts');
  expect(holdsBytes(f.abs, { ...f.l, m: f.l.m + 1 }, H)).toBeUndefined();
  expect(holdsBytes(f.abs, { ...f.l, p: 0o755 }, H)).toBeUndefined();
  expect(holdsBytes(f.abs, { ...f.l, s: f.l.s + 1 }, H)).toBeUndefined();
  expect(holdsBytes(path.join(dir, 'gone.ts'), f.l, H)).toBeUndefined();
  expect(holdsBytes(path.join(dir, 'f.ts', 'below'), f.l, H)).toBeUndefined(); // ENOTDIR
});

test('a symlink to a file holding the bytes, or a FIFO, in its place: no, and nothing blocks', () => {
  const target = file('target.ts');
  const link = path.join(dir, 'link.ts');
  fs.symlinkSync('target.ts', link);
  expect(holdsBytes(link, target.l, H)).toBeUndefined();
  const fifo = path.join(dir, 'fifo.ts');
  execFileSync('mkfifo', [fifo]);
  const t0 = Date.now();
  expect(holdsBytes(fifo, target.l, H)).toBeUndefined();
  expect(Date.now() - t0).toBeLessThan(1000);
});

test('a file above HASHED_MAX is not decided by its hash, even holding the bytes hashed', () => {
  const big = Buffer.alloc(HASHED_MAX + 1, 7);
  const f = file('big.bin', big.toString('latin1'));
  expect(f.l.s).toBe(HASHED_MAX + 1);
  expect(holdsBytes(f.abs, f.l, hashOf([big]))).toBeUndefined();
  const small = file('small.bin', big.subarray(0, HASHED_MAX).toString('latin1'));
  expect(holdsBytes(small.abs, small.l, hashOf([big.subarray(0, HASHED_MAX)]))).toEqual({ ino: expect.any(Number), ctimeMs: expect.any(Number) });
});
