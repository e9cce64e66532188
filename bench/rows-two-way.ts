/**
 * Two-way rows (issue 12): `kubedev sync --mode two-way --json` running; changes made in the
 * "container" (the remote folder, written by a process running as the ssh user, as a generator in the
 * dev container would) must arrive locally byte for byte.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { requireTool, sameFiles, sameTrees, sleep } from './harness';
import { percentile, ratioRow, Row } from './report';
import { Ctx } from './rows-attach';
import { settled } from './rows-watch';
import { rng } from './tree';

const EDITS = Number(process.env.KUBEDEV_BENCH_EDITS ?? 100);
/** Laptop saves made one at a time, and the pause before each (a developer's pace, not a burst). */
const PACED_SAVES = 30;
const PACED_GAP_MS = 250;

/**
 * A writer in the container: a node process running as the ssh user in the remote folder. Commands on
 * stdin (one JSON per line): {rel, data} writes a file; {gen, n, seed} makes folder `gen` with n files.
 * Each is answered `ok` once written.
 */
const WRITER = `
const fs = require('fs'), path = require('path');
require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const c = JSON.parse(l);
  if (c.gen) {
    fs.mkdirSync(c.gen, { recursive: true });
    let x = c.seed >>> 0 || 1;
    for (let i = 0; i < c.n; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      fs.writeFileSync(path.join(c.gen, 'gen' + i + '.js'), ('// generated ' + i + ' ' + x + '\\n').repeat(1 + (x % 100)));
    }
  } else fs.writeFileSync(c.rel, Buffer.from(c.data, 'base64'));
  process.stdout.write('ok\\n');
});`;

class Writer {
  private readonly child: ChildProcess;
  private readonly acks: Array<() => void> = [];
  constructor(cwd: string, uid: number, gid: number) {
    this.child = spawn(process.execPath, ['-e', WRITER], { cwd, uid, gid, stdio: ['pipe', 'pipe', 'inherit'] });
    readline.createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', () => this.acks.shift()?.());
  }

  send(cmd: Record<string, unknown>): Promise<void> {
    return new Promise((resolve) => {
      this.acks.push(resolve);
      this.child.stdin?.write(`${JSON.stringify(cmd)}\n`);
    });
  }

  close(): void {
    this.child.stdin?.end();
  }
}

/** Waits until `file` holds `want` (polled every millisecond); returns when. */
async function arrival(file: string, want: Buffer, ms: number): Promise<number> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      if (fs.readFileSync(file).equals(want)) return performance.now();
    } catch {
      // not there yet
    }
    if (performance.now() > deadline) throw new Error(`'${file}' did not get the container's bytes within ${ms} ms`);
    await sleep(1);
  }
}

async function twoWay(c: Ctx, name: string, body: (local: string, remote: string, w: Writer, events: () => number, watcher: Awaited<ReturnType<Ctx['b']['watch']>>) => Promise<Row[]>): Promise<Row[]> {
  requireTool('inotifywait', 'inotify-tools');
  const { b, l } = c;
  const src = c.d.small.src;
  const local = path.join(b.work, 'local', c.tag, name);
  fs.mkdirSync(path.dirname(local), { recursive: true });
  execFileSync('cp', ['-a', src, local]);
  const remote = b.seeded(src, `${c.tag}/${name}`);
  const w = await b.watch(l, local, remote, ['--mode', 'two-way']);
  const writer = new Writer(remote, b.sshd.uid, b.sshd.gid);
  try {
    // Echo check: the runner's own local writes must not be sent back up.
    const pushed = (): number => w.events.filter((e) => e.event === 'synced').reduce((a, e) => a + Number(e.files ?? 0), 0);
    return await body(local, remote, writer, pushed, w);
  } finally {
    writer.close();
    await w.stop();
  }
}

