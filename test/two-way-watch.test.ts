/**
 * Two-way while watching: remote changes seen over the server's inotifywait stream (latency measured
 * container -> local over 20 changes) or, without it, by listing at an interval; no echo of the
 * runner's own writes; a remote hook that rewrites a file settles instead of looping.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TwoWaySession } from '../sync/engine/two-way';
import { RemoteWatcher } from '../sync/engine/remote-watch';
import * as reconcile from '../sync/engine/two-way/reconcile';
import * as remoteList from '../sync/engine/two-way/remote-list';
import { Connection } from '../sync/engine/transport';
import { useArena } from './support/hostile';
import { processes } from './support/procs';
import { eventually, snapshot, writeTree } from './support/trees';
import { remote, twoWay } from './support/two-way';

jest.setTimeout(60_000);
const { sshd, arena } = useArena();
let session: TwoWaySession | undefined;
let hook: ChildProcess | undefined;
afterEach(async () => {
  if (hook?.pid) process.kill(-hook.pid, 'SIGKILL'); // the whole group: sh, inotifywait, the loop
  hook = undefined;
  await session?.close();
  session = undefined;
});

function counted(s: TwoWaySession): { synced: number; pulled: number; warnings: string[] } {
  const c = { synced: 0, pulled: 0, warnings: [] as string[] };
  s.on('synced', () => c.synced++);
  s.on('pulled', () => c.pulled++);
  s.on('warning', (w) => c.warnings.push(w));
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until the local file holds `want`; returns when (Date.now()), polling every millisecond. */
async function arrival(file: string, want: string, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (fs.readFileSync(file, 'utf8') === want) return Date.now();
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`'${file}' did not become '${want}' within ${ms} ms`);
    await sleep(1);
  }
}

test('remote changes are seen at once over inotifywait: container -> local p50 over 20 changes', async () => {
  const a = arena();
  fs.writeFileSync(path.join(a.local, 'seed.txt'), 'seed');
  session = twoWay(sshd(), a);
  const c = counted(session);
  await session.start();
  const lat: number[] = [];
  for (let i = 0; i < 20; i++) {
    const want = `change ${i} ${'x'.repeat(i)}`;
    remote(sshd(), a, `printf '%s' '${want}' > f.txt`);
    const wrote = fs.statSync(path.join(a.remote, 'f.txt')).mtimeMs;
    lat.push((await arrival(path.join(a.local, 'f.txt'), want, 1000)) - wrote);
  }
  lat.sort((x, y) => x - y);
  const p50 = lat[9];
  // Figures for the notes (issue 12): printed, and bounded loosely for a loaded CI machine.
  process.stdout.write(`two-way container -> local over inotifywait: p50 ${p50.toFixed(0)} ms, max ${lat[19].toFixed(0)} ms\n`);
  expect(lat[19]).toBeLessThan(1000);
  expect(p50).toBeLessThan(250);
  expect(c.warnings).toEqual([]);
  expect(c.synced).toBe(0); // nothing pushed back: the runner's own writes are no changes
  expect(a.differences()).toEqual([]);
});

test('no echo: a pulled file is not sent back, a pushed file is not fetched back', async () => {
  const a = arena();
  session = twoWay(sshd(), a);
  const c = counted(session);
  await session.start();
  remote(sshd(), a, 'printf from-container > gen.txt');
  await arrival(path.join(a.local, 'gen.txt'), 'from-container', 1000);
  fs.writeFileSync(path.join(a.local, 'edit.txt'), 'from-laptop');
  await eventually(() => (fs.existsSync(path.join(a.remote, 'edit.txt')) ? [] : ['edit.txt not remote']), 2000, 'push');
  await sleep(500);
  const counts = { synced: c.synced, pulled: c.pulled };
  const mtimes = [fs.statSync(path.join(a.remote, 'gen.txt')).mtimeMs, fs.statSync(path.join(a.local, 'edit.txt')).mtimeMs];
  await sleep(700);
  expect({ synced: c.synced, pulled: c.pulled }).toEqual(counts);
  expect(counts).toEqual({ synced: 1, pulled: 1 });
  expect([fs.statSync(path.join(a.remote, 'gen.txt')).mtimeMs, fs.statSync(path.join(a.local, 'edit.txt')).mtimeMs]).toEqual(mtimes);
  expect(a.differences()).toEqual([]);
});

