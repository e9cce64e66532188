/**
 * The local listing an agent keeps between one-shot runs (sync/engine/kept-scan.ts), with real inotify
 * events and a real sshd: a run takes it only while nothing under the folder changed since; every kind
 * of change, a replaced root, a stale or slept-through listing, hard links, a failed run make the next
 * run walk the folder again. The remote side is listed by every run: a container's edit is put back.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KeptScans, setKeptScans } from '../sync/engine/kept-scan';
import { SyncOptions } from '../sync/engine/session';
import { Arena, useArena } from './support/hostile';
import { remote } from './support/two-way';
import { differences, snapshot, writeTree } from './support/trees';

jest.setTimeout(30_000);
const { sshd, arena } = useArena();
let kept: KeptScans;

beforeEach(() => {
  kept = new KeptScans();
  setKeptScans(kept);
});
afterEach(async () => {
  setKeptScans(undefined);
  await kept.closeAll();
});

/** One `--once` run as the agent serves it: what it sent and deleted, and whether it walked the folder. */
async function once(a: Arena, extra: Partial<SyncOptions> = {}): Promise<{ files: number; deleted: number; walked: boolean }> {
  const before = totals();
  const s = a.session({ watch: false, ...extra });
  try {
    const r = await s.start();
    return { files: r.files, deleted: r.deleted, walked: totals().walks > before.walks };
  } finally {
    await s.close();
  }
}

function totals(): { walks: number; hits: number } {
  return { ...kept.counts };
}

test('an unchanged folder is not walked again; a container edit is still put back, ignored churn keeps the listing', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', 'src/b.ts': 'b', '.kubedevignore': 'dist/\n', 'dist/out.js': 'built' });
  expect(await once(a)).toMatchObject({ walked: true });
  expect(await once(a)).toEqual({ files: 0, deleted: 0, walked: false });
  remote(sshd(), a, 'printf "the container wrote this" > src/b.ts && rm a.txt');
  expect(await once(a)).toEqual({ files: 2, deleted: 0, walked: false });
  expect(a.differences((rel) => rel.startsWith('dist'))).toEqual([]);
  fs.writeFileSync(path.join(a.local, 'dist/out.js'), 'built again'); // ignored: no reason to walk
  fs.mkdirSync(path.join(a.local, 'dist/more'));
  expect(await once(a)).toEqual({ files: 0, deleted: 0, walked: false });
});

test('every kind of local change since the last run is found, each made just before the run starts', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', 'src/b.ts': 'b', 'src/deep/c.ts': 'c', 'old/x.txt': 'x', 'run.sh': 'echo' });
  await once(a);
  const changes: Array<[string, () => void]> = [
    ['an edit of the same size', () => fs.writeFileSync(path.join(a.local, 'a.txt'), 'two')],
    ['a file in new nested folders', () => writeTree(a.local, { 'new/one/two/n.txt': 'n' })],
    ['a file in a deep folder', () => fs.writeFileSync(path.join(a.local, 'src/deep/d.ts'), 'd')],
    ['a folder deleted', () => fs.rmSync(path.join(a.local, 'old'), { recursive: true })],
    ['a mode change', () => fs.chmodSync(path.join(a.local, 'run.sh'), 0o755)],
    ['a folder renamed', () => fs.renameSync(path.join(a.local, 'src'), path.join(a.local, 'lib'))],
    ['a symlink', () => fs.symlinkSync('a.txt', path.join(a.local, 'link'))],
    ['a file inside the renamed folder', () => fs.writeFileSync(path.join(a.local, 'lib/deep/e.ts'), 'e')],
  ];
  for (const [what, change] of changes) {
    change();
    const r = await once(a);
    expect([what, r.walked]).toEqual([what, true]);
    expect([what, a.differences()]).toEqual([what, []]);
    expect([what, (await once(a)).walked]).toEqual([what, false]);
  }
});

test('an ignore file edited: the newly unignored files are sent', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', '.kubedevignore': 'gen/\n', 'gen/g.ts': 'generated' });
  await once(a);
  expect(fs.existsSync(path.join(a.remote, 'gen'))).toBe(false);
  fs.writeFileSync(path.join(a.local, '.kubedevignore'), '# nothing ignored\n');
  expect(await once(a)).toMatchObject({ walked: true });
  expect(a.differences()).toEqual([]);
});

test('the local root replaced by another folder at the same path (its parent renamed: no event reaches the old watches) is walked', async () => {
  const a = arena();
  const root = path.join(a.local, 'p', 'root');
  writeTree(root, { 'a.txt': 'one', 'sub/b.txt': 'b' });
  await once(a, { localRoot: root });
  expect((await once(a, { localRoot: root })).walked).toBe(false);
  fs.renameSync(path.join(a.local, 'p'), path.join(a.local, 'p-old'));
  writeTree(root, { 'a.txt': 'the other checkout', 'c.txt': 'c' });
  expect((await once(a, { localRoot: root })).walked).toBe(true);
  expect(differences(snapshot(root), snapshot(a.remote))).toEqual([]);
});

test('a listing older than its trust, one slept through, one with hard links, or after a failed run is not taken', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one' });
  await kept.closeAll();
  let clock = Date.now();
  kept = new KeptScans({ maxAgeMs: 60_000, now: () => clock });
  setKeptScans(kept);
  await once(a);
  expect((await once(a)).walked).toBe(false);
  clock += 5 * 60_000; // the wall clock jumped: the machine slept, its watcher may have missed events
  expect((await once(a)).walked).toBe(true);
  expect((await once(a)).walked).toBe(false);
  kept.forgetAll(); // as the agent does after a run that failed
  expect((await once(a)).walked).toBe(true);

  await kept.closeAll();
  kept = new KeptScans({ maxAgeMs: 0 });
  setKeptScans(kept);
  await once(a);
  expect((await once(a)).walked).toBe(true);

  await kept.closeAll();
  kept = new KeptScans();
  setKeptScans(kept);
  fs.linkSync(path.join(a.local, 'a.txt'), path.join(a.local, 'b.txt'));
  await once(a);
  expect((await once(a)).walked).toBe(true);
});

test('off Linux nothing is kept', () => {
  const k = new KeptScans({ platform: 'darwin' });
  expect(k.for(arena().local, { ignores: () => false, prunableNames: [], patterns: [] })).toBeUndefined();
});
