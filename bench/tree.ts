/** Deterministic benchmark trees: a seeded generator, so every run and every tool sees the same bytes. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** xorshift32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** A file size with a realistic spread: mostly small sources, some assets, a few large files. */
function size(r: () => number): number {
  const u = r();
  if (u < 0.6) return 100 + Math.floor(r() * 1_400); // small sources
  if (u < 0.92) return 1_500 + Math.floor(r() * 3_000); // typical sources
  if (u < 0.99) return 5_000 + Math.floor(r() * 10_000); // big sources, data
  if (u < 0.999) return 20_000 + Math.floor(r() * 40_000); // assets
  return 150_000 + Math.floor(r() * 150_000); // a few large files
}

export interface TreeStats {
  readonly files: number;
  readonly dirs: number;
  readonly bytes: number;
  readonly paths: string[];
}

/** Writes `files` files under `root` (created), with folders up to 8 deep. */
export function makeTree(root: string, files: number, seed = 1, sized = true): TreeStats {
  const r = rng(seed);
  const dirs: string[] = [''];
  const paths: string[] = [];
  let bytes = 0;
  fs.mkdirSync(root, { recursive: true });
  const content = Buffer.alloc(400_000);
  for (let i = 0; i < content.length; i++) content[i] = 32 + ((i * 7919) % 95);
  for (let i = 0; i < files; i++) {
    // a new folder every ~16 files, under a random existing one (depth capped)
    if (i % 16 === 0) {
      const parent = dirs[Math.floor(r() * dirs.length)];
      if (parent.split('/').length < 8) {
        const d = parent === '' ? `d${dirs.length}` : `${parent}/d${dirs.length}`;
        fs.mkdirSync(path.join(root, d));
        dirs.push(d);
      }
    }
    const dir = dirs[Math.floor(r() * dirs.length)];
    const rel = dir === '' ? `f${i}.txt` : `${dir}/f${i}.txt`;
    const n = sized ? size(r) : 16;
    const off = Math.floor(r() * (content.length - n));
    fs.writeFileSync(path.join(root, rel), content.subarray(off, off + n));
    paths.push(rel);
    bytes += n;
  }
  return { files, dirs: dirs.length - 1, bytes, paths };
}