test("a pulled file's own local rename runs no pass of its own (the local watcher's echo: the file is what the ancestor records)", async () => {
  const a = arena();
  fs.writeFileSync(path.join(a.local, 'f.txt'), 'seed'); // rewritten in place below: one event each (close_write)
  session = twoWay(sshd(), a);
  const c = counted(session);
  await session.start();
  await sleep(500); // the first pass's own echoes go by
  const listings = jest.spyOn(remoteList, 'listRemoteExact');
  try {
    for (let i = 0; i < 3; i++) {
      const before = listings.mock.calls.length;
      remote(sshd(), a, `printf 'container ${i}' > f.txt`);
      await arrival(path.join(a.local, 'f.txt'), `container ${i}`, 2000);
      await sleep(400);
      expect([i, listings.mock.calls.length - before]).toEqual([i, 1]);
    }
    // A laptop save of the same file still goes up.
    fs.writeFileSync(path.join(a.local, 'f.txt'), 'laptop');
    await eventually(() => (fs.readFileSync(path.join(a.remote, 'f.txt'), 'utf8') === 'laptop' ? [] : ['not yet']), 3000, 'the laptop save in the container');
    await eventually(() => fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-')), 3000, 'the push guard released');
  } finally {
    listings.mockRestore();
  }
  expect(c.warnings).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test('a remote hook that rewrites what it is sent settles: no loop', async () => {
  const a = arena();
  fs.writeFileSync(path.join(a.local, 'src.txt'), 'start');
  session = twoWay(sshd(), a);
  const c = counted(session);
  await session.start();
  // A "formatter" in the container: upper-cases src.txt in place whenever it is written (idempotent).
  const s = sshd();
  hook = spawn('setpriv', [`--reuid=${s.uid}`, `--regid=${s.gid}`, '--clear-groups', '--', 'sh', '-c',
    'cd "$1" && inotifywait -m -q -e close_write,moved_to --format %f . | while read -r f; do [ "$f" = src.txt ] || continue; t=$(tr a-z A-Z < src.txt); [ "$t" = "$(cat src.txt)" ] || printf %s "$t" > src.txt; done', 'sh', a.remote], { stdio: 'ignore', detached: true });
  await sleep(300);
  fs.writeFileSync(path.join(a.local, 'src.txt'), 'hello world');
  await arrival(path.join(a.local, 'src.txt'), 'HELLO WORLD', 3000);
  await sleep(500);
  const settled = { synced: c.synced, pulled: c.pulled };
  await sleep(1000);
  expect({ synced: c.synced, pulled: c.pulled }).toEqual(settled);
  expect(settled.synced).toBeLessThanOrEqual(2);
  expect(a.differences()).toEqual([]);
});

test('without inotifywait the server is listed at an interval, said once', async () => {
  const a = arena();
  session = twoWay(sshd(), a, { remoteWatch: 'poll', remotePollMs: 200 });
  const c = counted(session);
  await session.start();
  const t0 = Date.now();
  remote(sshd(), a, 'printf polled > p.txt');
  await arrival(path.join(a.local, 'p.txt'), 'polled', 1000);
  expect(Date.now() - t0).toBeLessThan(1000);
  await sleep(500);
  expect(c.warnings.filter((w) => /inotifywait/.test(w))).toHaveLength(1);
});

// A push's own temporaries, guards and staging folders would each ask for a pass of their own, which
// the next laptop save then waits behind; they are never paths, so the watcher does not report them.
test("the remote watcher does not report the runner's own internal names (.kubedev-*)", async () => {
  const a = arena();
  remote(sshd(), a, 'mkdir -p d');
  const s = sshd();
  const conn = await Connection.open({ host: '127.0.0.1', port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  const w = new RemoteWatcher(a.remote, 60_000);
  const seen: (string[] | undefined)[] = [];
  const order: string[] = [];
  w.on('change', (rels) => {
    seen.push(rels);
    order.push(...(rels ?? []));
  });
  w.on('looking', (rel) => order.push(`mark ${rel}`));
  try {
    expect(await w.start(conn)).toBe('inotify');
    remote(sshd(), a, 'printf x > .kubedev-1.tmp && mv .kubedev-1.tmp d/.kubedev-guard-2 && mkdir -p .kubedev-stage-3/sub && printf y > .kubedev-stage-3/sub/f && rm -r .kubedev-stage-3 d/.kubedev-guard-2 && printf w > d/before.txt && : > d/.kubedev-look-0a1b-0 && rm d/.kubedev-look-0a1b-0 && printf z > d/real.txt');
    await eventually(() => (seen.flat().includes('d/real.txt') ? [] : ['d/real.txt not reported yet']), 3000, 'the real file reported');
  } finally {
    w.close();
    await conn.close();
  }
  expect(seen.every((rels) => rels !== undefined)).toBe(true);
  expect(seen.flat().filter((rel) => rel?.includes('.kubedev-'))).toEqual([]);
  // A release's look mark is reported apart, in stream order (the session's echo of a swap ends there).
  expect(order.filter((x) => x.startsWith('mark ') || x.endsWith('.txt')).filter((x, i, all) => all.indexOf(x) === i)).toEqual(['d/before.txt', 'mark d/.kubedev-look-0a1b-0', 'd/real.txt']);
});

test('while watching, a remote change is fetched by a pass scoped to its path', async () => {
  const a = arena();
  for (let d = 0; d < 20; d++) for (let f = 0; f < 20; f++) writeTree(a.local, { [`src/d${d}/f${f}.ts`]: `file ${d} ${f}` });
  session = twoWay(sshd(), a);
  const pulled: { paths: readonly string[]; scoped: boolean }[] = [];
  session.on('pulled', (p) => pulled.push(p));
  await session.start();
  remote(sshd(), a, 'printf edited > src/d7/f3.ts && mkdir -p src/d7/new/deeper && printf made > src/d7/new/deeper/n.ts');
  await eventually(() => a.differences(), 3000, 'remote change local');
  expect(pulled.length).toBeGreaterThan(0);
  expect(pulled.every((p) => p.scoped)).toBe(true);
  expect(pulled.flatMap((p) => p.paths).sort()).toEqual(['src/d7/f3.ts', 'src/d7/new', 'src/d7/new/deeper', 'src/d7/new/deeper/n.ts']);
});

// The remote side is listed only every minute here, so the pass that runs is the one a local edit
// starts: scoped to that one path. It must still see that the remote root was replaced or emptied.
test.each([
  ['replaced', 'cd .. && mv ws ws.old && mkdir ws && printf other > ws/a.txt', /was replaced by another folder.*deleted nothing locally/],
  ['emptied', 'rm -rf ./* ./.[!.]* 2>/dev/null; true', /was emptied .*deleted nothing locally/],
])('while watching, a remote root %s halts a scoped pass: nothing local deleted or overwritten', async (_what, script, message) => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'a', 'b.txt': 'b', 'c/d.txt': 'd' });
  session = twoWay(sshd(), a, { remoteWatch: 'poll', remotePollMs: 60_000 });
  const errors: Error[] = [];
  session.on('error', (e) => errors.push(e));
  await session.start();
  remote(sshd(), a, script);
  fs.writeFileSync(path.join(a.local, 'b.txt'), 'edited locally');
  const before = snapshot(a.local);
  await expect(session.done).rejects.toThrow(message);
  expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(message)]);
  expect(snapshot(a.local)).toEqual(before);
});

