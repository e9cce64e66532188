/**
 * Changed-blocks transfer of large files (issue 13) against the sidecar's sshd run by a non-root user:
 * the remote ends byte-equal after scattered changes, growth, shrinking and an insertion, with the bytes
 * on the wire counted by a proxy; a remote copy changed between hashing and rename, a local file cut
 * while it is sent, a copy that cannot be written (a full disk), odd names, read-only files and folders
 * never leave a wrong or half file in place; mode and mtime arrive with the content.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplyResult } from '../../sync/engine/apply';
import { DeltaHooks } from '../../sync/engine/delta';
import { RemoteDelta } from '../../sync/engine/delta-remote';
import { Connection } from '../../sync/engine/transport';
import { CountProxy, startCountProxy } from '../support/count-proxy';
import { deltaContext, leftovers as leftoversIn, put as putFile, scatter, sendOne } from '../support/delta';
import { Arena, useArena } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { eventually, nextEvent } from '../support/trees';

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
const SIZE = 32 * MiB;

const h = useArena();
let sshd: Sshd;
let a: Arena;
let proxy: CountProxy;
beforeAll(async () => {
  proxy = await startCountProxy(h.sshd());
});
afterAll(async () => {
  await proxy.close();
});
beforeEach(() => {
  sshd = h.sshd();
  a = h.arena();
});

/** Runs one mirror pass through the counting proxy; returns the bytes the runner sent and received. */
async function pass(): Promise<{ sent: number; received: number }> {
  proxy.reset();
  const s = a.session({ watch: false, port: proxy.port, knownHosts: proxy.knownHosts });
  await s.start();
  await s.close();
  return { sent: proxy.sent(), received: proxy.received() };
}

const put = (rel: string, buf: Buffer): string => putFile(a, rel, buf);
const leftovers = (dir = a.remote): string[] => leftoversIn(dir);

async function settled(): Promise<void> {
  await eventually(() => leftovers(), 5000, 'temporary files removed');
  expect(a.differences()).toEqual([]);
}

