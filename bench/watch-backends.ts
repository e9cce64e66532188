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
  const w = await openWatcher({ root, ig, choice, warn: (m) => process.stderr.write(`${m}\n`), rescan: async () => [] });
  w.on('dirty', (rels) => {
    for (const r of rels) seen.add(r);
  });
  const index = new CompactIndex();
  scanLocalSync(root, ig, '', index, [], { onDir: (rel) => w.add(rel) });
  const readyMs = performance.now() - t0;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await new Promise((r) => setTimeout(r, 300));
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
    process.stdout.write(`SEEN ${JSON.stringify({ burst })}\n`);
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
        setTimeout(() => p.stdin.write('done\n'), 3000);
      }
      const s = /SEEN (.*)\n/.exec(out);
      if (s && ready) {
        const seen = JSON.parse(s[1]).burst as number;
        for (const d of fs.readdirSync(root, { recursive: true }) as string[]) if (/burst-\d+\.txt$/.test(d)) fs.rmSync(path.join(root, d));
        resolve({ ...ready, lost: BURST - seen });
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
      process.stdout.write(`${choice.padEnd(10)} ready ${(r.readyMs / 1000).toFixed(2)} s  rss ${r.rssMB.toFixed(0)} MB  rescan ${r.rescanMs.toFixed(0)} ms (${r.changed} differ), rss after ${r.rssAfterRescanMB.toFixed(0)} MB  lost ${choice === 'poll' ? 'n/a (polls)' : `${r.lost} of ${BURST}`}\n`);
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'child') void child(process.argv[3], process.argv[4] as WatchChoice);
else void main();