/** The pids of this machine's inotifywait processes watching `root` (the test's sshd is local). */
function watchersOf(root: string): number[] {
  return processes(({ argv }) => path.basename(argv[0]) === 'inotifywait' && argv.includes(root));
}

// sshd closes a dropped session's pipes but signals no process of it (no pty): inotifywait, blocked
// reading its inotify queue, would stay until the next event in the tree (its write then fails), a
// process and a tree's worth of inotify watches on the server for every dropped connection.
test('a dropped connection leaves no inotifywait on the server, nor does a closed watcher', async () => {
  const a = arena();
  remote(sshd(), a, 'mkdir -p d');
  const s = sshd();
  const open = (): Promise<Connection> => Connection.open({ host: '127.0.0.1', port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  const conn = await open();
  const w = new RemoteWatcher(a.remote, 60_000);
  try {
    expect(await w.start(conn)).toBe('inotify');
    expect(watchersOf(a.remote)).toHaveLength(1);
    conn.destroy('cut by the test'); // the socket torn down: no SSH goodbye, no channel close, no signal
    await eventually(() => watchersOf(a.remote).map((p) => `inotifywait ${p} still runs`), 3000, 'the server watcher ends with its connection');
  } finally {
    w.close();
  }
  const again = await open();
  const w2 = new RemoteWatcher(a.remote, 60_000);
  try {
    expect(await w2.start(again)).toBe('inotify');
    expect(watchersOf(a.remote)).toHaveLength(1);
    w2.close();
    await eventually(() => watchersOf(a.remote).map((p) => `inotifywait ${p} still runs`), 3000, 'the server watcher ends when closed');
    // inotifywait ending by itself (here: no such root) still closes the channel at once, its code read:
    // the shell left waiting on stdin holds none of the channel's output.
    const w3 = new RemoteWatcher(path.join(a.remote, 'missing'), 60_000);
    const warnings: string[] = [];
    w3.on('warning', (m) => warnings.push(m));
    const t = Date.now();
    expect(await w3.start(again)).toBe('poll');
    w3.close();
    expect(Date.now() - t).toBeLessThan(5000); // not the 10 s a watcher that never said it was ready gets
    expect(warnings).toEqual([expect.stringMatching(/the remote watcher stopped \(.*No such file or directory/)]);
  } finally {
    w2.close();
    await again.close();
  }
});

test("what the lost connection's server processes write after the reconnect's pass is removed by the follow-up pass, nothing pulled", async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'a', 'sub/b.txt': 'b' });
  session = twoWay(sshd(), a, { maxBackoffMs: 100, recheckMs: 300 });
  const c = counted(session);
  await session.start();
  const s = session;
  // The reconnect's pass (it sends nothing, so no 'synced'): the first pass that ends after the cut.
  const real = reconcile.twoWayPass;
  let passEnded: () => void = () => undefined;
  const reconnected = new Promise<void>((resolve) => (passEnded = resolve));
  const spy = jest.spyOn(reconcile, 'twoWayPass').mockImplementation(async (...args) => {
    const r = await real(...args);
    passEnded();
    return r;
  });
  (s as unknown as { conn: Connection }).conn.destroy('cut by the test');
  await reconnected;
  spy.mockRestore();
  // The old sftp-server finishing requests it read before the cut, after the new pass listed the remote.
  const late = ['.kubedev-0a1b2c3d4e5f.tmp', 'sub/.kubedev-5f4e3d2c1b0a.tmp'];
  remote(sshd(), a, late.map((rel) => `printf partial > ${rel}`).join(' && '));
  // Counted once the pass is over (the files go in the middle of it).
  await eventually(() => [...late.filter((rel) => fs.existsSync(path.join(a.remote, rel))), ...(s.rechecks === 1 ? [] : [`${s.rechecks} follow-up passes`])], 10_000, 'the late temporary files removed');
  expect(a.differences()).toEqual([]);
  expect(c.pulled).toBe(0);
  expect(late.filter((rel) => fs.existsSync(path.join(a.local, rel)))).toEqual([]);
});
