/**
 * Re-attach rows: `kubedev sync --once` as a fresh process against `rsync -a` (and `tar | ssh` where it
 * is the physical limit), alternated, each timed run into its own destination: a fresh folder for a
 * first mirror, a `cp -a` copy of the old state for a re-attach (made untimed).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Data, LARGE_BYTES } from './data';
import { Bench, Link, Run, sameFiles, sameTrees } from './harness';
import { alternate, mb, median, ratioRow, Row } from './report';

export interface Ctx {
  readonly b: Bench;
  readonly l: Link;
  readonly runs: number;
  readonly d: Data;
  /** Unique per delay: destination folders are never reused across delays. */
  readonly tag: string;
}

/** The last `synced` event of a `--once` run (its totals). */
export function summary(r: Run): { files: number; deleted: number; bytes: number } {
  const last = [...r.events].reverse().find((e) => e.event === 'synced');
  if (!last) throw new Error(`kubedev printed no 'synced' event: ${r.stderr.slice(-400)}`);
  return { files: Number(last.files), deleted: Number(last.deleted), bytes: Number(last.bytes) };
}

/** Times `f`, counting the link's bytes on the wire around it into `wire` (when the link counts). */
async function wired(l: Link, wire: number[], f: () => Promise<Run>): Promise<Run> {
  await l.bytes();
  const r = await f();
  const w = await l.bytes();
  if (w) wire.push(w.up + w.down);
  return r;
}

function wireNote(kd: number[], rs: number[]): string | undefined {
  return kd.length > 0 ? `on the wire: kubedev ${mb(median(kd))}, rsync ${mb(median(rs))}` : undefined;
}

function withNote(r: Row, note: string | undefined): Row {
  return note ? { ...r, note } : r;
}

/**
 * A change in the local folder (a file made and removed, untimed) before a kubedev run of a row whose
 * local folder did change for the user (a first mirror, files changed, a branch switch): the agent's
 * watcher reports it, so the run walks the folder as it would then, instead of taking the listing the
 * agent kept from the row's previous run (sync/engine/kept-scan.ts), which only the bench's reuse of
 * one unchanged folder would allow.
 */
function poke(local: string): void {
  const f = path.join(local, 'bench-poke.tmp');
  fs.writeFileSync(f, '');
  fs.rmSync(f);
}

/** Removes a destination once measured (untimed); returns `ms`. */
function dropped(dest: string, ms: number): number {
  fs.rmSync(dest, { recursive: true, force: true });
  return ms;
}

/** A first mirror of `src` into fresh folders. */
async function firstMirror(c: Ctx, what: string, src: string, files: number, target: number): Promise<Row> {
  const { b, l } = c;
  const w = { kd: [] as number[], rs: [] as number[] };
  // Each destination is removed after its run (untimed): tmpfs is memory, shared with others.
  const [kd, rs, tar] = await alternate(c.runs, [
    async (i) => {
      const dest = b.fresh(`${c.tag}/${what}/kd${i}`);
      poke(src);
      const r = await wired(l, w.kd, () => b.kubedevOnce(l, src, dest));
      if (summary(r).files < files) throw new Error(`kubedev sent ${summary(r).files} entries, expected at least ${files}`);
      sameTrees(src, dest);
      return dropped(dest, r.ms);
    },
    async (i) => {
      const dest = b.fresh(`${c.tag}/${what}/rs${i}`);
      return dropped(dest, (await wired(l, w.rs, () => b.rsync(l, src, dest))).ms);
    },
    async (i) => {
      const dest = b.fresh(`${c.tag}/${what}/tar${i}`);
      return dropped(dest, (await b.tar(l, src, dest)).ms);
    },
  ]);
  return withNote(ratioRow(what, kd, rs, tar, target), wireNote(w.kd, w.rs));
}

