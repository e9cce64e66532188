/**
 * The remote root replaced by a symlink on the server while a session mirrors into it (`mv /workspace
 * /old; ln -s /elsewhere /workspace`, by the container or a teammate's script). Every script enters the
 * root with `cd -P` and checks folders against the physical path it reached, so before, each of them
 * wrote into the other folder: saves, new folders and deletes all landed in `/elsewhere`. Now the place
 * the listing found is kept and every way of writing (remote helper, SFTP, bulk tar, the deleter,
 * changed blocks, a new listing after a reconnect) checks it: the session halts, naming both places,
 * and nothing is written there. The other folder is the arena's sentinel, checked untouched after
 * each test. Real sshd as a non-root user.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DELTA_MIN_BYTES } from '../../sync/engine/delta';
import { RemoteDelta } from '../../sync/engine/delta-remote';
import { RemoteHelper } from '../../sync/engine/remote-helper';
import { SyncSession } from '../../sync/engine/session';
import { Connection } from '../../sync/engine/transport';
import { put, scatter } from '../support/delta';
import { Arena, useArena } from '../support/hostile';
import { eventually, nextEvent, writeTree } from '../support/trees';

jest.setTimeout(60_000);

const h = useArena();
afterEach(() => jest.restoreAllMocks());

/** The remote root moved aside and replaced by a symlink to the sentinel (a folder the same user owns). */
function swapRoot(a: Arena): string {
  const sentinel = path.join(a.base, 'sentinel');
  fs.renameSync(a.remote, `${a.remote}-old`);
  fs.symlinkSync(sentinel, a.remote);
  return sentinel;
}

/** Waits for the session's fatal error. */
function failure(s: SyncSession): Promise<Error> {
  return nextEvent<Error>(s, 'error', 30_000);
}

const MOVED = /^remote folder '.*\/ws' now leads (to '.*\/sentinel'|elsewhere) on the server, not to '.*\/ws' where it led when it was listed/;

const changes = {
  save: (a: Arena) => fs.writeFileSync(path.join(a.local, 'keep.txt'), 'changed after the swap'),
  'new folder': (a: Arena) => writeTree(path.join(a.local, 'sub', 'new'), { 'n.txt': 'new' }),
  delete: (a: Arena) => fs.rmSync(path.join(a.local, 'sub', 'deep.txt')),
};

