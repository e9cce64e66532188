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
import { ApplyContext, ApplyResult } from '../../sync/engine/apply';
import { applySftp } from '../../sync/engine/apply-sftp';
import { DeltaHooks, withDeltas } from '../../sync/engine/delta';
import { Plan, planBytes } from '../../sync/engine/plan';
import { Connection } from '../../sync/engine/transport';
import { Entry } from '../../sync/engine/tree';
import { CountProxy, startCountProxy } from '../support/count-proxy';
import { Arena, useArena } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { eventually } from '../support/trees';

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

let tick = 0;
/** Writes `buf` as the local file `rel` with an mtime of its own (whole seconds compare). */
function put(rel: string, buf: Buffer): string {
  const abs = path.join(a.local, rel);
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  fs.writeFileSync(abs, buf);
  const t = Math.floor(Date.now() / 1000) - 1000 + ++tick * 10;
  fs.utimesSync(abs, t, t);
  return abs;
}

/** `buf` with `count` regions of `len` random bytes at scattered offsets. */
function scatter(buf: Buffer, count: number, len: number): Buffer {
  const out = Buffer.from(buf);
  for (let i = 0; i < count; i++) crypto.randomBytes(len).copy(out, Math.floor(((i + 0.37) / count) * (out.length - len)));
  return out;
}

function leftovers(dir = a.remote): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.kubedev-')) out.push(path.join(dir, e.name));
    else if (e.isDirectory()) out.push(...leftovers(path.join(dir, e.name)));
  }
  return out;
}

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

  /** A context over a fresh connection; the remote entries are read from the remote folder itself. */
  async function context(): Promise<ApplyContext> {
    conn = await Connection.open({ host: sshd.host, port: sshd.port, user: sshd.user, identity: sshd.identity, knownHosts: sshd.knownHosts });
    const get = (rel: string): Entry | undefined => {
      try {
        const st = fs.lstatSync(path.join(a.remote, rel));
        return { type: st.isDirectory() ? 'dir' : 'file', size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 };
      } catch {
        return undefined;
      }
    };
    return { conn, localRoot: a.local, remoteRoot: a.remote, remote: { get } };
  }

  /** Sends `rel` with `hooks` between the steps; the whole-file way is SFTP. */
  async function send(rel: string, hooks: DeltaHooks): Promise<ApplyResult> {
    const ctx = await context();
    const st = fs.lstatSync(path.join(a.local, rel));
    const plan: Plan = { deletes: [], dirs: [], links: [], chmods: [], files: [{ rel, entry: { type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, exact: true } }] };
    return withDeltas(ctx, plan, (p) => applySftp(ctx, p, planBytes(p)), hooks);
  }

  async function changedFile(): Promise<{ base: Buffer; next: Buffer }> {
    const base = crypto.randomBytes(SIZE);
    put('big.bin', base);
    await pass();
    const next = scatter(base, 4, 256 * 1024);
    put('big.bin', next);
    return { base, next };
  }

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