export const TWO_WAY_ROWS: Record<string, (c: Ctx) => Promise<Row[]>> = {
  'two-way-edits': (c) =>
    twoWay(c, 'two-way-edits', async (local, _remote, writer, pushed) => {
      const paths = c.d.small.tree.paths;
      const r = rng(12);
      const lat: number[] = [];
      const before = pushed();
      for (let i = 0; i < EDITS; i++) {
        const rel = paths[Math.floor(r() * paths.length)];
        const want = Buffer.from(`container edit ${i} of ${rel}\n`.repeat(1 + (i % 5)));
        const t0 = performance.now();
        await writer.send({ rel, data: want.toString('base64') });
        lat.push((await arrival(path.join(local, rel), want, 10_000)) - t0);
        await sleep(20);
      }
      await sleep(500);
      const echoed = pushed() - before;
      const p = (q: number): string => `${percentile(lat, q).toFixed(1)} ms`;
      // 50 ms is the direct link's target; through the delay proxy the edit's own trips are most of it
      // (told in round trips, as the laptop save's).
      const rows: Row[] = [
        { what: `two-way: container edit -> byte-equal local, p50 (${EDITS} edits, from the write's start)`, kubedev: p(50), ...(c.l.delayMs === 0 ? { target: '≤ 50 ms', met: percentile(lat, 50) <= 50 } : {}), note: echoed > 0 ? `${echoed} file(s) were sent back up (echo)` : undefined },
        { what: 'two-way: container edit, p95', kubedev: p(95) },
      ];
      if (c.l.delayMs > 0) rows.push({ what: `two-way: container edit in round trips (p50 / ${2 * c.l.delayMs} ms)`, kubedev: `${(percentile(lat, 50) / (2 * c.l.delayMs)).toFixed(2)} RTT` });
      return rows;
    }),

  'two-way-saves': (c) =>
    twoWay(c, 'two-way-saves', async (local, remote) => {
      const paths = c.d.small.tree.paths;
      const r = rng(13);
      const lat: number[] = [];
      for (let i = 0; i < EDITS; i++) {
        const rel = paths[Math.floor(r() * paths.length)];
        const want = Buffer.from(`laptop save ${i} of ${rel}\n`.repeat(1 + (i % 5)));
        const t0 = performance.now();
        fs.writeFileSync(path.join(local, rel), want);
        lat.push((await arrival(path.join(remote, rel), want, 10_000)) - t0);
        await sleep(20);
      }
      // One save at a time, as a developer saves (the row above saves 20 ms after the last arrived: each
      // save also waits behind the previous one's guard release on the server's shell).
      const one: number[] = [];
      for (let i = 0; i < PACED_SAVES; i++) {
        const rel = paths[Math.floor(r() * paths.length)];
        const want = Buffer.from(`one save ${i} of ${rel}\n`.repeat(1 + (i % 5)));
        await sleep(PACED_GAP_MS);
        const t0 = performance.now();
        fs.writeFileSync(path.join(local, rel), want);
        one.push((await arrival(path.join(remote, rel), want, 10_000)) - t0);
      }
      const p = (q: number, xs = lat): string => `${percentile(xs, q).toFixed(1)} ms`;
      const rows: Row[] = [
        // 15 ms is the direct link's target; through the delay proxy the save's own trip is most of it (the round-trip row below).
        { what: `two-way: laptop save -> byte-equal container, p50 (${EDITS} saves, 20 ms after the last arrived)`, kubedev: p(50), ...(c.l.delayMs === 0 ? { target: '≤ 15 ms (as one-way)', met: percentile(lat, 50) <= 15 } : {}) },
        { what: 'two-way: laptop save, p95', kubedev: p(95) },
        { what: `two-way: one laptop save at a time (${PACED_SAVES}, ${PACED_GAP_MS} ms apart), p50`, kubedev: p(50, one), ...(c.l.delayMs === 0 ? { target: '≤ 15 ms', met: percentile(one, 50) <= 15 } : {}) },
      ];
      if (c.l.delayMs > 0) {
        const rtt = 2 * c.l.delayMs;
        const n = percentile(one, 50) / rtt;
        rows.push({ what: `two-way: one laptop save in round trips (p50 / ${rtt} ms)`, kubedev: `${n.toFixed(2)} RTT`, target: '≤ 1.5 RTT', met: n <= 1.5 });
      }
      return rows;
    }),

  'two-way-gen': (c) =>
    twoWay(c, 'two-way-gen', async (local, remote, writer, pushed, w) => {
      const { b, l } = c;
      const rsLocal = path.join(b.work, 'local', c.tag, 'two-way-gen-rsync');
      execFileSync('cp', ['-a', c.d.small.src, rsLocal]);
      const kd: number[] = [];
      const rs: number[] = [];
      const gens: number[] = [];
      const before = pushed();
      for (let i = 0; i < c.runs; i++) {
        const gen = `generated-${i}`;
        const rels = Array.from({ length: 1000 }, (_, k) => `${gen}/gen${k}.js`);
        const from = w.events.length;
        const t0 = performance.now();
        await writer.send({ gen, n: 1000, seed: 1000 + i });
        const done = performance.now();
        gens.push(done - t0);
        const t = await settled(w, from, t0, 1000, () => sameFiles(remote, local, rels), 'pulled');
        kd.push(Math.max(0, t - (done - t0)));
        rs.push((await b.rsync(l, remote, rsLocal, [], true)).ms);
        if (!sameFiles(remote, rsLocal, rels)) throw new Error('rsync pull: the generated files differ');
      }
      sameTrees(remote, local);
      const echoed = pushed() - before;
      const gen = `${percentile(gens, 50).toFixed(0)} ms`;
      return [{ ...ratioRow('two-way: 1,000 files generated in the container -> all local (rsync -a pulling the same)', kd, rs, undefined, 1.0), note: `from the generator's end (generating took ${gen} median; kubedev may start during it)${echoed > 0 ? `; ${echoed} file(s) sent back up (echo)` : ''}` }];
    }),
};
