/**
 * The first mirror into an empty remote folder, begun while the local scan walks
 * (sync/engine/early-archive.ts), against the sidecar's sshd run by a non-root user, through whole
 * `--once` sessions: the archive is begun before the plan and taken by the pass; a folder holding
 * anything, or a plan with items it was not fed, sends as always; a file changed after it was packed
 * never takes its real name with the old bytes; a pass that fails leaves no staging folder and no real
 * name written; read-only folders, hard links and symlinks arrive as they are; the scan thread tells
 * every name, parents first.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as planModule from '../../sync/engine/plan';
import { EarlyArchive, TakenArchive } from '../../sync/engine/early-archive';
import { buildIgnore } from '../../sync/engine/ignore';
import { scanInThread } from '../../sync/engine/scan-thread';
import { Arena, passWarnings, useArena } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { remote } from '../support/two-way';
import { writeTree } from '../support/trees';

jest.setTimeout(60_000);

const h = useArena();
let sshd: Sshd;
let a: Arena;
beforeEach(() => {
  sshd = h.sshd();
  a = h.arena();
});
afterEach(() => jest.restoreAllMocks());

/** `files` small files in 10 folders of 10 sub-folders, under `top`. */
function many(files: number, top = 'src'): Record<string, string> {
  const t: Record<string, string> = {};
  for (let i = 0; i < files; i++) t[`${top}/d${i % 10}/e${Math.floor(i / 10) % 10}/f${i}.txt`] = `file ${i}\n`.repeat(1 + (i % 7));
  return t;
}

/** What each EarlyArchive.take handed on (an archive, or undefined). */
function takes(): () => Promise<Array<TakenArchive | undefined>> {
  const take = jest.spyOn(EarlyArchive.prototype, 'take');
  return () => Promise.all(take.mock.results.map((r) => r.value as Promise<TakenArchive | undefined>));
}

/** Entries of the remote root whose names are the runner's temporaries. */
function temporaries(): string[] {
  return fs.existsSync(a.remote) ? fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-')) : [];
}

/** Runs `then` with each plan as planDiff makes it (the walk is over, the archive may be under way). */
function atPlan(then: (plan: planModule.Plan) => void): void {
  const real = planModule.planDiff;
  jest.spyOn(planModule, 'planDiff').mockImplementation((...args) => {
    const plan = real(...args);
    then(plan);
    return plan;
  });
}

test('a first mirror of 1,200 files into an empty folder goes by the archive begun during the scan', async () => {
  writeTree(a.local, { ...many(1200), 'top.txt': 'top' });
  const taken = takes();
  let begunAtPlan: string | undefined;
  const started = jest.spyOn(EarlyArchive.prototype, 'listed');
  atPlan(() => {
    begunAtPlan = (started.mock.contexts[0] as EarlyArchive).stage;
  });
  expect(await passWarnings(a)).toEqual([]);
  const t = await taken();
  expect(t).toHaveLength(1);
  expect(t[0]?.stage).toMatch(/^\.kubedev-stage-[0-9a-f]{12}$/);
  expect(begunAtPlan).toBe(t[0]?.stage); // the archive was under way before the plan was made
  expect(a.differences()).toEqual([]);
  expect(temporaries()).toEqual([]);
});

test('a remote folder holding anything (one file): nothing begun early, the pass sends as always', async () => {
  writeTree(a.local, many(600));
  remote(sshd, a, 'echo theirs > other.txt');
  const taken = takes();
  expect(await passWarnings(a)).toEqual([]);
  expect(await taken()).toEqual([undefined]);
  expect(a.differences()).toEqual([]); // other.txt deleted, the rest sent
  expect(temporaries()).toEqual([]);
});

