/**
 * The server's copy and block hashes begun before the listing (sync/engine/delta-early.ts, EarlyRemote),
 * against the sidecar's sshd run by a non-root user, through whole sessions (`kubedev sync --once`): a
 * changed large file goes by the script begun early, byte-equal; a no-op re-attach copies nothing; a
 * script not taken is ended with its copy removed while the transfer runs its own; the listing does not
 * delete a begun script's copy but still deletes a killed run's leftovers; a root that resolves to a
 * refused place gets nothing written.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { EarlyRemote } from '../../sync/engine/delta-early';
import { RemoteDelta } from '../../sync/engine/delta-remote';
import { buildIgnore } from '../../sync/engine/ignore';
import { listRemote } from '../../sync/engine/remote';
import { Connection } from '../../sync/engine/transport';
import { leftovers, put, scatter } from '../support/delta';
import { Arena, useArena } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { remote } from '../support/two-way';

jest.setTimeout(60_000);

const SIZE = 16 * 1024 * 1024;
const REL = 'data/big.bin';

const h = useArena();
let sshd: Sshd;
let a: Arena;
beforeEach(() => {
  sshd = h.sshd();
  a = h.arena();
});
afterEach(() => jest.restoreAllMocks());

/** One `--once` pass; what EarlyRemote.take handed on (a script, or undefined), per call. */
async function once(): Promise<{ taken: unknown[]; begun: number; stopped: string[]; started: number }> {
  const take = jest.spyOn(EarlyRemote.prototype, 'take');
  const begin = jest.spyOn(RemoteDelta, 'begin');
  const start = jest.spyOn(RemoteDelta, 'start');
  const s = a.session({ watch: false });
  await s.start();
  await s.close();
  const taken = await Promise.all(take.mock.results.map((r) => r.value as Promise<unknown>));
  const early = begin.mock.results.filter((_, i) => begin.mock.calls[i][3].unless !== undefined);
  const stopped = (await Promise.all(early.map((r) => (r.value as ReturnType<typeof RemoteDelta.begin>).ready.then(() => '', (e: Error) => e.message)))).filter((m) => m !== '');
  const started = start.mock.calls.length;
  jest.restoreAllMocks();
  return { taken, begun: early.length, stopped, started };
}

/** The remote holding `buf` as REL (sent by a pass), then REL changed locally in 4 places. */
async function seeded(): Promise<Buffer> {
  const first = crypto.randomBytes(SIZE);
  put(a, REL, first);
  const r = await once();
  expect(r.begun).toBe(1); // begun, found no remote file: stopped, the file sent whole
  expect(r.taken).toEqual([]);
  const next = scatter(first, 4, 100_000);
  put(a, REL, next);
  return next;
}

/** The scripts begun from now on: each one's copy (its path on the server) and its readiness. */
function trackBegun(): { temp: string; abs: string; ready: Promise<unknown> }[] {
  const begin = RemoteDelta.begin.bind(RemoteDelta);
  const runs: { temp: string; abs: string; ready: Promise<unknown> }[] = [];
  jest.spyOn(RemoteDelta, 'begin').mockImplementation((...args) => {
    const run = begin(...args);
    runs.push({ temp: run.temp, abs: path.join(a.remote, path.dirname(args[1]), run.temp), ready: run.ready.catch(() => undefined) });
    return run;
  });
  return runs;
}

/** Runs `before` (given the connection and the listing's number, from 0) ahead of each remote listing. */
function beforeListing(before: (conn: Connection, n: number) => Promise<void>): void {
  const exec = Connection.prototype.exec;
  let n = 0;
  jest.spyOn(Connection.prototype, 'exec').mockImplementation(async function (this: Connection, command, ...rest) {
    if (command === 'sh -s' && String(rest[0]).includes('find')) await before(this, n++);
    return exec.call(this, command, ...rest);
  });
}

/** Waits (2 s at most) until `seen` says the copy is under way on the server. */
async function until(seen: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !seen(); i++) await new Promise((r) => setTimeout(r, 5));
}

