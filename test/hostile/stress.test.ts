/**
 * Randomized stress in watch mode: rounds of the everyday patterns that broke mirrors before (`rm -rf x
 * && mkdir -p x/...`, a branch switch, editor atomic saves, `npm install` into an ignored folder,
 * file <-> folder flips, renames, mode changes), with the trees compared after each round. The seed
 * is printed on failure; KUBEDEV_STRESS_SEED=<n> replays one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rng } from '../../bench/tree';
import { Arena, useArena } from '../support/hostile';
import { eventually, writeTree } from '../support/trees';

jest.setTimeout(120_000);

const ROUNDS = 14;
const h = useArena();
let a: Arena;
beforeEach(() => {
  a = h.arena();
});

type Pattern = (root: string, r: () => number, round: number) => string;

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const files = (root: string, rel: string): string[] => {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(path.join(root, d), { withFileTypes: true })) {
      const x = d === '' ? e.name : `${d}/${e.name}`;
      if (x.startsWith('node_modules')) continue;
      if (e.isDirectory()) walk(x);
      else if (e.isFile()) out.push(x);
    }
  };
  if (fs.existsSync(path.join(root, rel))) walk(rel);
  return out;
};

const PATTERNS: Record<string, Pattern> = {
  'rm -rf x && mkdir -p x/...': (root, r, round) => {
    const x = pick(r, ['build', 'src/gen', 'dist']);
    fs.rmSync(path.join(root, x), { recursive: true, force: true });
    writeTree(root, Object.fromEntries(Array.from({ length: 5 + Math.floor(r() * 30) }, (_, i) => [`${x}/sub${i % 3}/o${i}.js`, `round ${round} ${i}`])));
    return x;
  },
  'branch switch': (root, r, round) => {
    const all = files(root, 'src');
    for (const f of all) {
      const u = r();
      if (u < 0.3) fs.writeFileSync(path.join(root, f), `branch ${round} ${f}`);
      else if (u < 0.4) fs.rmSync(path.join(root, f));
    }
    writeTree(root, Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`src/feature${round}/f${i}.ts`, `new on branch ${round}`])));
    return `${all.length} files`;
  },
  'editor atomic save': (root, r, round) => {
    const all = files(root, 'src');
    const f = all.length > 0 ? pick(r, all) : 'src/new.ts';
    const tmp = path.join(root, path.dirname(f), `.${path.basename(f)}.swp`);
    fs.mkdirSync(path.dirname(tmp), { recursive: true });
    fs.writeFileSync(tmp, `saved atomically in round ${round}`);
    fs.renameSync(tmp, path.join(root, f));
    return f;
  },
  'npm install into an ignored folder': (root, _r, round) => {
    writeTree(root, Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`node_modules/pkg${i % 15}/lib/i${i}.js`, `module ${round}`])));
    fs.writeFileSync(path.join(root, 'package-lock.json'), `{"round": ${round}}`);
    return 'node_modules';
  },
  'file <-> folder flip': (root, _r, round) => {
    const p = path.join(root, 'flip');
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    fs.rmSync(p, { recursive: true, force: true });
    if (st?.isDirectory()) fs.writeFileSync(p, `file in round ${round}`);
    else writeTree(root, { [`flip/inside${round}.txt`]: 'folder now' });
    return st?.isDirectory() ? 'to file' : 'to folder';
  },
  'rename a folder in and out': (root, _r, round) => {
    const from = path.join(root, 'src');
    if (!fs.existsSync(from)) return 'nothing';
    const to = path.join(root, `moved-${round}`);
    fs.renameSync(from, to);
    fs.writeFileSync(path.join(to, 'touched.txt'), `${round}`);
    fs.renameSync(to, from);
    return 'src';
  },
  'mode changes': (root, r) => {
    const all = files(root, '');
    for (const f of all.slice(0, 10)) fs.chmodSync(path.join(root, f), r() < 0.5 ? 0o755 : 0o644);
    return `${Math.min(10, all.length)} files`;
  },
};

test('random rounds of everyday patterns converge after each round', async () => {
  const seed = Number(process.env.KUBEDEV_STRESS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const r = rng(seed);
  writeTree(a.local, { '.kubedevignore': 'node_modules/\n', 'src/a.ts': 'a', 'src/lib/b.ts': 'b', 'README.md': 'readme' });
  const s = a.session();
  const warnings: string[] = [];
  s.on('warning', (m) => warnings.push(m));
  await s.start();
  const names = Object.keys(PATTERNS);
  const log: string[] = [];
  const ignored = (rel: string): boolean => rel === 'node_modules' || rel.startsWith('node_modules/');
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const burst = 1 + Math.floor(r() * 3);
      for (let k = 0; k < burst; k++) {
        const name = pick(r, names);
        log.push(`round ${round}: ${name} (${PATTERNS[name](a.local, r, round)})`);
      }
      await eventually(() => a.differences(ignored), 10_000, `round ${round}`);
    }
  } catch (e) {
    throw new Error(`stress failed with KUBEDEV_STRESS_SEED=${seed}\n${log.join('\n')}\n${(e as Error).message}`);
  }
  expect(warnings).toEqual([]);
});
