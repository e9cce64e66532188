/**
 * A real-shaped tree, generated (no download): the size and depth distribution of a public Go monorepo
 * with its vendor/ folder, and a "branch switch" like `git checkout` of a commit 400 back.
 *
 * Where the numbers come from:
 * - Shape: containers/podman at commit c6580b4a5219c9efb9ab79a540637d8a58b736f8 (2026-05-19), measured
 *   with `git ls-tree -r -l HEAD`: 10,022 files (5,470 under vendor/), 1,700 folders, 82.6 MB. The
 *   histograms below are its files per path depth, folders per depth and files per power-of-two size.
 * - Totals: the repository quoted in issue 13 (11,832 files, 132 MB with vendor/): the counts are
 *   scaled to 11,832 files and every size by one factor so the tree holds 132 MB.
 * - The switch: `git diff --name-status HEAD~400 HEAD` on the same podman clone gives 534 added, 667
 *   deleted, 2,766 modified, 237 renamed; those proportions, scaled so that the paths touched (a rename
 *   touches two: a delete plus an add) are the 9,607 files the checkout changed, give SWITCH.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rng } from './tree';

/** podman: files at path depth 1..12 (depth 1 = at the root). */
const FILE_DEPTHS = [40, 204, 689, 1579, 2269, 2344, 1532, 1023, 183, 120, 34, 5];
/** podman: folders at depth 1..11. */
const DIR_DEPTHS = [18, 112, 232, 276, 451, 328, 172, 60, 41, 7, 3];
/** podman: files whose size is below 2^k bytes (and at least 2^(k-1)), k = 0..21. */
const SIZE_LOG2 = [22, 0, 5, 6, 30, 107, 104, 264, 576, 994, 1287, 1607, 1535, 1357, 1175, 520, 271, 112, 17, 19, 12, 1];
const PODMAN_FILES = 10_022;
export const REAL_FILES = 11_832;
export const REAL_BYTES = 132_000_000;
/** The switch: podman's A/D/M/R mix x 2.163, so that A + D + M + 2R = 9,608 paths touched. */
const SWITCH = { added: 1155, deleted: 1443, modified: 5984, renamed: 513 };
const NAMES = ['pkg', 'vendor', 'internal', 'cmd', 'api', 'client', 'types', 'util', 'libpod', 'define', 'common', 'storage', 'image', 'network', 'golang.org', 'github.com'];

export interface FileSpec {
  readonly size: number;
  /** Content version: a different version is different bytes. */
  readonly ver: number;
}

/** A tree as data: folders (parents before children) and files. */
export interface TreeSpec {
  readonly dirs: string[];
  readonly files: Map<string, FileSpec>;
}

function pick(r: () => number, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let u = r() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return weights.length - 1;
}

function rawSize(r: () => number): number {
  const k = pick(r, SIZE_LOG2);
  if (k === 0) return 0;
  const lo = 2 ** (k - 1);
  return Math.floor(lo * 2 ** r()); // log-uniform inside [2^(k-1), 2^k)
}

/** The real-shaped tree (deterministic for a seed). */
export function realTreeSpec(seed = 5): TreeSpec {
  const r = rng(seed);
  const scale = REAL_FILES / PODMAN_FILES;
  const byDepth: string[][] = [['']];
  const dirs: string[] = [];
  DIR_DEPTHS.forEach((count, i) => {
    const level: string[] = [];
    for (let n = 0; n < Math.round(count * scale); n++) {
      const parents = byDepth[i];
      const parent = parents[Math.floor(r() * parents.length)];
      const name = `${NAMES[Math.floor(r() * NAMES.length)]}${dirs.length}`;
      const d = parent === '' ? name : `${parent}/${name}`;
      level.push(d);
      dirs.push(d);
    }
    byDepth.push(level);
  });
  const raw: Array<[string, number]> = [];
  for (let i = 0; i < REAL_FILES; i++) {
    const depth = 1 + pick(r, FILE_DEPTHS);
    const folders = byDepth[Math.min(depth - 1, byDepth.length - 1)];
    const dir = folders[Math.floor(r() * folders.length)];
    const name = `file_${i}.go`;
    raw.push([dir === '' ? name : `${dir}/${name}`, rawSize(r)]);
  }
  const factor = REAL_BYTES / raw.reduce((a, [, s]) => a + s, 0);
  return { dirs, files: new Map(raw.map(([rel, s]) => [rel, { size: Math.round(s * factor), ver: 0 }])) };
}