describe('byte-equal, with few bytes on the wire', () => {
  test('4 scattered changes of 256 KiB in 32 MiB: under 5 % of the file sent', async () => {
    const base = crypto.randomBytes(SIZE);
    put('big.bin', base);
    await pass();
    const abs = put('big.bin', scatter(base, 4, 256 * 1024));
    const w = await pass();
    await settled();
    expect(w.sent).toBeLessThan(0.05 * SIZE);
    expect(w.received).toBeLessThan(0.01 * SIZE);
    expect(Math.floor(fs.statSync(path.join(a.remote, 'big.bin')).mtimeMs / 1000)).toBe(Math.floor(fs.statSync(abs).mtimeMs / 1000));
  });

  test('a read-only file (0444) with 100 scattered changes: the ranges joined (a dd each on the server), byte-equal, mode and mtime kept', async () => {
    const base = crypto.randomBytes(SIZE);
    fs.chmodSync(put('ro.bin', base), 0o444);
    await pass();
    const abs = path.join(a.local, 'ro.bin');
    fs.chmodSync(abs, 0o644);
    put('ro.bin', scatter(base, 100, 100));
    fs.chmodSync(abs, 0o444);
    const w = await pass();
    await settled();
    expect(w.sent).toBeLessThan(0.7 * SIZE); // changed blocks, not the whole file
    expect(fs.statSync(path.join(a.remote, 'ro.bin')).mode & 0o777).toBe(0o444);
    expect(Math.floor(fs.statSync(path.join(a.remote, 'ro.bin')).mtimeMs / 1000)).toBe(Math.floor(fs.statSync(abs).mtimeMs / 1000));
  });

  test('grown by 3 MiB with a change inside, then shrunk to 20 MiB', async () => {
    const base = crypto.randomBytes(SIZE);
    put('big.bin', base);
    await pass();
    const grown = Buffer.concat([scatter(base, 1, 1000), crypto.randomBytes(3 * MiB + 123)]);
    put('big.bin', grown);
    const g = await pass();
    await settled();
    expect(g.sent).toBeLessThan(3 * MiB + 0.02 * SIZE);
    put('big.bin', grown.subarray(0, 20 * MiB + 5));
    const s = await pass();
    await settled();
    expect(s.sent).toBeLessThan(0.01 * SIZE);
  });

  test('a remote copy over twice the local size (the container kept writing it): sent whole', async () => {
    const local = crypto.randomBytes(17 * MiB);
    put('log.bin', local);
    await pass();
    // The container appends 24 MiB: the remote copy is 41 MiB, its first 17 MiB the local file's.
    fs.appendFileSync(path.join(a.remote, 'log.bin'), crypto.randomBytes(24 * MiB));
    put('log.bin', scatter(local, 1, 1000));
    const w = await pass();
    await settled();
    expect(w.sent).toBeGreaterThan(17 * MiB); // whole, not changed blocks
  });

  test('100 bytes inserted at 8 MiB: byte-equal; fixed blocks send everything after the insertion', async () => {
    const base = crypto.randomBytes(SIZE);
    put('big.bin', base);
    await pass();
    put('big.bin', Buffer.concat([base.subarray(0, 8 * MiB), crypto.randomBytes(100), base.subarray(8 * MiB)]));
    const w = await pass();
    await settled();
    // 24 MiB after the insertion differ at fixed offsets: sent, and no more than the whole file.
    expect(w.sent).toBeGreaterThan(24 * MiB);
    expect(w.sent).toBeLessThan(1.03 * SIZE);
  });

  test("an odd name (spaces, newline, leading dash, quotes) in a read-only folder", async () => {
    const rel = `-ro dir 'q'/-a b\n"c" 'd'.bin`;
    const base = crypto.randomBytes(SIZE);
    put(rel, base);
    fs.chmodSync(path.join(a.local, path.dirname(rel)), 0o555);
    await pass();
    expect(fs.statSync(path.join(a.remote, path.dirname(rel))).mode & 0o777).toBe(0o555);
    put(rel, scatter(base, 2, 100_000));
    const w = await pass();
    await settled();
    expect(w.sent).toBeLessThan(0.05 * SIZE);
    expect(fs.statSync(path.join(a.remote, path.dirname(rel))).mode & 0o777).toBe(0o555);
  });
});

