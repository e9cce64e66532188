/**
 * "Find where the time goes" (issue 13): the kubedev process's wall time for a first mirror and a no-op
 * re-attach, split into node's start, module loading, the CLI's own work before connecting, the SSH
 * handshake, the remote preparation, the local scan (it overlaps the handshake), the remote listing,
 * the transfer, and closing down. Marks come from bench/phases.ts preloaded into the real process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KUBEDEV_BIN, ssh2Handshake, timed } from './harness';
import { median } from './report';
import { Ctx } from './rows-attach';

type Marks = Array<[string, number]>;

/** The phases of one run: name -> ms (summed when a step runs more than once). */
function phases(marks: Marks, wallMs: number): Map<string, number> {
  const at = (n: string): number | undefined => marks.find(([m]) => m === n)?.[1];
  const out = new Map<string, number>();
  const add = (k: string, v: number | undefined): void => {
    if (v !== undefined && Number.isFinite(v)) out.set(k, (out.get(k) ?? 0) + v);
  };
  const ready = at('node ready') ?? 0;
  const cli = at('cli loaded');
  add('1. node start (exec to first user code)', ready);
  add('2. module loading (bin/kubedev.js -> CLI loaded)', cli !== undefined ? cli - ready : undefined);
  const firstStep = marks.find(([m]) => / start$/.test(m))?.[1];
  add('3. CLI before the first engine step (options, checks, watch setup)', firstStep !== undefined && cli !== undefined ? firstStep - cli : undefined);
  const open: Record<string, number> = {};
  for (const [m, t] of marks) {
    const s = /^(.*) start$/.exec(m);
    const e = /^(.*) end$/.exec(m);
    if (s) open[s[1]] = t;
    else if (e && open[e[1]] !== undefined) add(`step: ${e[1]}`, t - open[e[1]]);
  }
  // The first local scan is synchronous and runs inside the handshake: no packet moves meanwhile.
  const [hs0, hs1, sc0, sc1] = ['ssh handshake start', 'ssh handshake end', 'local scan start', 'local scan end'].map(at);
  if (hs0 !== undefined && hs1 !== undefined && sc0 !== undefined && sc1 !== undefined) {
    add('step: ssh handshake less the (blocking) local scan inside it', hs1 - hs0 - Math.max(0, Math.min(hs1, sc1) - Math.max(hs0, sc0)));
  }
  const lastEnd = [...marks].reverse().find(([m]) => / end$/.test(m))?.[1];
  const exit = at('exit');
  add('after the last step -> exit (close, summary)', exit !== undefined && lastEnd !== undefined ? exit - lastEnd : undefined);
  add('exit -> process gone (as the harness sees it)', exit !== undefined ? wallMs - exit : undefined);
  add('wall (spawn -> exit, harness)', wallMs);
  return out;
}

async function runs(c: Ctx, first: boolean, missing: Set<string>): Promise<Array<Map<string, number>>> {
  const { b, l } = c;
  // KUBEDEV_BENCH_BREAKDOWN=real: the real-shaped tree instead of the 10,000-file one.
  const tree = process.env.KUBEDEV_BENCH_BREAKDOWN ?? '';
  if (tree !== '' && tree !== 'real') throw new Error(`KUBEDEV_BENCH_BREAKDOWN: unknown tree '${tree}'; set it to 'real' (the real-shaped tree) or leave it unset (the 10,000-file one)`);
  const src = tree === 'real' ? c.d.real.a : c.d.small.src;
  const preload = path.join(__dirname, 'phases.js');
  const res: Array<Map<string, number>> = [];
  const noopDest = first ? '' : b.seeded(src, `${c.tag}/breakdown/noop`);
  for (let i = 0; i < c.runs; i++) {
    const file = path.join(b.work, `phases-${first ? 'first' : 'noop'}-${i}.json`);
    const dest = first ? b.fresh(`${c.tag}/breakdown/first${i}`) : noopDest;
    const r = await b.kubedevOnce(l, src, dest, { ...process.env, KUBEDEV_BENCH_PHASES: file, KUBEDEV_AGENT: 'off' /* the in-process run's phases */ }, ['-r', preload]);
    const marks = JSON.parse(fs.readFileSync(file, 'utf8')) as Marks;
    for (const [m] of marks) if (m.startsWith('(not found')) missing.add(m);
    res.push(phases(marks, r.ms));
  }
  return res;
}

/** The breakdown as a markdown table (medians over c.runs runs each). */
export async function breakdown(c: Ctx): Promise<string> {
  const bare: number[] = [];
  const version: number[] = [];
  const hs: number[] = [];
  const sshTrue: number[] = [];
  const { b, l } = c;
  for (let i = 0; i < c.runs; i++) {
    bare.push((await timed(process.execPath, ['-e', '0'])).ms);
    version.push((await timed(process.execPath, [KUBEDEV_BIN, '--version'])).ms);
    hs.push(await ssh2Handshake(b.sshd, l.port));
    sshTrue.push((await timed('sh', ['-c', `${b.ssh(l)} ${b.at} true`])).ms);
  }
  const missing = new Set<string>();
  const first = await runs(c, true, missing);
  const noop = await runs(c, false, missing);
  const keys = [...new Set([...first, ...noop].flatMap((m) => [...m.keys()]))];
  keys.sort((a, z) => (a.startsWith('wall') ? 1 : z.startsWith('wall') ? -1 : 0));
  const med = (ms: Array<Map<string, number>>, k: string): string => {
    const xs = ms.map((m) => m.get(k)).filter((x): x is number => x !== undefined);
    return xs.length ? `${median(xs).toFixed(0)} ms` : '';
  };
  const lines = [
    `Where the kubedev process's time goes, ${c.l.delayMs} ms link (medians of ${c.runs}; the local scan runs while the handshake is in flight, so the steps overlap and do not add up to the wall)`,
    '',
    '| phase | first mirror | no-op re-attach |',
    '|---|---|---|',
    ...keys.map((k) => `| ${k} | ${med(first, k)} | ${med(noop, k)} |`),
    `| for scale: \`node -e 0\` | ${median(bare).toFixed(0)} ms | |`,
    `| for scale: \`kubedev --version\` (node + the CLI's modules) | ${median(version).toFixed(0)} ms | |`,
    `| for scale: ssh2 handshake alone, in the (warm) harness process | ${median(hs).toFixed(0)} ms | |`,
    `| for scale: \`ssh ... true\` (OpenSSH, whole process, same algorithms) | ${median(sshTrue).toFixed(0)} ms | |`,
  ];
  if (missing.size > 0) lines.push('', `Engine functions the breakdown could not find (renamed or moved? see bench/phases.ts): ${[...missing].join(', ')}`);
  return lines.join('\n');
}
