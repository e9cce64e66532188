/**
 * planDiff over whole trees (plan.ts), on random pairs of trees with type changes at every depth,
 * mode and content changes, links and nested deletes, in random insertion order: applying the plan
 * to the remote tree gives the local one, each list is in path order (parents before children), and
 * deletes are top-most.
 */
import { Plan, planDiff } from '../sync/engine/plan';
import { Entry } from '../sync/engine/tree';

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

const FILE = (size: number, mode = 0o644): Entry => ({ type: 'file', size, mtimeMs: 1_700_000_000_000, mode });
const DIR = (mode = 0o755): Entry => ({ type: 'dir', size: 0, mtimeMs: 0, mode });
const LINK = (target: string): Entry => ({ type: 'symlink', size: 0, mtimeMs: 0, mode: 0o777, target });

/** A random tree: names from a small alphabet (so both sides meet), any entry a file, folder or link. */
function randomTree(r: () => number, depth = 0, base = '', out = new Map<string, Entry>()): Map<string, Entry> {
  for (const name of ['a', 'B', 'b', 'é', 'c.txt']) {
    if (r() < 0.35) continue;
    const rel = base === '' ? name : `${base}/${name}`;
    const k = r();
    if (k < 0.45 && depth < 3) {
      out.set(rel, DIR(r() < 0.8 ? 0o755 : 0o700));
      randomTree(r, depth + 1, rel, out);
    } else if (k < 0.85) out.set(rel, FILE(Math.floor(r() * 3), r() < 0.8 ? 0o644 : 0o600));
    else out.set(rel, LINK(r() < 0.5 ? 'x' : 'y'));
  }
  return out;
}

function shuffled(m: Map<string, Entry>, r: () => number): Map<string, Entry> {
  const keys = [...m.keys()];
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [keys[i], keys[j]] = [keys[j], keys[i]];
  }
  return new Map(keys.map((k) => [k, m.get(k) as Entry]));
}

/** The remote after the plan: deletes (with what is below), then folders, files, links, modes. */
function apply(remote: Map<string, Entry>, plan: Plan): Map<string, Entry> {
  const out = new Map(remote);
  for (const d of plan.deletes) for (const k of [...out.keys()]) if (k === d || k.startsWith(`${d}/`)) out.delete(k);
  for (const i of [...plan.dirs, ...plan.files, ...plan.links, ...plan.chmods]) out.set(i.rel, i.entry);
  return out;
}

const sorted = (xs: readonly string[]): boolean => xs.every((x, i) => i === 0 || xs[i - 1] < x);

test('whole-tree plans make the remote equal, in path order, with top-most deletes (1,000 random pairs)', () => {
  const r = rng(13);
  let typeChanges = 0;
  for (let n = 0; n < 1000; n++) {
    const local = shuffled(randomTree(r), r);
    const remote = shuffled(randomTree(r), r);
    const plan = planDiff(local, remote);
    expect(Object.fromEntries(apply(remote, plan))).toEqual(Object.fromEntries(local));
    for (const list of [plan.dirs, plan.files, plan.links, plan.chmods]) expect(sorted(list.map((i) => i.rel))).toBe(true);
    expect(sorted(plan.deletes.filter((d) => !local.has(d)))).toBe(true);
    for (const d of plan.deletes) expect(plan.deletes.some((o) => d.startsWith(`${o}/`))).toBe(false);
    typeChanges += plan.deletes.filter((d) => local.has(d)).length;
  }
  expect(typeChanges).toBeGreaterThan(50); // the pairs really hold type changes
  // Equal trees: an empty plan.
  const t = randomTree(rng(5));
  expect(planDiff(shuffled(t, r), shuffled(t, r))).toEqual({ deletes: [], dirs: [], files: [], links: [], chmods: [], verify: [] });
});

describe('change times (between two local stats: a watching session against its index)', () => {
  const at = (ctimeMs: number, mode = 0o644): Entry => ({ type: 'file', size: 7, mtimeMs: 1_700_000_000_000, mode, exact: true, ctimeMs });
  const plan = (l: Entry, r: Entry, racySince?: number): Plan => planDiff(new Map([['f', l]]), new Map([['f', r]]), ['f'], racySince);
  const lists = (p: Plan): string[][] => [p.files, p.chmods, p.verify ?? []].map((items) => items.map((i) => i.rel));

  test('another change time, same size, mtime and mode: compared by content (new bytes under the old mtime, or a chown)', () => {
    expect(lists(plan(at(2), at(1)))).toEqual([[], [], ['f']]);
  });
  test('another change time and another mode: the mode, and the bytes compared (cp -p from a file of another mode)', () => {
    expect(lists(plan(at(2, 0o755), at(1)))).toEqual([[], ['f'], ['f']]);
  });
  test('the same change time, or one side without it (an older index): nothing', () => {
    expect(lists(plan(at(1), at(1)))).toEqual([[], [], []]);
    const { ctimeMs: _, ...without } = at(1);
    expect(lists(plan(at(2), without))).toEqual([[], [], []]);
  });
  test('against a remote listing: a change time since the last pass began reading is compared by content; an older one is not', () => {
    const remote: Entry = { type: 'file', size: 7, mtimeMs: 1_700_000_000_000, mode: 0o644 };
    const since = 1_700_000_001_000; // after the file's mtime
    expect(lists(plan(at(since + 1_000), remote, since))).toEqual([[], [], ['f']]);
    expect(lists(plan(at(since - 500), remote, since))).toEqual([[], [], []]);
  });
});
