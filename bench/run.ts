/**
 * `npm run bench`: the `kubedev` process as users start it (`node bin/kubedev.js sync ...`, fresh each
 * time) against `rsync -a` over the same ssh (same key exchange and cipher), and `tar | ssh tar -x` as
 * the physical limit for bulk; on 127.0.0.1 and tmpfs; every row at each link delay (direct, and through
 * a delaying proxy); tools alternated, medians of KUBEDEV_BENCH_RUNS runs with min–max.
 * Targets: ../shared/DESIGN.md "Performance targets"; issues 12 and 13.
 *
 * Controls (environment):
 *   KUBEDEV_BENCH_ROWS    rows to run, comma-separated (default: all; see ROWS below)
 *   KUBEDEV_BENCH_DELAYS  round trips in ms, comma-separated (default 0,50); 0 is direct, more goes through bench/delay-proxy.ts (half each way)
 *   KUBEDEV_BENCH_RUNS    runs per tool and row (default 5)
 *   KUBEDEV_BENCH_AGENT   off: no run is served by the agent (default: as users get it, served once one is left)
 *   KUBEDEV_BENCH_FILES, KUBEDEV_BENCH_WATCH_FILES, KUBEDEV_BENCH_EDITS: sizes (10000, 100000, 100)
 *   KUBEDEV_BENCH_BREAKDOWN  real: the breakdown times the real-shaped tree (default: the 10,000-file one)
 * e.g. `KUBEDEV_BENCH_ROWS=noop KUBEDEV_BENCH_DELAYS=0 KUBEDEV_BENCH_RUNS=3 npm run bench`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { breakdown } from './breakdown';
import { Data } from './data';
import { Bench, requireTool, stopAgents } from './harness';
import { failedRow, machineLine, Row, table } from './report';
import { ATTACH_ROWS, Ctx } from './rows-attach';
import { TWO_WAY_ROWS } from './rows-two-way';
import { WATCH_ROWS } from './rows-watch';

const ROWS: Record<string, (c: Ctx) => Promise<Row[]>> = {
  first: ATTACH_ROWS.first,
  noop: ATTACH_ROWS.noop,
  'noop-cold': ATTACH_ROWS['noop-cold'],
  'noop-kept': ATTACH_ROWS['noop-kept'],
  change: ATTACH_ROWS.change,
  burst: WATCH_ROWS.burst,
  edits: WATCH_ROWS.edits,
  'real-first': ATTACH_ROWS['real-first'],
  'real-noop': ATTACH_ROWS['real-noop'],
  'real-switch': ATTACH_ROWS['real-switch'],
  'real-switch-watch': WATCH_ROWS['real-switch-watch'],
  large: ATTACH_ROWS.large,
  'large-again': ATTACH_ROWS['large-again'],
  'two-way-edits': TWO_WAY_ROWS['two-way-edits'],
  'two-way-saves': TWO_WAY_ROWS['two-way-saves'],
  'two-way-gen': TWO_WAY_ROWS['two-way-gen'],
  watch100k: WATCH_ROWS.watch100k,
};
/** Not a table row: the time breakdown of first mirror and no-op (at 0 ms only). */
const BREAKDOWN = 'breakdown';

