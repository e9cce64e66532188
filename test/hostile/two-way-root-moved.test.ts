/**
 * Two-way mode's own remote scripts and the remote root replaced by a symlink between a pass's listing
 * and its pulls or guards (`mv /workspace /old; ln -s /elsewhere /workspace`): the pull's tar, its
 * "still as listed" look and the push guards enter the root where the listing found it
 * (remote-place.ts), or exit having read, linked or removed nothing, and the pass halts naming both
 * places. Before, each followed the link: the guards were linked (a write) in the other folder, and a
 * file there with the listed size, mtime and mode was read and taken for the listed one. The other
 * folder is the arena's sentinel, checked untouched after each test. Real sshd as a non-root user.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RemoteRootMovedError } from '../../sync/engine/remote-place';
import { Connection } from '../../sync/engine/transport';
import { Fetched, dropFetched } from '../../sync/engine/two-way/local-write';
import { pullFilesTar, TarStandby } from '../../sync/engine/two-way/pull-bulk';
import { guardOverwrites } from '../../sync/engine/two-way/remote-guard';
import { RemoteRun, stillAsListed } from '../../sync/engine/two-way/remote-list';
import { Sig } from '../../sync/engine/two-way/state-store';
import { Arena, remoteTree, useArena, useConnection } from '../support/hostile';

jest.setTimeout(60_000);

const h = useArena();
const connect = useConnection(h.sshd);

const MOVED = /^remote folder '.*\/ws' now leads to '.*\/sentinel' on the server, not to '.*\/ws' where it led when it was listed/;

/**
 * The root listed (its place kept on the connection, as a pass's listing does), then replaced by a
 * symlink to the sentinel; `keep.txt` is in both. The tests list it with the sentinel's stat: a copy
 * as the listing would have found it, the one case the per-file checks could not tell apart.
 */
async function swappedAfterListing(a: Arena): Promise<{ conn: Connection; run: RemoteRun }> {
  remoteTree(h.sshd(), a, { 'keep.txt': 'the root' });
  const conn = await connect();
  conn.listedRoots.set(a.remote, Buffer.from(fs.realpathSync(a.remote)));
  fs.renameSync(a.remote, `${a.remote}-old`);
  fs.symlinkSync(path.join(a.base, 'sentinel'), a.remote);
  return { conn, run: (command) => conn.exec('sh -s', command) };
}

test("the 'still as listed' look after a pull: the pass halts, the other folder's file is not taken for the listed one", async () => {
  const a = h.arena();
  const { conn, run } = await swappedAfterListing(a);
  // As the look compares them: the stat it prints, whatever the listing said (here: the sentinel's own).
  const printed = await run(`find ${path.join(a.base, 'sentinel', 'keep.txt')} -maxdepth 0 -printf '%s %T@ %m'`);
  const [s, t, m] = printed.stdout.toString().split(' ');
  const listed = (): Sig => ({ t: 'f', s: Number(s), m: Number(t) * 1000, p: parseInt(m, 8) });
  await expect(stillAsListed(run, a.remote, ['keep.txt'], listed, conn.listedRoots.get(a.remote))).rejects.toThrow(MOVED);
  await expect(stillAsListed(run, a.remote, ['keep.txt'], listed, conn.listedRoots.get(a.remote))).rejects.toBeInstanceOf(RemoteRootMovedError);
});

test('the guards before a push: the pass halts, no guard is linked in the other folder', async () => {
  const a = h.arena();
  const { conn, run } = await swappedAfterListing(a);
  const st = fs.statSync(path.join(a.base, 'sentinel', 'keep.txt'));
  const listed = () => ({ type: 'file' as const, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 });
  await expect(guardOverwrites(run, a.remote, ['keep.txt'], listed, conn.listedRoots.get(a.remote))).rejects.toThrow(MOVED);
  expect(fs.readdirSync(path.join(a.base, 'sentinel')).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
});

/**
 * A pull's `tar -c` channel opened ahead while the root (holding `tree`) was listed where it is; then
 * `swap` moves it, and `rel` (of `size` bytes) is fetched through that standby: what came, as `rel: bytes`.
 */
async function pullAfter(a: Arena, tree: Record<string, string>, swap: (conn: Connection) => void, rel: string, size: number): Promise<{ got: string[]; failed: unknown[] }> {
  remoteTree(h.sshd(), a, tree);
  const conn = await connect();
  conn.listedRoots.set(a.remote, Buffer.from(fs.realpathSync(a.remote)));
  const standby = new TarStandby(conn, a.remote);
  standby.warm(); // its channel waits for its line
  const got: Fetched[] = [];
  const failed: unknown[] = [];
  try {
    await new Promise((r) => setTimeout(r, 200));
    swap(conn);
    const r: Sig = { t: 'f', s: size, m: 0, p: 0o644 };
    await pullFilesTar(conn, () => standby.take(), a.local, [{ rel, r }], (f) => got.push(f), (_, e) => failed.push(e), a.remote);
    return { got: got.map((f) => `${f.rel}: ${fs.readFileSync(f.tmp, 'utf8')}`), failed };
  } finally {
    standby.close();
    for (const f of got) dropFetched(f);
  }
}

test("the pull's tar (opened ahead, before the swap): the pass halts, nothing of the other folder is fetched", async () => {
  const a = h.arena();
  const swap = (): void => {
    fs.renameSync(a.remote, `${a.remote}-old`);
    fs.symlinkSync(path.join(a.base, 'sentinel'), a.remote);
  };
  await expect(pullAfter(a, { 'keep.txt': 'the root' }, swap, 'keep.txt', 12)).rejects.toThrow(MOVED);
  expect(fs.readdirSync(a.local)).toEqual([]); // no temporary file of the sentinel's bytes either
});

test('a channel opened for an earlier place is not used: the next pull enters the root where the last listing found it', async () => {
  const a = h.arena();
  // The root moved with its contents and a link left in its place: the same folder (dev:ino), listed again there.
  const swap = (conn: Connection): void => {
    fs.renameSync(a.remote, `${a.remote}-real`);
    fs.symlinkSync(`${a.remote}-real`, a.remote);
    conn.listedRoots.set(a.remote, Buffer.from(fs.realpathSync(a.remote)));
  };
  expect(await pullAfter(a, { 'f.txt': 'moved along' }, swap, 'f.txt', 11)).toEqual({ got: ['f.txt: moved along'], failed: [] });
});