test('a changed large file goes by the script begun before the listing: byte-equal, nothing left behind', async () => {
  await seeded();
  const r = await once();
  expect(r.begun).toBe(1);
  expect(r.taken).toHaveLength(1);
  expect(r.taken[0]).toBeInstanceOf(RemoteDelta);
  expect(r.started).toBe(0); // no script of its own
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test('a no-op re-attach: the early script stops at its first look, nothing is copied (the folder is not touched)', async () => {
  await seeded();
  await once();
  const dir = path.join(a.remote, 'data');
  const before = fs.statSync(dir).mtimeMs;
  const r = await once();
  expect(r.begun).toBe(1);
  expect(r.stopped).toEqual([expect.stringMatching(/not begun: the remote file has the local size and mtime/)]);
  expect(r.taken).toEqual([]);
  expect(fs.statSync(dir).mtimeMs).toBe(before); // no copy was made there, not even for a moment
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test('a remote copy under a quarter of the local size: the early script stops, the file goes whole', async () => {
  put(a, REL, crypto.randomBytes(SIZE));
  await once();
  remote(sshd, a, `truncate -s ${SIZE / 8} ${REL}`);
  const dir = path.join(a.remote, 'data');
  const before = fs.statSync(dir).mtimeMs;
  const r = await once();
  expect(r.stopped).toEqual([expect.stringMatching(/not begun: .*under a quarter/)]);
  expect(r.taken).toEqual([]); // not a changed-blocks candidate: take is never asked, no script of its own
  expect(r.started).toBe(0);
  expect(fs.statSync(dir).mtimeMs).toBeGreaterThan(before); // written whole (by its own temporary name)
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test('a remote copy over twice the local size: the early script stops without copying it, the file goes whole', async () => {
  put(a, REL, crypto.randomBytes(SIZE));
  await once();
  remote(sshd, a, `truncate -s ${SIZE * 3} ${REL}`);
  const r = await once();
  expect(r.stopped).toEqual([expect.stringMatching(/not begun: .*over twice the size/)]);
  expect(r.taken).toEqual([]);
  expect(r.started).toBe(0);
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test('a script begun early but not handed on (as when the plan wants another block size): ended, its copy removed; the transfer runs its own', async () => {
  await seeded();
  jest.spyOn(EarlyRemote.prototype, 'take').mockResolvedValue(undefined);
  const drop = jest.spyOn(EarlyRemote.prototype, 'dropRest');
  const s = a.session({ watch: false });
  await s.start();
  await s.close();
  expect(drop).toHaveBeenCalledTimes(1);
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test('a read-only folder (0555 on both sides): the early script cannot copy there and is not used; the transfer opens the folder, sends by changed blocks and closes it again', async () => {
  await seeded();
  fs.chmodSync(path.join(a.local, 'data'), 0o555);
  remote(sshd, a, 'chmod 0555 data');
  const r = await once();
  expect(r.begun).toBe(1);
  expect(r.stopped).toEqual([expect.stringMatching(/could not copy and checksum it/)]);
  expect(r.started).toBe(1); // the transfer's own script, in the folder opened for it
  expect(fs.statSync(path.join(a.remote, 'data')).mode & 0o777).toBe(0o555);
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test('a folder the container made read-only (0755 locally): the pass gives it the local mode, and the changed-blocks transfer into it does not take that back', async () => {
  await seeded();
  remote(sshd, a, 'chmod 0555 data');
  const r = await once();
  expect(r.started).toBe(1); // the early script could not copy into the folder as it was then
  expect(fs.statSync(path.join(a.remote, 'data')).mode & 0o777).toBe(0o755);
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test("the listing does not delete a begun script's copy, and still deletes a killed run's leftovers", async () => {
  await seeded();
  // A killed run's copy and block files, beside the file.
  remote(sshd, a, `head -c 1000 /dev/zero > data/.kubedev-0123456789ab.tmp && : > data/.kubedev-0123456789ab.tmp.000001`);
  // The listing held back until the early script has made its copy, so that the listing sees it.
  const runs = trackBegun();
  beforeListing(async () => void (await Promise.all(runs.map((r) => r.ready))));
  const owns = jest.spyOn(EarlyRemote.prototype, 'owns');
  const commit = jest.spyOn(RemoteDelta.prototype, 'commit');
  const s = a.session({ watch: false });
  await s.start();
  await s.close();
  const asked = owns.mock.calls.map((c) => c[0]);
  const mine = owns.mock.calls.filter((_, i) => owns.mock.results[i].value === true).map((c) => c[0]);
  expect(asked).toEqual(expect.arrayContaining(['data/.kubedev-0123456789ab.tmp']));
  expect(mine.length).toBeGreaterThan(0); // the listing saw the script's copy: kept
  expect(mine).not.toContain('data/.kubedev-0123456789ab.tmp');
  // The script's copy was there to the end: put in place by changed blocks, not sent whole after all.
  expect(commit).toHaveBeenCalledTimes(1);
  await expect(commit.mock.results[0].value).resolves.toMatch(/^\d+ /);
  expect(leftovers(a.remote)).toEqual([]); // the killed run's gone, the script's renamed into place
  expect(a.differences()).toEqual([]);
});

test('a root that resolves to a refused place (/tmp, through a symlink): the early script writes nothing there, the session refuses', async () => {
  const name = `kubedev-early-${crypto.randomBytes(4).toString('hex')}.bin`;
  const local = crypto.randomBytes(SIZE);
  put(a, name, local);
  const there = path.join('/tmp', name);
  fs.writeFileSync(there, scatter(local, 2, 1000));
  fs.chownSync(there, sshd.uid, sshd.gid);
  fs.rmSync(a.remote, { recursive: true, force: true });
  fs.symlinkSync('/tmp', a.remote);
  const seen: string[] = [];
  const w = fs.watch('/tmp', (_e, f) => f && String(f).startsWith('.kubedev-') && seen.push(String(f)));
  try {
    const s = a.session({ watch: false });
    await expect(s.start()).rejects.toThrow(/resolves to '\/tmp'/);
    await s.close();
    await new Promise((r) => setTimeout(r, 200)); // events still on their way
  } finally {
    w.close();
    fs.rmSync(there, { force: true });
    fs.unlinkSync(a.remote);
  }
  expect(seen).toEqual([]);
});

test('a root the preparation refuses as not writable (a writable folder inside it): the early script writes nothing there and leaves nothing', async () => {
  await seeded();
  remote(sshd, a, 'chmod 0555 .');
  const dir = path.join(a.remote, 'data');
  const before = fs.statSync(dir).mtimeMs;
  const seen: string[] = [];
  const w = fs.watch(dir, (_e, f) => f && String(f).startsWith('.kubedev-') && seen.push(String(f)));
  try {
    const s = a.session({ watch: false });
    await expect(s.start()).rejects.toThrow(/not writable/);
    await s.close();
    await new Promise((r) => setTimeout(r, 500)); // a script still at work
  } finally {
    w.close();
  }
  expect({ left: leftovers(a.remote), seen: seen.length, mtime: fs.statSync(dir).mtimeMs }).toEqual({ left: [], seen: 0, mtime: before });
});

test('the connection dropped while the early script copies: the retried pass leaves no copy of it behind', async () => {
  await seeded();
  const runs = trackBegun();
  let listings = 0;
  beforeListing(async (conn, n) => {
    listings = n + 1;
    if (n > 0) return;
    // Dropped once the copy is under way on the server.
    await until(() => runs.some((r) => fs.existsSync(`${r.abs}.c`)));
    conn.destroy('test: dropped while the early script copies');
    await new Promise((r) => setTimeout(r, 1500)); // what the server does with the script meanwhile
  });
  const s = a.session({ watch: false });
  await s.start();
  await s.close();
  await new Promise((r) => setTimeout(r, 300));
  expect(listings).toBeGreaterThanOrEqual(2);
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test('closed while the early script copies (the first pass aborted): no copy left behind', async () => {
  await seeded();
  const runs = trackBegun();
  const s = a.session({ watch: false });
  beforeListing(async () => {
    await until(() => runs.some((r) => fs.existsSync(`${r.abs}.c`)));
    void s.close();
  });
  await s.start().catch(() => undefined);
  await s.close();
  await new Promise((r) => setTimeout(r, 1500));
  expect(runs.length).toBe(1);
  expect(leftovers(a.remote)).toEqual([]);
});

test("the connection dropped and the early script killed with it (SIGKILL: no trap runs): the retried pass deletes its copy as a killed run's", async () => {
  await seeded();
  const runs = trackBegun();
  const temps = (): string[] => runs.map((r) => r.temp);
  let listings = 0;
  beforeListing(async (conn, n) => {
    listings = n + 1;
    if (n > 0) return;
    await until(() => runs.some((r) => fs.existsSync(r.abs)));
    // The script and its tools killed on the server (as a container's OOM killer or restart would), the connection gone.
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (temps().some((t) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(t))) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    conn.destroy('test: dropped, the script killed');
    await new Promise((r) => setTimeout(r, 300));
  });
  const s = a.session({ watch: false });
  await s.start();
  await s.close();
  expect(listings).toBeGreaterThanOrEqual(2);
  expect(fs.readdirSync(path.join(a.remote, 'data')).filter((n) => temps().some((t) => n.startsWith(t)))).toEqual([]);
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
  // What no trap could remove: the killed script's pipes, in shared memory (no bytes; the next script
  // removes such folders once an hour old: delta-pipes.test.ts).
  for (const where of ['/dev/shm', '/tmp']) {
    for (const d of fs.readdirSync(where).filter((n) => temps().some((t) => n.startsWith(`${t}.`)))) {
      // Only the pipes (in a/, with the empty folder standing where the block after the last would go)
      // and split's list of them (v): no byte of the file. (The retried pass's own folder may be there
      // too, being removed.)
      const p = path.join(where, d);
      let inside: fs.Dirent[] = [];
      try {
        inside = fs.readdirSync(p, { recursive: true, withFileTypes: true });
      } catch {
        continue; // removed meanwhile
      }
      const bytes = inside.filter((e) => !e.isFIFO() && !(e.isDirectory() && (e.name === 'a' || /\.tmp\.\d{6}$/.test(e.name))) && e.name !== 'v');
      expect(bytes.map((e) => e.name)).toEqual([]);
      const list = path.join(p, 'v');
      if (fs.existsSync(list)) expect(fs.readFileSync(list, 'utf8')).toMatch(/^(creating file .*\n)*$/);
      fs.rmSync(p, { recursive: true, force: true });
    }
  }
});

test('a server without xxh128sum: the early script hashes with sha1sum, the transfer takes it and re-hashes the local blocks that way', async () => {
  await seeded();
  const channel = Connection.prototype.channel;
  jest.spyOn(Connection.prototype, 'channel').mockImplementation(function (this: Connection, command: string) {
    return channel.call(this, command.replace('for x in xxh128sum ', 'for x in kubedev-no-xxh128sum '));
  });
  const take = jest.spyOn(EarlyRemote.prototype, 'take');
  const s = a.session({ watch: false });
  await s.start();
  await s.close();
  const taken = (await take.mock.results[0].value) as RemoteDelta | undefined;
  expect(taken).toBeInstanceOf(RemoteDelta);
  expect(taken?.kind).toBe('sha1');
  expect(leftovers(a.remote)).toEqual([]);
  expect(a.differences()).toEqual([]);
});

test("the listing while an early script's pipes are removed beside it (made there on a server without temporary space): the listing does not fail", async () => {
  put(a, REL, crypto.randomBytes(1024));
  fs.mkdirSync(path.join(a.remote, 'data'), { recursive: true });
  fs.writeFileSync(path.join(a.remote, 'data', 'big.bin'), crypto.randomBytes(8 * 1024 * 1024));
  fs.chownSync(path.join(a.remote, 'data'), sshd.uid, sshd.gid);
  fs.chownSync(path.join(a.remote, 'data', 'big.bin'), sshd.uid, sshd.gid);
  // Names made and removed beside the file over and over, as such a script does (what the listing meets mid-way).
  const loop = 'cd "$1"/data && while :; do split -a 6 -d -b 4096 -- big.bin .kubedev-0123456789ab.tmp.; rm -f -- .kubedev-0123456789ab.tmp.[0-9]*; done';
  const churn = spawn('setpriv', [`--reuid=${sshd.uid}`, `--regid=${sshd.gid}`, '--clear-groups', '--', 'sh', '-c', loop, 'sh', a.remote], { stdio: 'ignore' });
  const conn = await Connection.open({ host: sshd.host, port: sshd.port, user: sshd.user, identity: sshd.identity, knownHosts: sshd.knownHosts });
  const failed: string[] = [];
  try {
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 30; i++) await listRemote(conn, a.remote, buildIgnore(a.local)).catch((e: Error) => failed.push(e.message));
  } finally {
    churn.kill('SIGKILL');
    await new Promise((r) => churn.once('exit', r));
    await conn.close();
    remote(sshd, a, 'rm -f data/.kubedev-0123456789ab.tmp.*');
  }
  expect(failed).toEqual([]);
});