describe.each(['helper', 'sftp', 'tar'] as const)('method %s', (method) => {
  test.each(Object.keys(changes) as Array<keyof typeof changes>)('%s after the root was replaced by a symlink: the session halts, nothing lands in the other folder', async (change) => {
    const a = h.arena();
    // The sentinel's names: a write or delete that followed the symlink would change it.
    writeTree(a.local, { 'keep.txt': 'mine', 'sub/deep.txt': 'mine too' });
    const s = a.session({ method });
    const failed = failure(s);
    await s.start();
    expect(fs.readFileSync(path.join(a.remote, 'keep.txt'), 'utf8')).toBe('mine');
    const sentinel = swapRoot(a);
    changes[change](a);
    const e = await failed;
    expect(e.message).toMatch(MOVED);
    expect(e.message).toContain('nothing was written or deleted there');
    expect(fs.readdirSync(sentinel).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
  });
});

test('a large file changed after the swap (changed blocks): the session halts, no copy or block lands in the other folder', async () => {
  const a = h.arena();
  const big = Buffer.alloc(DELTA_MIN_BYTES + 1024 * 1024, 7);
  writeTree(a.local, { 'keep.txt': 'mine' });
  fs.writeFileSync(path.join(a.local, 'big.bin'), big);
  const s = a.session();
  const failed = failure(s);
  await s.start();
  const sentinel = swapRoot(a);
  fs.writeFileSync(path.join(sentinel, 'big.bin'), big); // the other folder holds a copy changed blocks could work on
  big[1000] = 9;
  fs.writeFileSync(path.join(a.local, 'big.bin'), big);
  const e = await failed;
  expect(e.message).toMatch(MOVED);
  expect(fs.readFileSync(path.join(sentinel, 'big.bin'))[1000]).toBe(7);
  expect(fs.readdirSync(sentinel).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
  fs.rmSync(path.join(sentinel, 'big.bin')); // the sentinel as it was
});

test('the connection lost and made again after the swap: the new listing finds the root elsewhere and the session halts before writing', async () => {
  const a = h.arena();
  writeTree(a.local, { 'keep.txt': 'mine', 'sub/deep.txt': 'mine too', 'other.txt': 'not in the sentinel' });
  const s = a.session({ maxBackoffMs: 200 });
  const failed = failure(s);
  await s.start();
  swapRoot(a);
  expect(h.sshd().killSessions()).toBeGreaterThan(0);
  const e = await failed;
  expect(e.message).toMatch(/now leads to '.*\/sentinel' on the server, not to '.*\/ws'/);
});

test('a remote root that is a symlink from the start mirrors, saves and deletes through it as before', async () => {
  const a = h.arena();
  const real = path.join(a.base, 'ws-real');
  fs.mkdirSync(real);
  fs.chownSync(real, h.sshd().uid, h.sshd().gid);
  fs.symlinkSync(real, a.remote);
  writeTree(a.local, { 'a.txt': 'a', 'sub/b.txt': 'b' });
  for (const method of ['helper', 'sftp', 'tar'] as const) {
    const s = a.session({ method });
    const errors: Error[] = [];
    s.on('error', (e) => errors.push(e));
    await s.start();
    fs.writeFileSync(path.join(a.local, 'a.txt'), `saved by ${method}`);
    writeTree(path.join(a.local, method), { 'n.txt': method });
    fs.rmSync(path.join(a.local, 'sub', 'b.txt'), { force: true });
    await eventually(() => a.differences(), 20_000, method);
    expect(fs.readFileSync(path.join(real, method, 'n.txt'), 'utf8')).toBe(method);
    await s.close();
    expect(errors).toEqual([]);
  }
});

test.each(['helper', 'sftp', 'tar'] as const)('method %s: a root leading to a folder whose name is not UTF-8, then replaced by a symlink: the session halts', async (method) => {
  const a = h.arena();
  const real = Buffer.concat([Buffer.from(`${a.base}/donn`), Buffer.from([0xe9]), Buffer.from('es')]);
  fs.mkdirSync(real);
  fs.chownSync(real, h.sshd().uid, h.sshd().gid);
  fs.symlinkSync(real, a.remote);
  writeTree(a.local, { 'keep.txt': 'mine', 'sub/deep.txt': 'mine too' });
  const s = a.session({ method });
  const failed = failure(s);
  await s.start();
  fs.writeFileSync(path.join(a.local, 'sub', 'more.txt'), 'a save before the swap');
  await eventually(() => (fs.existsSync(Buffer.from(`${real.toString('latin1')}/sub/more.txt`, 'latin1')) ? [] : ['not yet']), 20_000, 'the save through the link');
  swapRoot(a);
  changes.save(a);
  changes.delete(a);
  expect((await failed).message).toMatch(/now leads .* on the server, not to '.*donn\uFFFDes' where it led/);
  fs.rmSync(real, { recursive: true, force: true });
});

test('the root replaced between a changed-blocks script begun early and the first listing: that script is dropped, the file lands where the listing found the root', async () => {
  const a = h.arena();
  const rel = 'data/big.bin';
  const first = crypto.randomBytes(DELTA_MIN_BYTES);
  put(a, rel, first);
  const s0 = a.session({ watch: false });
  await s0.start();
  await s0.close();
  const next = scatter(first, 4, 100_000);
  put(a, rel, next);
  const elsewhere = path.join(a.base, 'elsewhere');
  execFileSync('cp', ['-a', a.remote, elsewhere]); // the other folder: the same bytes and times
  const begin = RemoteDelta.begin.bind(RemoteDelta);
  const ready: Promise<unknown>[] = [];
  jest.spyOn(RemoteDelta, 'begin').mockImplementation((...args) => {
    const run = begin(...args);
    ready.push(run.ready.catch(() => undefined));
    return run;
  });
  const exec = Connection.prototype.exec;
  let swapped = false;
  jest.spyOn(Connection.prototype, 'exec').mockImplementation(async function (this: Connection, command, ...rest) {
    if (!swapped && command === 'sh -s' && String(rest[0]).includes('find')) {
      swapped = true;
      await Promise.all(ready); // the early script entered the old folder and hashed its copy there
      fs.renameSync(a.remote, `${a.remote}-old`);
      fs.symlinkSync(elsewhere, a.remote);
    }
    return exec.call(this, command, ...rest);
  });
  const s = a.session({ watch: false });
  await s.start();
  await s.close();
  expect(ready.length).toBeGreaterThan(0);
  expect(fs.readFileSync(path.join(elsewhere, rel)).equals(next)).toBe(true);
  expect(fs.readFileSync(path.join(`${a.remote}-old`, rel)).equals(first)).toBe(true);
});

/** The helper's process killed at its next `write` or `mkdir` request (an OOM kill, a reaper in the container). */
function helperDiesAt(what: 'write' | 'mkdir'): void {
  const real = RemoteHelper.prototype[what] as (...args: unknown[]) => Promise<unknown>;
  jest.spyOn(RemoteHelper.prototype, what).mockImplementation(function (this: RemoteHelper, ...args: unknown[]) {
    process.kill(this.pid, 'SIGKILL');
    return real.apply(this, args);
  } as never);
}

test('the helper dies at a save after the swap: what falls back to SFTP is checked, the session halts, nothing written there', async () => {
  const a = h.arena();
  writeTree(a.local, { 'keep.txt': 'mine' });
  const s = a.session({ method: 'helper' });
  const failed = failure(s);
  await s.start();
  swapRoot(a);
  helperDiesAt('write');
  changes.save(a);
  expect((await failed).message).toMatch(MOVED);
});

test.each([
  ['a file in it', { 'newd/n.txt': 'new' }],
  ['a large file beside it, by SFTP', { 'newd/n.txt': 'new', 'big.bin': 'b'.repeat(3 * 1024 * 1024) }],
])('the helper dies making a new folder after the swap (%s): the folder is not made there, the session halts', async (_, tree) => {
  const a = h.arena();
  writeTree(a.local, { 'keep.txt': 'mine' });
  const s = a.session({ method: 'helper' });
  const failed = failure(s);
  await s.start();
  const sentinel = swapRoot(a);
  helperDiesAt('mkdir');
  writeTree(a.local, tree);
  expect((await failed).message).toMatch(MOVED);
  expect(fs.existsSync(path.join(sentinel, 'newd'))).toBe(false);
});

/** A folder of the arena's base named by bytes (not UTF-8), owned by the sshd user. */
function byteFolder(a: Arena, name: Buffer): Buffer {
  const p = Buffer.concat([Buffer.from(`${a.base}/`), name]);
  fs.mkdirSync(p);
  fs.chownSync(p, h.sshd().uid, h.sshd().gid);
  return p;
}

test.each(['helper', 'sftp', 'tar'] as const)('method %s: a non-UTF-8 root swapped for a name that decodes the same (d\\xe9 -> d\\xe8): the session halts', async (method) => {
  const a = h.arena();
  const real = byteFolder(a, Buffer.from([0x64, 0xe9]));
  const other = byteFolder(a, Buffer.from([0x64, 0xe8]));
  fs.symlinkSync(real, a.remote);
  writeTree(a.local, { 'keep.txt': 'mine' });
  const s = a.session({ method });
  const failed = failure(s);
  await s.start();
  fs.unlinkSync(a.remote);
  fs.symlinkSync(other, a.remote);
  changes.save(a);
  expect((await failed).message).toMatch(/now leads/);
  expect(fs.readdirSync(other)).toEqual([]);
  fs.rmSync(real, { recursive: true, force: true });
  fs.rmSync(other, { recursive: true, force: true });
});

test.each(['helper', 'sftp', 'tar'] as const)('method %s: a non-UTF-8 root whose name ends with a newline mirrors, saves and deletes without a halt', async (method) => {
  const a = h.arena();
  const real = byteFolder(a, Buffer.from([0x64, 0xe9, 0x0a]));
  fs.symlinkSync(real, a.remote);
  writeTree(a.local, { 'keep.txt': 'mine', 'gone.txt': 'x' });
  const s = a.session({ method });
  const errors: Error[] = [];
  s.on('error', (e) => errors.push(e));
  await s.start();
  changes.save(a);
  fs.rmSync(path.join(a.local, 'gone.txt'));
  await eventually(() => (errors.length > 0 ? [errors[0].message] : a.differences()), 20_000, method);
  await s.close();
  expect(errors).toEqual([]);
  fs.rmSync(real, { recursive: true, force: true });
});
