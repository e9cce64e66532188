/**
 * The bench's trees, made once per run on tmpfs and shared by every row and delay: the 10,000-file
 * tree (and a copy with 1,000 files changed), the real-shaped tree before and after a branch switch,
 * a 200 MiB file before and after 1 MiB of changes (and changed again), and 100,000 small files for the watch row.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { realTreeSpec, switchedSpec, TreeSpec, writeSpec, applySwitch } from './real-tree';
import { makeTree, rng, TreeStats } from './tree';

export const LARGE_BYTES = 200 * 1024 * 1024;
/** The large file's changes: 4 places of 256 KiB = 1 MiB. */
const LARGE_CHANGES = [0.1, 0.35, 0.6, 0.9].map((f) => Math.floor((f * LARGE_BYTES) / 4096) * 4096);
const LARGE_CHANGE = 256 * 1024;

function say(m: string): void {
  process.stderr.write(`bench: ${m}\n`);
}

/** Changes `n` files of the tree (new content, some size changes), deterministically. */
export function changeFiles(root: string, paths: readonly string[], n: number, seed: number): string[] {
  const r = rng(seed);
  const picked = new Set<string>();
  while (picked.size < n) picked.add(paths[Math.floor(r() * paths.length)]);
  for (const p of picked) {
    const abs = path.join(root, p);
    const old = fs.readFileSync(abs);
    fs.writeFileSync(abs, Buffer.concat([old.subarray(0, Math.max(0, old.length - 10)), Buffer.from(`/* ${seed} ${p} */\n`)]));
  }
  return [...picked];
}

function copy(from: string, to: string): void {
  execFileSync('cp', ['-a', from, to]);
}

/** Every time under `root` an hour back, so that a change made next is a change even within a second. */
function age(root: string): void {
  execFileSync('find', [root, '-exec', 'touch', '-h', '-d', `@${Math.floor(Date.now() / 1000) - 3600}`, '{}', '+']);
}

export class Data {
  private memo = new Map<string, unknown>();
  constructor(
    readonly dir: string,
    readonly files: number,
    readonly watchFiles: number,
  ) {
    fs.mkdirSync(dir, { recursive: true });
  }

  private once<T>(key: string, make: () => T): T {
    if (!this.memo.has(key)) this.memo.set(key, make());
    return this.memo.get(key) as T;
  }

  /** The 10,000-file tree (bench/tree.ts). */
  get small(): { src: string; tree: TreeStats } {
    return this.once('small', () => {
      const src = path.join(this.dir, 'small');
      say(`generating ${this.files} files in ${src} ...`);
      const tree = makeTree(src, this.files, 1);
      age(src);
      say(`${tree.files} files, ${tree.dirs} folders, ${(tree.bytes / 1e6).toFixed(1)} MB`);
      return { src, tree };
    });
  }

  /** A copy of `small` with 1,000 of its files changed (times of the others kept). */
  get smallChanged(): { src: string; changed: string[] } {
    return this.once('smallChanged', () => {
      const src = path.join(this.dir, 'small-changed');
      copy(this.small.src, src);
      return { src, changed: changeFiles(src, this.small.tree.paths, Math.min(1000, this.files), 7) };
    });
  }

  /** The real-shaped tree (real-tree.ts), and the same after a branch switch (times of the rest kept). */
  get real(): { a: string; b: string; specA: TreeSpec; specB: TreeSpec; bytes: number; touched: number } {
    return this.once('real', () => {
      const specA = realTreeSpec();
      const specB = switchedSpec(specA);
      const a = path.join(this.dir, 'real-a');
      say(`generating the real-shaped tree (${specA.files.size} files) ...`);
      const bytes = writeSpec(a, specA);
      age(a);
      const b = path.join(this.dir, 'real-b');
      copy(a, b);
      const touched = applySwitch(b, specA, specB).length;
      say(`real-shaped tree: ${specA.files.size} files, ${specA.dirs.length} folders, ${(bytes / 1e6).toFixed(1)} MB; the switch touches ${touched} paths`);
      return { a, b, specA, specB, bytes, touched };
    });
  }

  /** A 200 MiB file (incompressible), and the same with 1 MiB changed in 4 places. */
  get large(): { old: string; new: string } {
    return this.once('large', () => {
      const old = path.join(this.dir, 'large-old');
      const neu = path.join(this.dir, 'large-new');
      fs.mkdirSync(old);
      fs.mkdirSync(neu);
      const buf = Buffer.alloc(LARGE_BYTES);
      const r = rng(200);
      for (let i = 0; i < LARGE_BYTES; i += 4) buf.writeUInt32LE(Math.floor(r() * 0x100000000), i);
      fs.writeFileSync(path.join(old, 'big.bin'), buf);
      fs.utimesSync(path.join(old, 'big.bin'), new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
      for (const at of LARGE_CHANGES) for (let i = at; i < at + LARGE_CHANGE; i += 4) buf.writeUInt32LE(Math.floor(r() * 0x100000000), i);
      fs.writeFileSync(path.join(neu, 'big.bin'), buf);
      return { old, new: neu };
    });
  }

  /** The large file's new version changed again: 1 MiB in 4 other places (an older mtime than `large.new`'s). */
  get largeAgain(): { next: string } {
    return this.once('largeAgain', () => {
      const next = path.join(this.dir, 'large-next');
      fs.mkdirSync(next);
      const buf = fs.readFileSync(path.join(this.large.new, 'big.bin'));
      const r = rng(201);
      for (const at of LARGE_CHANGES.map((x) => (x + LARGE_BYTES / 8) % (LARGE_BYTES - LARGE_CHANGE))) for (let i = at; i < at + LARGE_CHANGE; i += 4) buf.writeUInt32LE(Math.floor(r() * 0x100000000), i);
      fs.writeFileSync(path.join(next, 'big.bin'), buf);
      fs.utimesSync(path.join(next, 'big.bin'), new Date(Date.now() - 1800_000), new Date(Date.now() - 1800_000));
      return { next };
    });
  }

  /** 100,000 small files for the memory and idle-CPU row. */
  get watchTree(): string {
    return this.once('watchTree', () => {
      const src = path.join(this.dir, 'watch');
      say(`generating ${this.watchFiles} files for the watch row ...`);
      makeTree(src, this.watchFiles, 3, false);
      return src;
    });
  }
}