describe('never a wrong or half file in place', () => {
  let conn: Connection;
  afterEach(async () => {
    await conn?.close();
  });

  /** Sends `rel` with `hooks` between the steps, over a fresh connection; the whole-file way is SFTP. */
  async function send(rel: string, hooks: DeltaHooks): Promise<ApplyResult> {
    const ctx = await deltaContext(sshd, a);
    conn = ctx.conn;
    return sendOne(ctx, rel, hooks);
  }

  async function changedFile(): Promise<{ base: Buffer; next: Buffer }> {
    const base = crypto.randomBytes(SIZE);
    put('big.bin', base);
    await pass();
    const next = scatter(base, 4, 256 * 1024);
    put('big.bin', next);
    return { base, next };
  }

  test("the server hashes blocks with XXH3-128 where it has xxh128sum (the sidecar's), else with SHA-1: byte-equal either way, under 5 % sent", async () => {
    for (const kinds of [undefined, ['sha1' as const]]) {
      const { next } = await changedFile();
      let kind: string | undefined;
      let bytes = 0;
      const ctx = await deltaContext(sshd, a, { onBytes: (n) => (bytes += n) });
      conn = ctx.conn;
      const res = await sendOne(ctx, 'big.bin', { kinds, afterPrepare: (r) => void (kind = r.kind) });
      await conn.close();
      expect(res.unsent).toEqual([]);
      if (kinds === undefined && kind !== 'xxh128') throw new Error(`the server hashed with ${kind}: 'xxh128sum' is needed on this machine for this test; install it with 'apt-get install -y xxhash'`);
      expect(kind).toBe(kinds?.[0] ?? 'xxh128');
      expect(bytes).toBeLessThan(0.05 * SIZE);
      await settled();
      expect(fs.readFileSync(path.join(a.remote, 'big.bin')).equals(next)).toBe(true);
    }
  });

  test('the temporary copy modified after hashing: the check catches it, the file is sent whole', async () => {
    await changedFile();
    let verified = false;
    const res = await send('big.bin', {
      beforeCommit: (p) => {
        const fd = fs.openSync(p.temp, 'r+');
        fs.writeSync(fd, Buffer.from('tampered'), 0, 8, 1000); // a block the runner thinks is equal
        fs.closeSync(fd);
      },
      onFallback: (why) => {
        verified = /verify/.test(why);
      },
    });
    expect(verified).toBe(true);
    expect(res.unsent).toEqual([]);
    await settled();
  });

  test('the remote file itself changed between hashing and rename: not overwritten by the copy, sent whole', async () => {
    await changedFile();
    let why = '';
    await send('big.bin', {
      afterPrepare: () => fs.appendFileSync(path.join(a.remote, 'big.bin'), 'written in the container'),
      onFallback: (w) => {
        why = w;
      },
    });
    expect(why).toMatch(/remote-changed/);
    await settled();
  });

  test('the local file truncated mid-send: the remote keeps its old bytes, nothing left behind', async () => {
    const { base } = await changedFile();
    const res = await send('big.bin', { afterPrepare: () => fs.truncateSync(path.join(a.local, 'big.bin'), 4 * MiB) });
    expect(res.unsent).toEqual(['big.bin']);
    expect(res.changed).toEqual(['big.bin']);
    await eventually(() => leftovers(), 5000, 'temporary files removed');
    expect(fs.readFileSync(path.join(a.remote, 'big.bin')).equals(base)).toBe(true);
  });

  test('a changed block of the local file rewritten after hashing, size and mtime kept: not put in place', async () => {
    const { base } = await changedFile();
    const abs = path.join(a.local, 'big.bin');
    const res = await send('big.bin', {
      afterPrepare: () => {
        const st = fs.statSync(abs);
        const fd = fs.openSync(abs, 'r+');
        fs.writeSync(fd, crypto.randomBytes(10), 0, 10, Math.floor((0.37 / 4) * (SIZE - 256 * 1024)) + 1000); // inside the first change
        fs.closeSync(fd);
        fs.utimesSync(abs, st.atime, st.mtime);
      },
    });
    expect(res.unsent).toEqual(['big.bin']);
    expect(res.changed).toEqual(['big.bin']);
    await eventually(() => leftovers(), 5000, 'temporary files removed');
    expect(fs.readFileSync(path.join(a.remote, 'big.bin')).equals(base)).toBe(true);
  });

  test('the local file edited just before the rename: not put in place', async () => {
    const { base } = await changedFile();
    const res = await send('big.bin', { beforeCommit: () => fs.utimesSync(path.join(a.local, 'big.bin'), 12345, 12345) });
    expect(res.changed).toEqual(['big.bin']);
    await eventually(() => leftovers(), 5000, 'temporary files removed');
    expect(fs.readFileSync(path.join(a.remote, 'big.bin')).equals(base)).toBe(true);
  });

  test('the copy cannot be written (a full disk, say): the server says so, the file is sent whole', async () => {
    await changedFile();
    let why = '';
    const res = await send('big.bin', {
      afterPrepare: (p) => fs.chmodSync(p.temp, 0o444), // the server user's dd now fails as a full disk would
      onFallback: (w) => (why = w),
    });
    expect(why).toMatch(/write/);
    expect(res.unsent).toEqual([]);
    await settled();
  });

  test('a remote copy the server user cannot read: sent whole', async () => {
    await changedFile();
    fs.chmodSync(path.join(a.remote, 'big.bin'), 0o000);
    let why = '';
    await send('big.bin', { onFallback: (w) => (why = w) });
    expect(why).toMatch(/could not copy/);
    await settled();
  });
});