/** Re-attach: the remote holds `before` (a copy made untimed), the local folder is `after`. */
async function reattach(c: Ctx, what: string, before: string, after: string, expect: number, opts: { rsync?: string[]; tarList?: string[]; env?: NodeJS.ProcessEnv; kept?: boolean } = {}): Promise<Row> {
  const { b, l } = c;
  const w = { kd: [] as number[], rs: [] as number[] };
  const noop = before === after;
  const kdNoop = noop ? b.seeded(before, `${c.tag}/${what}/kd`) : '';
  const rsNoop = noop ? b.seeded(before, `${c.tag}/${what}/rs`) : '';
  let list: string | undefined;
  if (opts.tarList) {
    list = path.join(c.b.work, `${c.tag}-${what.replace(/\W+/g, '-')}.list`);
    fs.writeFileSync(list, opts.tarList.join('\n') + '\n');
  }
  const tools: Array<(i: number) => Promise<number>> = [
    async (i) => {
      const dest = noop ? kdNoop : b.seeded(before, `${c.tag}/${what}/kd${i}`);
      if (!noop) poke(after);
      const r = await wired(l, w.kd, () => b.kubedevOnce(l, after, dest, opts.env));
      const s = summary(r);
      // New or removed folders count too: at least the paths touched, and exactly 0 for a no-op.
      if (noop ? s.files + s.deleted !== 0 : s.files + s.deleted < expect) throw new Error(`kubedev sent ${s.files} and deleted ${s.deleted}, expected ${noop ? 'nothing' : `at least ${expect} in all`}`);
      if (i === 0) sameTrees(after, dest);
      return noop ? r.ms : dropped(dest, r.ms);
    },
    async (i) => {
      const dest = noop ? rsNoop : b.seeded(before, `${c.tag}/${what}/rs${i}`);
      const ms = (await wired(l, w.rs, () => (opts.kept ? b.rsyncKept(l, after, dest) : b.rsync(l, after, dest, opts.rsync)))).ms;
      return noop ? ms : dropped(dest, ms);
    },
  ];
  if (list) {
    const l2 = list;
    tools.push(async (i) => {
      const dest = b.seeded(before, `${c.tag}/${what}/tar${i}`);
      return dropped(dest, (await b.tar(l, after, dest, l2)).ms);
    });
  }
  const [kd, rs, tar] = await alternate(c.runs, tools);
  return withNote(ratioRow(what, kd, rs, tar, 1.0), wireNote(w.kd, w.rs));
}

