/**
 * The local listing an agent keeps between one-shot runs (sync/engine/kept-scan.ts), with real inotify
 * events and a real sshd: a run takes it only while nothing under the folder changed since; every kind
 * of change, a replaced root, a stale or slept-through listing, hard links, a failed run make the next
 * run walk the folder again. The remote side is listed by every run: a container's edit is put back.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KeptScans } from '../sync/engine/kept-scan';
import { SyncOptions } from '../sync/engine/session';
import { Arena, useArena } from './support/hostile';
import { remote } from './support/two-way';
import { differences, snapshot, writeTree } from './support/trees';
import { until, useAgentState } from './support/agent';

jest.setTimeout(30_000);
const { sshd, arena } = useArena();
// As in the agent: its kept listings, and its connections kept between runs (the remote watcher rides on them).
const agent = useAgentState();

/** One `--once` run as the agent serves it: what it sent and deleted, whether it walked the local folder and listed the server. */
async function once(a: Arena, extra: Partial<SyncOptions> = {}): Promise<{ files: number; deleted: number; walked: boolean; listed: boolean }> {
  const before = { ...agent.kept().counts, ...agent.kept().remoteCounts };
  const s = a.session({ watch: false, ...extra });
  try {
    const r = await s.start();
    return { files: r.files, deleted: r.deleted, walked: agent.kept().counts.walks > before.walks, listed: agent.kept().remoteCounts.lists > before.lists };
  } finally {
    await s.close();
    await agent.kept().settled(); // a server watcher started by the run is up before the next (a user's comes seconds later)
  }
}

/** Two runs (the second's listings are kept), then a third that must take both. */
async function keptBoth(a: Arena): Promise<void> {
  await once(a);
  await once(a);
  expect(await once(a)).toMatchObject({ walked: false, listed: false });
}

test('an unchanged folder is neither walked nor listed again; a container edit and the run\'s own writes are; ignored churn keeps both', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', 'src/b.ts': 'b', '.kubedevignore': 'dist/\n', 'dist/out.js': 'built' });
  expect(await once(a)).toMatchObject({ walked: true, listed: true });
  // The second run's walk and listing are kept: every folder was watched before it was read.
  expect(await once(a)).toEqual({ files: 0, deleted: 0, walked: true, listed: true });
  expect(await once(a)).toEqual({ files: 0, deleted: 0, walked: false, listed: false });
  remote(sshd(), a, 'printf "the container wrote this" > src/b.ts && rm a.txt');
  expect(await once(a)).toEqual({ files: 2, deleted: 0, walked: false, listed: true });
  expect(a.differences((rel) => rel.startsWith('dist'))).toEqual([]);
  expect(await once(a)).toEqual({ files: 0, deleted: 0, walked: false, listed: true }); // the last run wrote
  expect(await once(a)).toEqual({ files: 0, deleted: 0, walked: false, listed: false });
  fs.writeFileSync(path.join(a.local, 'dist/out.js'), 'built again'); // ignored: no reason to walk
  fs.mkdirSync(path.join(a.local, 'dist/more'));
  expect(await once(a)).toEqual({ files: 0, deleted: 0, walked: false, listed: false });
});

test("the container's churn in an ignored folder (its build output, node_modules) keeps the remote listing", async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', '.kubedevignore': 'node_modules/\n' });
  remote(sshd(), a, 'mkdir -p node_modules/dep && printf x > node_modules/dep/index.js');
  await keptBoth(a);
  remote(sshd(), a, 'mkdir -p node_modules/dep/lib node_modules/new && printf y > node_modules/dep/lib/y.js && rm node_modules/dep/index.js');
  expect((await once(a)).listed).toBe(false);
  remote(sshd(), a, 'printf "not ignored" > b.txt');
  expect(await once(a)).toMatchObject({ listed: true, deleted: 1 });
});

test('every kind of container change, each made just before the run starts, is listed and put back', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', 'src/b.ts': 'b', 'src/deep/c.ts': 'c', 'run.sh': 'echo' });
  await keptBoth(a);
  const changes: Array<[string, string]> = [
    ['an edit of the same size', 'printf "two" > a.txt'],
    ['a new file deep down', 'mkdir -p x/y && printf n > x/y/n.txt'],
    ['a deletion', 'rm src/deep/c.ts'],
    ['a mode change', 'chmod 700 run.sh'],
    ['a folder renamed', 'mv src lib'],
    ['the remote root made again', 'cd .. && rm -rf ws && mkdir ws && printf other > ws/a.txt'],
  ];
  for (const [what, script] of changes) {
    remote(sshd(), a, script);
    const r = await once(a); // at once: the run's mark waits for the server's events
    expect([what, r.listed]).toEqual([what, true]);
    expect([what, a.differences()]).toEqual([what, []]);
    await once(a); // that run's own writes
    expect([what, (await once(a)).listed]).toEqual([what, false]);
  }
});