function list(name: string, fallback: string): string[] {
  return (process.env[name] ?? fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function say(m: string): void {
  process.stderr.write(`bench: ${m}\n`);
}

async function main(): Promise<void> {
  const rows = list('KUBEDEV_BENCH_ROWS', [...Object.keys(ROWS), BREAKDOWN].join(','));
  const unknown = rows.filter((r) => !(r in ROWS) && r !== BREAKDOWN);
  if (unknown.length) throw new Error(`KUBEDEV_BENCH_ROWS: unknown row(s) ${unknown.join(', ')}; known: ${[...Object.keys(ROWS), BREAKDOWN].join(', ')}`);
  const delays = list('KUBEDEV_BENCH_DELAYS', '0,50').map(Number);
  if (delays.some((d) => !Number.isFinite(d) || d < 0 || d % 2 !== 0)) throw new Error(`KUBEDEV_BENCH_DELAYS: round trips in ms, even numbers >= 0 (e.g. 0,50), not '${process.env.KUBEDEV_BENCH_DELAYS}'`);
  const runs = Number(process.env.KUBEDEV_BENCH_RUNS ?? 5);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`KUBEDEV_BENCH_RUNS: a whole number >= 1, not '${process.env.KUBEDEV_BENCH_RUNS}'`);
  requireTool('rsync', 'rsync');
  requireTool('ssh', 'openssh-client');
  requireTool('tar', 'tar');
  requireTool('diff', 'diffutils');
  requireTool('setpriv', 'util-linux');
  requireTool('xxh128sum', 'xxhash'); // the sidecar image's block hash for large files (sync/engine/block-hash.ts)

  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const work = fs.mkdtempSync(path.join(base, 'kubedev-bench-'));
  fs.chmodSync(work, 0o755); // the ssh user must reach the remote folders inside
  process.env.XDG_STATE_HOME = path.join(work, 'state'); // two-way's ancestor files: removed with the rest
  // `kubedev sync --once` as users run it: served by their agent (sync/agent/) once the first run left
  // one. Its socket goes in the bench's own runtime folder; the agents leave with the bench.
  // KUBEDEV_BENCH_AGENT=off times every run without one (as the row 'noop-cold' does).
  const runtime = path.join(work, 'run');
  fs.mkdirSync(runtime, { mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = runtime;
  process.env.KUBEDEV_AGENT = process.env.KUBEDEV_BENCH_AGENT === 'off' ? 'off' : 'on';
  delete process.env.CI;
  const d = new Data(path.join(work, 'data'), Number(process.env.KUBEDEV_BENCH_FILES ?? 10_000), Number(process.env.KUBEDEV_BENCH_WATCH_FILES ?? 100_000));
  const b = await Bench.start(work);
  const out: string[] = [];
  let failed = 0;
  const t0 = performance.now();
  try {
    for (const delay of delays) {
      const l = await b.link(delay / 2);
      const c: Ctx = { b, l, runs, d, tag: `rtt${delay}` };
      const got: Row[] = [];
      for (const name of rows.filter((r) => r !== BREAKDOWN)) {
        say(`${delay} ms: ${name} ...`);
        const t = performance.now();
        const before = got.length;
        try {
          got.push(...(await ROWS[name](c)));
        } catch (e) {
          failed++;
          got.push(failedRow(name, e));
        }
        // What the row made is removed (tmpfs is memory); its figures are printed now, in case of a kill.
        for (const d of ['remote', 'local']) fs.rmSync(path.join(work, d, c.tag), { recursive: true, force: true });
        say(`${delay} ms: ${name} took ${((performance.now() - t) / 1000).toFixed(1)} s\n${table(got.slice(before)).split('\n').slice(2).join('\n')}`);
      }
      const link = delay === 0 ? 'direct to sshd' : `through the delay proxy, ${delay / 2} ms each way`;
      const text = `\n### ${delay} ms round trip (${link})\n\n${table(got)}\n`;
      process.stdout.write(text);
      out.push(text);
      if (delay === 0 && rows.includes(BREAKDOWN)) {
        let text2: string;
        try {
          text2 = `\n${await breakdown(c)}\n`;
        } catch (e) {
          failed++;
          text2 = `\nbreakdown: FAILED — ${(e as Error).message}\n`;
        }
        process.stdout.write(text2);
        out.push(text2);
      }
    }
  } finally {
    stopAgents(runtime);
    await b.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const foot = `\nTimes are whole processes, tools alternated, median (min–max) of ${runs}. ssh for rsync and tar: ${b.sshAlgos} (the algorithms kubedev's ssh2 agrees on with this sshd). ${machineLine()}. Bench took ${((performance.now() - t0) / 1000).toFixed(0)} s.\n`;
  process.stdout.write(foot);
  if (failed > 0) {
    process.stderr.write(`bench: ${failed} row(s) could not be measured (marked FAILED above)\n`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
