/**
 * While-watching rows: a long-running `kubedev sync --json` process; each figure is the time from the
 * change until the `synced` event after which the remote holds the new bytes (checked), against
 * `rsync -a` of the same change run right after (kubedev goes first: it is already watching). The
 * branch switch is timed from the checkout's start for both tools (rsync's user runs it once the
 * checkout is done; its copy is checked out unwatched).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { changeFiles } from './data';
import { Watcher, sameFiles, sameTrees, sleep } from './harness';
import { applySwitch } from './real-tree';
import { fmt, median, percentile, ratioRow, Row } from './report';
import { Ctx } from './rows-attach';
import { rng } from './tree';

const EDITS = Number(process.env.KUBEDEV_BENCH_EDITS ?? 100);

/** A private working copy of `src` (the watch rows change it in place). */
function workCopy(c: Ctx, src: string, name: string): string {
  const d = path.join(c.b.work, 'local', c.tag, name);
  fs.mkdirSync(path.dirname(d), { recursive: true });
  execFileSync('cp', ['-a', src, d]);
  return d;
}

/** A working copy of `src` watched by a kubedev process into a copy of it; rsync's copy beside. */
async function watching(c: Ctx, name: string, src: string): Promise<{ local: string; kdDest: string; rsDest: string; w: Watcher }> {
  const local = workCopy(c, src, name);
  const kdDest = c.b.seeded(src, `${c.tag}/${name}/kd`);
  const rsDest = c.b.seeded(src, `${c.tag}/${name}/rs`);
  return { local, kdDest, rsDest, w: await c.b.watch(c.l, local, kdDest) };
}

/**
 * Waits for `synced` events from index `from` on until at least `need` entries were sent or deleted
 * and `ok()` holds; returns the time of that event after `t0`. With no event for a minute, the bytes
 * are checked once more (the counts can differ from `need`: folders count too) before giving up.
 */
export async function settled(w: Watcher, from: number, t0: number, need: number, ok: () => boolean, event = 'synced'): Promise<number> {
  let sum = 0;
  let last = -1;
  for (;;) {
    let i: number;
    try {
      // Batches of a big change can be seconds apart on a loaded machine: give up after a minute.
      i = await w.next(from, (e) => e.event === event, 60_000);
    } catch (e) {
      if (last >= 0 && ok()) return w.events[last].at - t0;
      throw e;
    }
    const e = w.events[i];
    sum += Number(e.files ?? 0) + Number(e.deleted ?? 0);
    last = i;
    from = i + 1;
    if (sum >= need && ok()) return e.at - t0;
  }
}

/**
 * The process's resident memory, its CPU time (ms: the scheduler's own count, summed over its threads;
 * the tick count of /proc/PID/stat charges a whole 10 ms tick to a process that wakes on a timer tick,
 * and an idle watcher's wake-ups are such) and its wake-ups (time slices).
 */
function procStats(pid: number): { rssMb: number; cpuMs: number; slices: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  let cpuMs = 0;
  let slices = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const [run, , n] = fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').trim().split(' ').map(Number);
      cpuMs += run / 1e6;
      slices += n;
    } catch {
      // a thread that ended meanwhile
    }
  }
  return { rssMb: rss, cpuMs, slices };
}