test('a container write to a file it keeps open (no close, so no close_write) is listed and put back', async () => {
  const a = arena();
  writeTree(a.local, { 'log.txt': 'local', 'a.txt': 'a' });
  await keptBoth(a);
  remote(sshd(), a, '(exec 3>>log.txt; printf " and the container" >&3; sleep 3) >/dev/null 2>&1 &');
  await until(() => expect(fs.readFileSync(path.join(a.remote, 'log.txt'), 'utf8')).toContain('container'), 3000);
  expect(await once(a)).toMatchObject({ listed: true, files: 1 }); // before: taken, the write kept there
  expect(a.differences()).toEqual([]);
});

test("an overflow of the server's event queue (a flood in an ignored folder while the watcher's output waits) is listed: the change it hid is put back", async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', '.kubedevignore': 'node_modules/\n' });
  remote(sshd(), a, 'mkdir node_modules');
  await keptBoth(a);
  // The watcher's output is not read meanwhile: inotifywait blocks writing, the kernel's queue (16,384) overflows.
  const channel = (agent.kept() as unknown as { remotes: Map<string, { watcher: { channel: { pause(): void; resume(): void } } }> }).remotes.values().next().value?.watcher.channel;
  if (!channel) throw new Error('no remote watcher channel: the kept remote listing did not start one');
  channel.pause();
  remote(sshd(), a, 'cd node_modules && seq 1 20000 | sed s/^/f/ | xargs touch && cd .. && printf "the container" > a.txt');
  channel.resume();
  expect(await once(a)).toMatchObject({ listed: true, files: 1 }); // before: Q_OVERFLOW was never printed, the listing taken
  expect(a.differences((rel) => rel.startsWith('node_modules'))).toEqual([]);
});

test('a flood of ignored names in a watched folder (past what the kernel may have dropped unreported) walks again', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', '.kubedevignore': '*.tmp\n' });
  await keptBoth(a);
  for (let i = 0; i < 1_200; i++) fs.writeFileSync(path.join(a.local, `x${i}.tmp`), ''); // one event each (a create)
  expect((await once(a)).walked).toBe(true);
});

test('a kept remote listing is not taken over another connection (the kept one ended: a pod restart, a dropped link)', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one' });
  await keptBoth(a);
  agent.pool().closeAll(); // the agent's connection ends; its watcher with it
  remote(sshd(), a, 'printf "while nobody watched" > a.txt');
  expect(await once(a)).toMatchObject({ listed: true, files: 1 });
  expect(a.differences()).toEqual([]);
});

test('every kind of local change since the last run is found, each made just before the run starts', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one', 'src/b.ts': 'b', 'src/deep/c.ts': 'c', 'old/x.txt': 'x', 'run.sh': 'echo' });
  await once(a);
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
    ['a folder deleted and made again at its path', () => {
      fs.rmSync(path.join(a.local, 'lib/deep'), { recursive: true });
      fs.mkdirSync(path.join(a.local, 'lib/deep'));
    }],
    ['a file in the folder made again (its old watch would see nothing)', () => fs.writeFileSync(path.join(a.local, 'lib/deep/f.ts'), 'f')],
  ];
  for (const [what, change] of changes) {
    change();
    const r = await once(a);
    expect([what, r.walked]).toEqual([what, true]);
    expect([what, a.differences()]).toEqual([what, []]);
    // A walk that found folders not watched before it began is not kept: one more walk, then kept.
    const next = await once(a);
    if (next.walked) expect([what, (await once(a)).walked]).toEqual([what, false]);
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
  let clock = Date.now();
  await agent.replaceKept(new KeptScans({ maxAgeMs: 60_000, now: () => clock }));
  await once(a);
  expect((await once(a)).walked).toBe(false);
  clock += 5 * 60_000; // the wall clock jumped: the machine slept, its watcher may have missed events
  expect((await once(a)).walked).toBe(true);
  expect((await once(a)).walked).toBe(false);
  agent.kept().forgetAll(); // as the agent does after a run that failed
  expect((await once(a)).walked).toBe(true);

  await agent.replaceKept(new KeptScans({ maxAgeMs: 0 }));
  await once(a);
  expect((await once(a)).walked).toBe(true);

  await agent.replaceKept(new KeptScans());
  fs.linkSync(path.join(a.local, 'a.txt'), path.join(a.local, 'b.txt'));
  await once(a);
  expect((await once(a)).walked).toBe(true);
});

test('a connection kept and taken run after run holds one listener of its SFTP session, not one more per run', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'one' });
  for (let i = 0; i < 14; i++) {
    fs.writeFileSync(path.join(a.local, 'a.txt'), `run ${i}`); // each run sends: its SFTP session is the kept one
    await once(a);
  }
  const idle = (agent.pool() as unknown as { idle: Map<string, { link: { sftp?: Promise<{ listenerCount(e: string): number }> } }> }).idle;
  const sftp = await [...idle.values()][0]?.link.sftp;
  if (!sftp) throw new Error('no SFTP session on the kept connection: the runs sent nothing over SFTP');
  expect(sftp.listenerCount('close')).toBeLessThanOrEqual(2); // before: one per run (14 here), and a MaxListenersExceededWarning
});

test('off Linux nothing is kept', () => {
  const k = new KeptScans({ platform: 'darwin' });
  expect(k.for(arena().local, { ignores: () => false, prunableNames: [], patterns: [] })).toBeUndefined();
});
