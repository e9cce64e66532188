/**
 * The watcher contract (issue 13): every backend available here, and a fake that misbehaves as
 * FSEvents, ReadDirectoryChangesW and inotify do on bad days, drive a real session against a real sshd
 * through the same churn (new nested folders, edits of the same size, chmod, folder renames, deletes,
 * a file becoming a folder, links, a burst of 300 files in new folders). Events are hints: in every case
 * the remote must end byte-equal to the local tree, and the sentinel beside it untouched.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyncOptions, SyncSession } from '../sync/engine/session';
import { TreeWatcher, WatchChoice } from '../sync/engine/watch';
import { MISBEHAVIOURS, Misbehaviour, MisbehavingWatcher } from '../sync/engine/watch/fake';
import { useArena } from './support/hostile';
import { eventually, writeTree } from './support/trees';
import { twoWay } from './support/two-way';

jest.setTimeout(60_000);

const h = useArena();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function seed(root: string): void {
  const files: Record<string, string | { content?: string; mode?: number; link?: string }> = {
    'keep.txt': 'unchanged',
    'same-size.txt': 'aaaa',
    'exec.sh': { content: '#!/bin/sh\n', mode: 0o644 },
    'flip': 'a file that becomes a folder',
    'old/x.txt': 'x',
    'old/deep/y.txt': 'y',
  };
  for (let i = 0; i < 20; i++) files[`src/f${i}.txt`] = `source ${i}`;
  writeTree(root, files);
}

/** The same sequence of changes for every backend, spread over several batches. */
async function churn(root: string): Promise<void> {
  const p = (rel: string): string => path.join(root, rel);
  // Files made in folders created a moment before (parcel-bundler/watcher#97 on Linux).
  fs.mkdirSync(p('new/a/b/c/d'), { recursive: true });
  fs.writeFileSync(p('new/a/b/c/deep.txt'), 'deep');
  fs.writeFileSync(p('new/a/b/c/d/deeper.txt'), 'deeper');
  fs.writeFileSync(p('same-size.txt'), 'bbbb');
  fs.chmodSync(p('exec.sh'), 0o755);
  await sleep(30);
  fs.renameSync(p('src'), p('moved'));
  fs.rmSync(p('old'), { recursive: true });
  fs.rmSync(p('flip'));
  writeTree(root, { 'flip/inside.txt': 'now a folder' });
  fs.symlinkSync('moved/f0.txt', p('link'));
  // '\\' is a character of Linux names, not a separator (the recursive backend once split on it).
  writeTree(root, { 'back\\slash.txt': 'b', 'q\\r/z.txt': 'z' });
  await sleep(30);
  for (let i = 0; i < 300; i++) {
    const dir = p(`burst/d${i % 10}/e${i % 3}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `f${i}.txt`), `burst ${i}`);
  }
  await sleep(30);
  fs.writeFileSync(p('moved/f3.txt'), 'edited after the move');
  fs.rmSync(p('burst/d9'), { recursive: true });
  fs.renameSync(p('burst/d8'), p('burst/d8-renamed'));
  fs.writeFileSync(p('new/a/b/c/d/deeper.txt'), 'deeper, edited');
}

async function converge(extra: Partial<SyncOptions>, before?: (s: SyncSession) => void): Promise<SyncSession> {
  const a = h.arena();
  seed(a.local);
  const s = a.session(extra);
  const warnings: string[] = [];
  s.on('warning', (m) => warnings.push(m));
  await s.start();
  before?.(s);
  await churn(a.local);
  await eventually(() => a.differences(), 20_000, `${extra.watchBackend ?? 'fake'} backend`);
  // The backslash names are told once each (Windows cannot hold them), and nothing else is.
  const windows = warnings.filter((w) => /which Windows forbids/.test(w)).map((w) => w.split("'")[1]);
  expect(windows.sort()).toEqual(['back\\slash.txt', 'q\\r']);
  expect(warnings.filter((w) => !/cannot start|using|which Windows forbids/.test(w))).toEqual([]);
  return s;
}

describe('every backend available here converges', () => {
  const backends: WatchChoice[] = ['per-folder', 'parcel', 'recursive', 'poll'];
  test.each(backends)('%s', async (backend) => {
    const s = await converge({ watchBackend: backend, pollMs: 300 });
    expect(s.watcher?.name).toBe(backend);
  });
});

describe('two-way mode on the backends: the same churn reaches the remote', () => {
  const sessions: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) await s.close();
  });
  const cases: [string, Partial<SyncOptions>][] = [
    ['per-folder', { watchBackend: 'per-folder' }],
    ['poll', { watchBackend: 'poll', pollMs: 300 }],
    ['fake-overflow(per-folder)', { rescanMs: 600_000, watchTest: { factory: (root) => new MisbehavingWatcher(new TreeWatcher(root), 'overflow') } }],
  ];
  test.each(cases)('%s', async (name, extra) => {
    const a = h.arena();
    seed(a.local);
    const s = twoWay(h.sshd(), a, extra);
    sessions.push(s);
    const warnings: string[] = [];
    s.on('warning', (m) => warnings.push(m));
    await s.start();
    expect(s.watcher?.name).toBe(name);
    await churn(a.local);
    await eventually(() => a.differences(), 20_000, `two-way ${name}`);
    expect(warnings).toEqual([]);
  });
});

describe('a backend that misbehaves on purpose still converges', () => {
  const rescans: { scope: string; reason: string; changed: number }[] = [];
  beforeEach(() => {
    rescans.length = 0;
  });
  const fake = (mode: Misbehaviour, keep?: (w: MisbehavingWatcher) => void): Partial<SyncOptions> => ({
    watchTest: {
      factory: (root) => {
        const w = new MisbehavingWatcher(new TreeWatcher(root), mode);
        keep?.(w);
        return w;
      },
    },
  });
  const record = (s: SyncSession): void => {
    s.watcher?.on('rescanned', (r) => rescans.push(r));
  };

  test.each(MISBEHAVIOURS.filter((m) => m !== 'drop' && m !== 'pause'))('%s', async (mode) => {
    // No periodic rescan within the test: convergence comes from the events and the rescans they ask for.
    await converge({ ...fake(mode), rescanMs: 600_000 }, record);
    if (mode === 'overflow' || mode === 'error' || mode === 'null-names') expect(rescans.length).toBeGreaterThan(0);
  });

  test('drop: what no event reported is found by the periodic rescan', async () => {
    await converge({ ...fake('drop'), rescanMs: 400 }, record);
    expect(rescans.some((r) => r.reason === 'periodic rescan' && r.changed > 0)).toBe(true);
  });

  test('pause: events lost while the machine slept are found when the clock jumps', async () => {
    let offset = 0;
    let w: MisbehavingWatcher | undefined;
    const a = h.arena();
    seed(a.local);
    const factory = fake('pause', (x) => (w = x)).watchTest?.factory;
    const s = a.session({ rescanMs: 600_000, watchTest: { factory, now: () => Date.now() + offset } });
    await s.start();
    record(s);
    (w as MisbehavingWatcher).paused = true;
    await churn(a.local);
    await sleep(200);
    expect(a.differences()).not.toEqual([]);
    offset += 60_000; // the wall clock jumps: the process slept
    (w as MisbehavingWatcher).paused = false;
    await eventually(() => a.differences(), 10_000, 'after the pause');
    expect(rescans.some((r) => /paused/.test(r.reason))).toBe(true);
  });
});

test('the per-folder backend re-watches, on the next rescan, a folder whose watch was lost', async () => {
  const a = h.arena();
  seed(a.local);
  const s = a.session({ watchBackend: 'per-folder', rescanMs: 300 });
  await s.start();
  const backend = s.watcher?.backend as TreeWatcher;
  backend.removeTree('src'); // as if its watch had failed
  await sleep(700);
  fs.writeFileSync(path.join(a.local, 'src/f1.txt'), 'seen through the restored watch');
  await eventually(() => a.differences(), 5_000, 'restored watch');
  expect(fs.existsSync(path.join(a.remote, 'src/f1.txt'))).toBe(true);
});