export const WATCH_ROWS: Record<string, (c: Ctx) => Promise<Row[]>> = {
  burst: async (c) => {
    const { b, l } = c;
    const { src, tree } = c.d.small;
    const { local, kdDest, rsDest, w } = await watching(c, 'burst', src);
    const kd: number[] = [];
    const rs: number[] = [];
    const writes: number[] = [];
    try {
      for (let i = 0; i < c.runs; i++) {
        const from = w.events.length;
        const t0 = performance.now();
        const changed = changeFiles(local, tree.paths, 1000, 100 + i);
        writes.push(performance.now() - t0);
        kd.push(await settled(w, from, t0, changed.length, () => sameFiles(local, kdDest, changed)));
        rs.push((await b.rsync(l, local, rsDest)).ms);
      }
    } finally {
      await w.stop();
    }
    sameTrees(local, kdDest);
    return [{ ...ratioRow('1,000 files changed, watching', kd, rs, undefined, 1.0), note: `writing them took ${fmt(writes, 'ms')}, included` }];
  },

  edits: async (c) => {
    const { b, l } = c;
    const { src, tree } = c.d.small;
    const { local, kdDest, rsDest, w } = await watching(c, 'edits', src);
    const lat: number[] = [];
    const r = rng(99);
    try {
      for (let i = 0; i < EDITS; i++) {
        const rel = tree.paths[Math.floor(r() * tree.paths.length)];
        const body = Buffer.from(`edit ${i} of ${rel}\n`.repeat(1 + (i % 7)));
        const from = w.events.length;
        const t0 = performance.now();
        fs.writeFileSync(path.join(local, rel), body);
        lat.push(await settled(w, from, t0, 1, () => sameFiles(local, kdDest, [rel])));
        await sleep(20);
      }
    } finally {
      await w.stop();
    }
    // rsync's latency for one edit: a full run after each of 10 edits.
    const rlat: number[] = [];
    for (let i = 0; i < 10; i++) {
      const rel = tree.paths[Math.floor(r() * tree.paths.length)];
      const t0 = performance.now();
      fs.writeFileSync(path.join(local, rel), `rsync edit ${i}\n`);
      await b.rsync(l, local, rsDest);
      rlat.push(performance.now() - t0);
    }
    const p = (q: number): string => `${percentile(lat, q).toFixed(1)} ms`;
    const rp = (q: number): string => `${percentile(rlat, q).toFixed(1)} ms`;
    // The millisecond targets are for the direct link; with a delay the round-trip row below is the target.
    const t = (ms: number, q: number): Partial<Row> => (l.delayMs === 0 ? { target: `≤ ${ms} ms`, met: percentile(lat, q) <= ms } : {});
    const rows: Row[] = [
      { what: `single edit -> byte-equal remote, p50 (${EDITS} edits; rsync: a run after each of 10)`, kubedev: p(50), rsync: rp(50), ...t(15, 50) },
      { what: 'single edit, p95', kubedev: p(95), rsync: rp(95) },
      { what: 'single edit, p99', kubedev: p(99), rsync: `${rp(100)} (max)`, ...t(75, 99) },
    ];
    if (l.delayMs > 0) {
      const rtt = 2 * l.delayMs;
      const n = percentile(lat, 50) / rtt;
      rows.push({ what: `one saved file in round trips (p50 / ${rtt} ms)`, kubedev: `${n.toFixed(2)} RTT`, rsync: `${(percentile(rlat, 50) / rtt).toFixed(2)} RTT`, target: '≤ 1.5 RTT', met: n <= 1.5 });
    }
    return rows;
  },

  // A branch switch as each user lives it, from `git checkout`'s start until the remote holds the new
  // tree: kubedev's user waits for the watcher (which starts during the checkout), rsync's runs rsync
  // once the checkout is done. Each tool gets its own working copy, so rsync's checkout runs unwatched.
  'real-switch-watch': async (c) => {
    const { b, l } = c;
    const r = c.d.real;
    const { local, kdDest, rsDest, w } = await watching(c, 'real-switch-watch', r.a);
    const rsLocal = workCopy(c, r.a, 'real-switch-watch-rs');
    const kd: number[] = [];
    const rs: number[] = [];
    const kdWrites: number[] = [];
    const rsWrites: number[] = [];
    const rsRun: number[] = [];
    try {
      for (let i = 0; i < c.runs; i++) {
        const [from, to] = i % 2 === 0 ? [r.specA, r.specB] : [r.specB, r.specA];
        const at = w.events.length;
        const t0 = performance.now();
        const touched = applySwitch(local, from, to);
        kdWrites.push(performance.now() - t0);
        // A deleted folder may be counted once for all its files: expect at least the rest.
        const gone = from.dirs.filter((d) => !to.dirs.includes(d)).map((d) => `${d}/`);
        const need = touched.filter((rel) => to.files.has(rel) || !gone.some((g) => rel.startsWith(g))).length;
        kd.push(await settled(w, at, t0, need, () => sameFiles(local, kdDest, touched)));
        const t1 = performance.now();
        applySwitch(rsLocal, from, to);
        rsWrites.push(performance.now() - t1);
        rsRun.push((await b.rsync(l, rsLocal, rsDest, ['--delete'])).ms);
        rs.push(performance.now() - t1);
      }
    } finally {
      await w.stop();
    }
    sameTrees(local, kdDest);
    sameTrees(rsLocal, rsDest);
    const row = ratioRow(`real-shaped tree: branch switch (${r.touched} paths, back and forth), watching, from the checkout's start (rsync -a --delete after it)`, kd, rs, undefined, 1.0);
    // Against rsync's run alone (the checkout charged to kubedev only): the stricter reading.
    const strict = median(kd) / median(rsRun);
    return [{ ...row, note: `the checkout took ${fmt(kdWrites, 'ms')} watched, ${fmt(rsWrites, 'ms')} not; rsync's run alone ${fmt(rsRun)} (kubedev ${strict.toFixed(2)}× that)` }];
  },

  watch100k: async (c) => {
    const { b, l } = c;
    const tree = c.d.watchTree;
    const dest = b.fresh(`${c.tag}/watch100k`);
    const t0 = performance.now();
    const w = await b.watch(l, tree, dest, [], 600_000);
    const readyMs = (w.events.find((e) => e.event === 'ready')?.at ?? performance.now()) - t0;
    const idleSeconds = 10;
    let rssMb: number;
    let cpu: number;
    let wakes: number;
    try {
      // Start-up garbage collected, memory trimmed (6 s), and V8's memory reducer done (its GCs come some
      // 10-15 s after the allocations stop): what stays is the idle cost.
      await sleep(20_000);
      const a = procStats(w.pid);
      await sleep(idleSeconds * 1000);
      const z = procStats(w.pid);
      rssMb = z.rssMb;
      cpu = ((z.cpuMs - a.cpuMs) / 1000 / idleSeconds) * 100;
      wakes = (z.slices - a.slices) / idleSeconds;
    } finally {
      await w.stop();
    }
    const n = c.d.watchFiles;
    return [
      { what: `watching ${n} files: resident memory of the kubedev process`, kubedev: `${rssMb.toFixed(0)} MB`, target: '≤ 150 MB', met: rssMb <= 150 },
      { what: `watching ${n} files: idle CPU of the kubedev process (${idleSeconds} s, 20 s after 'ready'; ${wakes.toFixed(1)} wake-ups/s)`, kubedev: `${cpu.toFixed(2)} %`, target: '< 1 %', met: cpu < 1 },
      { what: `watching ${n} files: process start to 'ready' (first mirror + watching)`, kubedev: fmt([readyMs]) },
    ];
  },
};