test('watching: a remote copy the container grew past twice the local size since the last batch goes whole (the server refuses it, the index is old)', async () => {
  const local = crypto.randomBytes(17 * MiB);
  put('log.bin', local);
  const s = a.session({ port: proxy.port, knownHosts: proxy.knownHosts });
  try {
    await s.start();
    fs.appendFileSync(path.join(a.remote, 'log.bin'), crypto.randomBytes(24 * MiB)); // 41 MiB now
    proxy.reset();
    const synced = nextEvent(s, 'synced', 20_000);
    put('log.bin', scatter(local, 1, 1000));
    await synced;
    await settled();
    expect(proxy.sent()).toBeGreaterThan(17 * MiB); // whole: no copy of the 41 MiB was made to patch
  } finally {
    await s.close();
  }
});

describe('the server quiet while it copies and checks a large file', () => {
  test('3 s without a word at the commit of a 32 MiB file, with a 1.5 s stall limit: no stall, the file goes by changed blocks', async () => {
    // The server prints nothing while it finishes its copy and checks it whole (a 4 GiB file: 5.8 s of
    // quiet). The watchdog allows that step more quiet, as long as the file: here 1.5 s + 3.4 s.
    const base = crypto.randomBytes(SIZE);
    put('big.bin', base);
    const s = a.session({ stallMs: 1_500, port: proxy.port, knownHosts: proxy.knownHosts });
    const warnings: string[] = [];
    s.on('warning', (m) => warnings.push(m));
    await s.start();
    const commit = RemoteDelta.prototype.commit;
    let paused = 0;
    jest.spyOn(RemoteDelta.prototype, 'commit').mockImplementation(function (this: RemoteDelta, ...args: Parameters<RemoteDelta['commit']>) {
      paused = sshd.signalSessions('SIGSTOP');
      setTimeout(() => sshd.signalSessions('SIGCONT'), 3_000);
      return commit.apply(this, args);
    });
    try {
      proxy.reset();
      const synced = nextEvent(s, 'synced', 20_000);
      put('big.bin', scatter(base, 4, 1000));
      await synced;
      await settled();
      expect(paused).toBeGreaterThan(0);
      expect(warnings).toEqual([]);
      expect(proxy.sent()).toBeLessThan(0.05 * SIZE);
    } finally {
      sshd.signalSessions('SIGCONT');
      jest.restoreAllMocks();
      await s.close();
    }
  });

  test('two large files at once: the quiet one file may take is not cut short by the other naming its steps', async () => {
    const A = crypto.randomBytes(SIZE);
    const B = crypto.randomBytes(17 * MiB);
    put('a.bin', A);
    put('b.bin', B);
    const s = a.session({ stallMs: 1_500 });
    const warnings: string[] = [];
    s.on('warning', (m) => warnings.push(m));
    await s.start();
    let aInCommit!: () => void;
    const aCommitting = new Promise<void>((resolve) => (aInCommit = resolve));
    const commit = RemoteDelta.prototype.commit;
    const send = RemoteDelta.prototype.send;
    // B's steps come while A's commit is quiet (4.2 s: a slow server checking 32 MiB; its allowance is
    // 1.5 s + 6.7 s, B's 1.5 s + 3.6 s).
    jest.spyOn(RemoteDelta.prototype, 'send').mockImplementation(async function (this: RemoteDelta, ...args: Parameters<RemoteDelta['send']>) {
      if (this.rel === 'b.bin') await aCommitting;
      return send.apply(this, args);
    });
    jest.spyOn(RemoteDelta.prototype, 'commit').mockImplementation(async function (this: RemoteDelta, ...args: Parameters<RemoteDelta['commit']>) {
      if (this.rel === 'a.bin') {
        aInCommit();
        await new Promise((resolve) => setTimeout(resolve, 4_200));
      }
      return commit.apply(this, args);
    });
    try {
      const synced = nextEvent(s, 'synced', 30_000);
      put('a.bin', scatter(A, 4, 1000));
      put('b.bin', scatter(B, 4, 1000));
      await synced;
      await settled();
      expect(warnings.filter((w) => /no progress/.test(w))).toEqual([]);
    } finally {
      jest.restoreAllMocks();
      await s.close();
    }
  });
});