test('a plan with an item the archive was not fed: the archive is ended, its staging folder removed, the plan sent as always', async () => {
  writeTree(a.local, many(600));
  const taken = takes();
  atPlan((plan) => {
    // Made after the walk: the plan holds it, the archive never heard of it.
    fs.writeFileSync(path.join(a.local, 'late.txt'), 'late');
    const st = fs.lstatSync(path.join(a.local, 'late.txt'));
    plan.files.push({ rel: 'late.txt', entry: { type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, exact: true } });
  });
  expect(await passWarnings(a)).toEqual([]);
  expect(await taken()).toEqual([undefined]);
  expect(fs.readFileSync(path.join(a.remote, 'late.txt'), 'utf8')).toBe('late');
  expect(a.differences()).toEqual([]);
  expect(temporaries()).toEqual([]);
});

test('a file rewritten after it was packed never takes its real name with the old bytes: the run sends it again', async () => {
  writeTree(a.local, many(600));
  const rel = 'src/d3/e0/f3.txt';
  const taken = takes();
  let once = true;
  atPlan(() => {
    // The walk is over and the archive has been under way since it passed this file (the first plan only).
    if (once) fs.writeFileSync(path.join(a.local, rel), 'rewritten after it was packed, longer than before\n');
    once = false;
  });
  expect(await passWarnings(a)).toEqual([]);
  expect((await taken())[0]).toBeDefined();
  expect(fs.readFileSync(path.join(a.remote, rel), 'utf8')).toBe('rewritten after it was packed, longer than before\n');
  expect(a.differences()).toEqual([]);
  expect(temporaries()).toEqual([]);
});

test('a pass that fails after the archive began leaves no staging folder and writes no real name', async () => {
  writeTree(a.local, many(600));
  const listed = jest.spyOn(EarlyArchive.prototype, 'listed');
  let stage: string | undefined;
  jest.spyOn(planModule, 'planDiff').mockImplementation(() => {
    stage = (listed.mock.contexts[0] as EarlyArchive).stage;
    throw new Error('planning failed (test)');
  });
  await expect(passWarnings(a)).rejects.toThrow('planning failed (test)');
  expect(stage).toMatch(/^\.kubedev-stage-/); // it had begun
  expect(fs.readdirSync(a.remote)).toEqual([]);
});

test('read-only folders (0555), hard links and symlinks arrive as they are', async () => {
  writeTree(a.local, { ...many(500), 'ro/a.txt': 'a', 'ro/sub/b.txt': 'b', 'x/target.txt': 'target' });
  fs.linkSync(path.join(a.local, 'x/target.txt'), path.join(a.local, 'x/second-name.txt'));
  fs.symlinkSync('../x/target.txt', path.join(a.local, 'ro/link'));
  fs.chmodSync(path.join(a.local, 'ro/sub'), 0o555);
  fs.chmodSync(path.join(a.local, 'ro'), 0o555);
  const taken = takes();
  expect(await passWarnings(a)).toEqual([]);
  expect((await taken())[0]).toBeDefined();
  expect(a.differences()).toEqual([]);
  expect(fs.statSync(path.join(a.remote, 'ro')).mode & 0o777).toBe(0o555);
  expect(fs.statSync(path.join(a.remote, 'ro/sub')).mode & 0o777).toBe(0o555);
  expect(fs.readlinkSync(path.join(a.remote, 'ro/link'))).toBe('../x/target.txt');
  expect(fs.readFileSync(path.join(a.remote, 'x/second-name.txt'), 'utf8')).toBe('target');
  expect(temporaries()).toEqual([]);
});

test('the scan thread tells every name the walk takes, each folder before its contents', async () => {
  writeTree(a.local, { ...many(1500), 'z.txt': 'z' });
  const told: string[] = [];
  const r = await scanInThread(a.local, buildIgnore(a.local, []), (rel) => told.push(rel));
  expect(r.threaded).toBe(true);
  expect([...told].sort()).toEqual([...r.tree.keys()].sort());
  expect(new Set(told).size).toBe(told.length);
  const at = new Map(told.map((rel, i) => [rel, i]));
  for (const [rel, i] of at) {
    const parent = path.posix.dirname(rel);
    if (parent !== '.') expect(at.get(parent)).toBeLessThan(i);
  }
});