/** The tree after a switch of ~9,600 paths (modified, added, deleted, renamed), deterministic. */
export function switchedSpec(from: TreeSpec, seed = 400): TreeSpec {
  const r = rng(seed);
  const files = new Map(from.files);
  const rels = [...files.keys()];
  const take = (): string => {
    for (;;) {
      const i = Math.floor(r() * rels.length);
      const rel = rels[i];
      if (rel === '') continue;
      rels[i] = '';
      return rel;
    }
  };
  const dirs = [...from.dirs];
  const newDir = (): string => {
    const parent = from.dirs[Math.floor(r() * from.dirs.length)];
    const d = `${parent}/switched${dirs.length}`;
    dirs.push(d);
    return d;
  };
  for (let i = 0; i < SWITCH.modified; i++) {
    const rel = take();
    const f = files.get(rel) as FileSpec;
    files.set(rel, { size: Math.max(0, Math.round(f.size * (0.9 + r() * 0.2))), ver: f.ver + 1 });
  }
  for (let i = 0; i < SWITCH.deleted; i++) files.delete(take());
  let folder = newDir();
  for (let i = 0; i < SWITCH.added + SWITCH.renamed; i++) {
    if (i % 25 === 0) folder = newDir(); // new packages come as folders of files
    files.set(`${folder}/added_${i}.go`, { size: rawSize(r) * 1.35, ver: 7 });
  }
  for (let i = 0; i < SWITCH.renamed; i++) {
    const rel = take();
    files.delete(rel);
  }
  return { dirs, files };
}

const TEXT = ((): Buffer => {
  const b = Buffer.alloc(4 << 20);
  const r = rng(77);
  const words = ['func', 'return', 'err', 'nil', 'if', 'for', 'range', ':=', 'package', 'import', 'struct', 'string', 'int', '{', '}', '\n\t', '\n'];
  let at = 0;
  while (at < b.length) at += b.write(`${words[Math.floor(r() * words.length)]} `, at);
  return b;
})();

/** The bytes of a file of the spec (text-like, deterministic for path and version). */
export function specContent(rel: string, f: FileSpec): Buffer {
  let h = f.ver * 2654435761;
  for (let i = 0; i < rel.length; i++) h = (Math.imul(h, 31) + rel.charCodeAt(i)) >>> 0;
  const head = Buffer.from(`// ${rel} v${f.ver}\n`);
  const size = Math.round(f.size);
  if (size <= head.length) return head.subarray(0, size);
  const n = size - head.length;
  const off = h % (TEXT.length - Math.min(n, TEXT.length));
  const body = n <= TEXT.length ? TEXT.subarray(off, off + n) : Buffer.concat(Array.from({ length: Math.ceil(n / TEXT.length) }, () => TEXT)).subarray(0, n);
  return Buffer.concat([head, body]);
}

/** Writes the whole spec under `root` (created). */
export function writeSpec(root: string, spec: TreeSpec): number {
  fs.mkdirSync(root, { recursive: true });
  for (const d of spec.dirs) fs.mkdirSync(path.join(root, d), { recursive: true });
  let bytes = 0;
  for (const [rel, f] of spec.files) {
    const b = specContent(rel, f);
    fs.writeFileSync(path.join(root, rel), b);
    bytes += b.length;
  }
  return bytes;
}

/** Turns a tree written from `from` into `to` in place, like a checkout; returns the paths touched. */
export function applySwitch(root: string, from: TreeSpec, to: TreeSpec): string[] {
  const touched: string[] = [];
  for (const rel of from.files.keys()) {
    if (to.files.has(rel)) continue;
    fs.rmSync(path.join(root, rel));
    touched.push(rel);
  }
  const gone = from.dirs.filter((d) => !to.dirs.includes(d)).reverse();
  for (const d of gone) fs.rmSync(path.join(root, d), { recursive: true, force: true });
  for (const d of to.dirs) if (!from.dirs.includes(d)) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (const [rel, f] of to.files) {
    const old = from.files.get(rel);
    if (old && old.ver === f.ver && old.size === f.size) continue;
    fs.writeFileSync(path.join(root, rel), specContent(rel, f));
    touched.push(rel);
  }
  return touched;
}
