/**
 * Measures each watch backend on a 100,000-file tree (tmpfs): time to watching (backend started and
 * the first scan done, as a session does it), resident memory of a process holding only the watcher
 * and the index, and events lost in a 10,000-file burst; and the cost of the cheap rescan at 10,000 and
 * 100,000 files. Not part of `npm run bench` (no sshd needed):
 *
 *   npx tsx bench/watch-backends.ts [files=100000]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildIgnore } from '../sync/engine/ignore';
import { CompactIndex } from '../sync/engine/index-store';
import { scanLocalSync } from '../sync/engine/tree';
import { openWatcher, WatchChoice } from '../sync/engine/watch';
import { changedSince } from '../sync/engine/watch/rescan';
import { makeTree } from './tree';

const BURST = 10_000;

async function child(root: string, choice: WatchChoice): Promise<void> {
  const ig = buildIgnore(root);
  const seen = new Set<string>();
  const t0 = performance.now();
  // The guard's scoped rescans (the second look at new folders) are counted apart; full ones are not run.
  const relooked = new Set<string>();
  const rescan = async (scope: string): Promise<string[]> => {
    if (scope !== '') for (const k of scanLocalSync(root, ig, scope, new Map(), [], {}).tree.keys()) relooked.add(k);
    return [];
  };
  const w = await openWatcher({ root, ig, choice, warn: (m) => process.stderr.write(`${m}\n`), rescan });
  // As a batch does: a path reported is seen; a folder reported is listed whole (watched first).
  w.on('dirty', (rels) => {
    for (const r of rels) {
      seen.add(r);
      let isDir = false;
      try {
        isDir = fs.lstatSync(path.join(root, r)).isDirectory();
      } catch {
        continue;
      }
      if (isDir) for (const k of scanLocalSync(root, ig, r, new Map(), [], { onDir: (d) => w.add(d) }).tree.keys()) seen.add(k);
    }
  });
  const index = new CompactIndex();
  scanLocalSync(root, ig, '', index, [], { onDir: (rel) => w.add(rel) });
  const readyMs = performance.now() - t0;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await new Promise((r) => setTimeout(r, 300));
  w.arm();
  const rssMB = process.memoryUsage().rss / 1e6;
  // One cheap rescan, as the guard runs it (nothing differs): its time, and memory after it.
  const t1 = performance.now();
  const changed = await changedSince({ options: { localRoot: root }, ig, index, scanOptions: () => ({ onDir: (rel) => w.add(rel) }) }, '');
  const rescanMs = performance.now() - t1;
  gc?.();
  await new Promise((r) => setTimeout(r, 300));
  process.stdout.write(`READY ${JSON.stringify({ readyMs, rssMB, rescanMs, changed: changed.length, rssAfterRescanMB: process.memoryUsage().rss / 1e6, entries: index.size })}\n`);
  process.stdin.once('data', () => {
    const burst = [...seen].filter((r) => /(^|\/)burst-\d+\.txt$/.test(r)).length;
    const isNested = (r: string): boolean => /(^|\/)nested-\d+\.txt$/.test(r);
    const nested = [...seen].filter(isNested).length;
    const nestedGuard = new Set([...seen, ...relooked].filter(isNested)).size;
    process.stdout.write(`SEEN ${JSON.stringify({ burst, nested, nestedGuard })}\n`);
    void w.close().then(() => process.exit(0));
  });
}

function runChild(root: string, choice: WatchChoice): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', __filename, 'child', root, choice], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    let ready: Record<string, number> | undefined;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (.*)\n/.exec(out);
      if (m && !ready) {
        ready = JSON.parse(m[1]);
        // The burst: BURST new files spread over the tree's existing folders.
        const dirs = fs.readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(e.parentPath, e.name));
        for (let i = 0; i < BURST; i++) fs.writeFileSync(path.join(dirs[i % dirs.length], `burst-${i}.txt`), 'b');
        // The second burst: BURST files in 1,000 new folders three deep, each written as soon as made.
        for (let i = 0; i < BURST; i++) {
          const d = path.join(root, 'new-burst', `a${i % 10}`, `b${i % 100}`, `c${i % 1000}`);
          fs.mkdirSync(d, { recursive: true });
          fs.writeFileSync(path.join(d, `nested-${i}.txt`), 'n');
        }
        setTimeout(() => p.stdin.write('done\n'), 3000);
      }
      const s = /SEEN (.*)\n/.exec(out);
      if (s && ready) {
        const seen = JSON.parse(s[1]) as { burst: number; nested: number; nestedGuard: number };
        for (const d of fs.readdirSync(root, { recursive: true }) as string[]) if (/burst-\d+\.txt$/.test(d)) fs.rmSync(path.join(root, d));
        fs.rmSync(path.join(root, 'new-burst'), { recursive: true, force: true });
        resolve({ ...ready, lost: BURST - seen.burst, lostNested: BURST - seen.nested, lostNestedGuard: BURST - seen.nestedGuard });
      }
    });
    p.on('exit', (code) => {
      if (code !== 0) reject(new Error(`${choice}: exit ${code}`));
    });
  });
}

function scanCost(root: string): number {
  const ig = buildIgnore(root);
  const ms: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    scanLocalSync(root, ig, '', new CompactIndex(), [], {});
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[1];
}

async function main(): Promise<void> {
  const files = Number(process.argv[2] ?? 100_000);
  const base = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'kubedev-watch-bench-'));
  try {
    const small = makeTree(path.join(base, 'small'), 10_000, 1, false);
    const big = makeTree(path.join(base, 'big'), files, 1, false);
    process.stdout.write(`scan cost (median of 3): ${small.files} files ${scanCost(path.join(base, 'small')).toFixed(0)} ms; ${big.files} files in ${big.dirs} folders ${scanCost(path.join(base, 'big')).toFixed(0)} ms\n`);
    for (const choice of ['per-folder', 'parcel', 'recursive', 'poll'] as const) {
      const r = await runChild(path.join(base, 'big'), choice);
      process.stdout.write(`${choice.padEnd(10)} ready ${(r.readyMs / 1000).toFixed(2)} s  rss ${r.rssMB.toFixed(0)} MB  rescan ${r.rescanMs.toFixed(0)} ms (${r.changed} differ), rss after ${r.rssAfterRescanMB.toFixed(0)} MB  lost ${choice === 'poll' ? 'n/a (polls)' : `${r.lost} of ${BURST}, in new nested folders ${r.lostNested} of ${BURST} by events, ${r.lostNestedGuard} after the guard's second look`}\n`);
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'child') void child(process.argv[3], process.argv[4] as WatchChoice);
else void main();