export const ATTACH_ROWS: Record<string, (c: Ctx) => Promise<Row[]>> = {
  first: async (c) => {
    const { src, tree } = c.d.small;
    return [await firstMirror(c, `first mirror (${tree.files} files, ${(tree.bytes / 1e6).toFixed(1)} MB)`, src, tree.files, 0.8)];
  },
  noop: async (c) => [await reattach(c, 'no-op re-attach', c.d.small.src, c.d.small.src, 0)],
  // Against rsync over a kept OpenSSH connection (ControlPersist): both sides keep theirs.
  'noop-kept': async (c) => [await reattach(c, 'no-op re-attach vs rsync over a kept ssh connection (ControlPersist)', c.d.small.src, c.d.small.src, 0, { kept: true })],
  // The same without the agent (KUBEDEV_AGENT=off): a run that finds none, e.g. the first of the day.
  'noop-cold': async (c) => [await reattach(c, 'no-op re-attach, no agent (KUBEDEV_AGENT=off)', c.d.small.src, c.d.small.src, 0, { env: { ...process.env, KUBEDEV_AGENT: 'off' } })],
  change: async (c) => {
    const ch = c.d.smallChanged;
    return [await reattach(c, `${ch.changed.length.toLocaleString("en-US")} files changed, re-attach`, c.d.small.src, ch.src, ch.changed.length, { tarList: ch.changed })];
  },
  'real-first': async (c) => {
    const r = c.d.real;
    return [await firstMirror(c, `real-shaped tree: first mirror (${r.specA.files.size} files, ${(r.bytes / 1e6).toFixed(0)} MB)`, r.a, r.specA.files.size, 0.8)];
  },
  'real-noop': async (c) => [await reattach(c, 'real-shaped tree: no-op re-attach', c.d.real.a, c.d.real.a, 0)],
  'real-switch': async (c) => {
    const r = c.d.real;
    return [await reattach(c, `real-shaped tree: branch switch (${r.touched} paths), re-attach (rsync -a --delete)`, r.a, r.b, r.touched, { rsync: ['--delete'] })];
  },
  large: async (c) => {
    const { b } = c;
    // Bytes on the wire need the proxy's counter: at 0 ms the large row goes through a 0 ms proxy.
    const l = c.l.delayMs === 0 ? await b.link(0, true) : c.l;
    const lg = c.d.large;
    const w = { kd: [] as number[], rs: [] as number[] };
    const one = async (tool: 'kd' | 'rs', i: number): Promise<number> => {
      const dest = b.seeded(lg.old, `${c.tag}/large/${tool}${i}`);
      try {
        const r = await wired(l, w[tool], () => (tool === 'kd' ? b.kubedevOnce(l, lg.new, dest) : b.rsync(l, lg.new, dest)));
        if (!sameFiles(lg.new, dest, ['big.bin'])) throw new Error(`${tool === 'kd' ? 'kubedev' : 'rsync'}: the remote big.bin differs after the run`);
        return r.ms;
      } finally {
        fs.rmSync(dest, { recursive: true, force: true }); // 200 MiB each, on tmpfs (untimed)
      }
    };
    const [kd, rs] = await alternate(c.runs, [(i) => one('kd', i), (i) => one('rs', i)]);
    return largeRows(c, '', kd, rs, w);
  },
  // The same file changed twice, the first change sent by kubedev too (untimed): the second finds the
  // remote file as kubedev left it, whose blocks it remembers (sync/engine/block-cache.ts).
  'large-again': async (c) => {
    const { b } = c;
    const l = c.l.delayMs === 0 ? await b.link(0, true) : c.l;
    const lg = c.d.large;
    const { next } = c.d.largeAgain;
    const w = { kd: [] as number[], rs: [] as number[] };
    const one = async (tool: 'kd' | 'rs', i: number): Promise<number> => {
      const dest = b.seeded(tool === 'kd' ? lg.old : lg.new, `${c.tag}/large-again/${tool}${i}`);
      const local = path.join(b.work, `${c.tag}-large-again-local${i}`);
      try {
        if (tool === 'kd') {
          fs.mkdirSync(local);
          copyKeepingTimes(path.join(lg.new, 'big.bin'), path.join(local, 'big.bin'));
          await b.kubedevOnce(l, local, dest);
          if (!sameFiles(lg.new, dest, ['big.bin'])) throw new Error('kubedev: the remote big.bin differs after the first change');
          copyKeepingTimes(path.join(next, 'big.bin'), path.join(local, 'big.bin'));
        }
        const r = await wired(l, w[tool], () => (tool === 'kd' ? b.kubedevOnce(l, local, dest) : b.rsync(l, next, dest)));
        if (!sameFiles(next, dest, ['big.bin'])) throw new Error(`${tool === 'kd' ? 'kubedev' : 'rsync'}: the remote big.bin differs after the second change`);
        return r.ms;
      } finally {
        for (const d of [dest, local]) fs.rmSync(d, { recursive: true, force: true }); // 200 MiB each, on tmpfs (untimed)
      }
    };
    const [kd, rs] = await alternate(c.runs, [(i) => one('kd', i), (i) => one('rs', i)]);
    return largeRows(c, ', changed again after kubedev sent the first change', kd, rs, w);
  },
};

function copyKeepingTimes(from: string, to: string): void {
  fs.copyFileSync(from, to);
  const st = fs.statSync(from);
  fs.utimesSync(to, st.atime, st.mtime);
}

/** The large rows' time and bytes-on-the-wire lines. */
function largeRows(c: Ctx, what: string, kd: number[], rs: number[], w: { kd: number[]; rs: number[] }): Row[] {
  const via = c.l.delayMs === 0 ? ' (both through a 0 ms proxy, to count bytes)' : '';
  const share = median(w.kd) / LARGE_BYTES;
  return [
    ratioRow(`200 MiB file, 1 MiB changed in 4 places${what}, re-attach: time${via}`, kd, rs, undefined, 1.2),
    { what: `200 MiB file, 1 MiB changed${what}: bytes on the wire (both ways)`, kubedev: `${mb(median(w.kd))} (${(share * 100).toFixed(1)} % of the file)`, rsync: mb(median(w.rs)), target: '≤ 5 % of the file', met: share <= 0.05 },
  ];
}
