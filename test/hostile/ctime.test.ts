/**
 * A file's change time (ctime), which only the kernel sets, against what size and mtime cannot tell:
 * new bytes of the same size under the old mtime are sent (verify.ts compares them by content), and
 * what moves the ctime without touching the bytes (a chmod or chown to the same mode or owner, a hard
 * link made by a `cp -al` backup) sends nothing, in one-shot runs, watching, and runs served from the
 * agent's kept listing. Real sshd as a non-root user.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BatchStats } from '../../sync/engine/session-types';
import { Connection } from '../../sync/engine/transport';
import { emptyPlan, PlanItem } from '../../sync/engine/plan';
import * as localRead from '../../sync/engine/local-read';
import * as verify from '../../sync/engine/verify';
import { resolveVerify, verifyByContent } from '../../sync/engine/verify';
import { useAgentState } from '../support/agent';
import { Arena, hashToolsOnly, remoteTree, rewriting, useArena, useConnection } from '../support/hostile';
import { eventually, tempDir, writeTree } from '../support/trees';

jest.setTimeout(60_000);

const h = useArena();
const connect = useConnection(h.sshd);
const T = 1_600_000_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function once(a: Arena): Promise<BatchStats> {
  const s = a.session({ watch: false });
  try {
    return await s.start();
  } finally {
    await s.close();
  }
}

/** The number of files each comparison by content was given (the sessions' calls of resolveVerify), from now on. */
function comparisons(): number[] {
  const seen: number[] = [];
  const real = verify.resolveVerify;
  jest.spyOn(verify, 'resolveVerify').mockImplementation((conn, local, remote, plan, ...rest) => {
    if ((plan.verify?.length ?? 0) > 0) seen.push(plan.verify?.length ?? 0);
    return real(conn, local, remote, plan, ...rest);
  });
  return seen;
}

afterEach(() => jest.restoreAllMocks());

/** 20 files of 64 KiB with a fixed mtime, mirrored. */
async function mirrored(a: Arena): Promise<string[]> {
  const files = Array.from({ length: 20 }, (_, i) => `f${i}.bin`);
  for (const f of files) {
    fs.writeFileSync(path.join(a.local, f), Buffer.alloc(64 * 1024, f));
    fs.utimesSync(path.join(a.local, f), T, T);
  }
  expect((await once(a)).files).toBe(20);
  await sleep(20); // what follows changes ctimes after the pass began reading
  return files;
}

const sameBytes: Record<string, (a: Arena, files: string[]) => void> = {
  'chmod to the same mode': (a, files) => files.forEach((f) => fs.chmodSync(path.join(a.local, f), 0o644)),
  'chown to the same owner': (a, files) => files.forEach((f) => fs.chownSync(path.join(a.local, f), process.getuid?.() ?? 0, process.getgid?.() ?? 0)),
  'a cp -al backup (a hard link to each)': (a) => execFileSync('cp', ['-al', a.local, path.join(tempDir('backup'), 'copy')]),
};

describe.each(Object.keys(sameBytes))('%s (ctime moved, bytes the same)', (what) => {
  test('one-shot: nothing is sent', async () => {
    const a = h.arena();
    const files = await mirrored(a);
    sameBytes[what](a, files);
    const r = await once(a);
    expect([r.files, r.bytes]).toEqual([0, 0]);
    expect(a.differences()).toEqual([]);
    expect((await once(a)).files).toBe(0);
  });

  test('watching: nothing is sent, and a later rescan does not compare them again', async () => {
    const a = h.arena();
    const files = await mirrored(a);
    const s = a.session({ rescanMs: 300 });
    const synced: BatchStats[] = [];
    s.on('synced', (b) => synced.push(b));
    const compared = comparisons();
    await s.start();
    sameBytes[what](a, files);
    await sleep(1500); // events, then rescans
    expect(synced.reduce((n, b) => n + b.bytes, 0)).toBe(0);
    expect(compared.reduce((n, c) => n + c, 0)).toBe(20); // once each (events and rescans may split them)
    fs.writeFileSync(path.join(a.local, 'marker.txt'), 'a real change');
    await eventually(() => a.differences(), 10_000, 'the marker');
    // The batch says 'synced' once done, a moment after its file is in place.
    await eventually(() => (synced.reduce((n, b) => n + b.bytes, 0) > 0 ? [] : ['no batch reported']), 10_000, 'the batch');
    expect(synced.reduce((n, b) => n + b.bytes, 0)).toBe('a real change'.length);
    await s.close();
    // Only a full pass moves the pass clock (SessionClock, pass-clock.ts): the next run compares the 20 once
    // more (0 bytes) and sends the marker again (its mtime is after the session's full pass).
    expect([(await once(a)).bytes, compared.reduce((n, c) => n + c, 0)]).toEqual(['a real change'.length, 40]);
  });
});

describe('new bytes of the same size, the old mtime put back and the mode changed (cp -p from a file of another mode)', () => {
  const rewrite = (f: string): void => {
    fs.writeFileSync(f, 'version 2\n');
    fs.chmodSync(f, 0o755);
    fs.utimesSync(f, T, T);
  };

  test('one-shot: the bytes and the mode are sent', async () => {
    const a = h.arena();
    writeTree(a.local, { 'tool.sh': 'version 1\n' });
    fs.utimesSync(path.join(a.local, 'tool.sh'), T, T);
    await once(a);
    await sleep(20);
    rewrite(path.join(a.local, 'tool.sh'));
    expect((await once(a)).files).toBe(1);
    expect(a.differences()).toEqual([]);
    expect(fs.readFileSync(path.join(a.remote, 'tool.sh'), 'utf8')).toBe('version 2\n');
  });

  test('watching: the bytes and the mode are sent', async () => {
    const a = h.arena();
    writeTree(a.local, { 'tool.sh': 'version 1\n' });
    fs.utimesSync(path.join(a.local, 'tool.sh'), T, T);
    await a.session().start();
    rewrite(path.join(a.local, 'tool.sh'));
    await eventually(() => a.differences(), 10_000, 'version 2, mode 755');
  });
});

describe("runs served from the agent's kept listing", () => {
  const agent = useAgentState();

  async function keptOnce(a: Arena): Promise<{ files: number; walked: boolean }> {
    const before = agent.kept().counts.walks;
    const files = (await once(a)).files;
    await agent.kept().settled();
    return { files, walked: agent.kept().counts.walks > before };
  }

  test('written through a hard link from outside, mtime put back (no event): a run on the kept listing does not move the pass clock past it; the next walk sends it', async () => {
    const a = h.arena();
    const f = path.join(a.local, 'data.txt');
    fs.writeFileSync(f, 'version 1\n');
    fs.utimesSync(f, T, T);
    expect((await keptOnce(a)).files).toBe(1);
    // Within a few runs the listing is kept (the first walk of a folder never is).
    let r = await keptOnce(a);
    for (let i = 0; i < 3 && r.walked; i++) r = await keptOnce(a);
    expect(r).toEqual({ files: 0, walked: false });
    const outside = path.join(tempDir('outside'), 'same-file');
    fs.linkSync(f, outside);
    await sleep(20);
    fs.writeFileSync(outside, 'version 2\n');
    fs.utimesSync(outside, T, T);
    await sleep(200);
    expect(await keptOnce(a)).toEqual({ files: 0, walked: false }); // no event told of it: the kept gap
    fs.writeFileSync(path.join(a.local, 'other.txt'), 'an edit: the next run walks');
    const next = await keptOnce(a);
    expect(next).toEqual({ files: 2, walked: true });
    expect(fs.readFileSync(path.join(a.remote, 'data.txt'), 'utf8')).toBe('version 2\n');
  });
});

test('the comparison by content reads regular files only: a remote FIFO is not opened (nothing waits), a symlink not followed; both count as different (sent)', async () => {
  const a = h.arena();
  writeTree(a.local, { 'p.txt': 'pipe', 'l.txt': 'do not touch', 'same.txt': 'same' });
  remoteTree(h.sshd(), a, { 'same.txt': 'same' }, () => {
    execFileSync('mkfifo', [path.join(a.remote, 'p.txt')]);
    fs.symlinkSync('../sentinel/keep.txt', path.join(a.remote, 'l.txt')); // the sentinel's bytes equal the local file's
  });
  const conn = await connect();
  const item = (rel: string): PlanItem => ({ rel, entry: { type: 'file', size: fs.statSync(path.join(a.local, rel)).size, mtimeMs: T * 1000, mode: 0o644 } });
  const r = await verifyByContent(conn, a.local, a.remote, ['p.txt', 'l.txt', 'same.txt'].map(item));
  expect([r.differ.map((i) => i.rel).sort(), r.same.map((i) => i.rel)]).toEqual([['l.txt', 'p.txt'], ['same.txt']]);
});

test('the comparison by content reads no file through a symlinked folder on the server: each folder above a file must be a real one (find -type f looks at the last name only)', async () => {
  const a = h.arena();
  const same = 'the same bytes on both sides';
  writeTree(a.local, { 'd/keep.txt': same, 'a/b/c.txt': same, 'x/y/z.txt': same, 'top.txt': same });
  const elsewhere = tempDir('elsewhere');
  writeTree(elsewhere, { 'keep.txt': same, 'b/c.txt': same });
  execFileSync('chmod', ['-R', 'a+rX', elsewhere]);
  remoteTree(h.sshd(), a, { 'x/y/z.txt': same, 'top.txt': same }, () => {
    fs.symlinkSync(elsewhere, path.join(a.remote, 'd')); // the container's doing since the listing
    fs.symlinkSync(elsewhere, path.join(a.remote, 'a')); // a folder two above the file
  });
  const conn = await connect();
  const item = (rel: string): PlanItem => ({ rel, entry: { type: 'file', size: same.length, mtimeMs: T * 1000, mode: 0o644 } });
  const r = await verifyByContent(conn, a.local, a.remote, ['d/keep.txt', 'a/b/c.txt', 'x/y/z.txt', 'top.txt'].map(item));
  expect([r.differ.map((i) => i.rel).sort(), r.same.map((i) => i.rel).sort()]).toEqual([['a/b/c.txt', 'd/keep.txt'], ['top.txt', 'x/y/z.txt']]);
});

test('a server with sha1sum only: the local side, hashed the XXH3-128 way while the server worked, is hashed again its way', async () => {
  const a = h.arena();
  writeTree(a.local, { 'same.txt': 'same bytes', 'd/same.txt': 'same bytes', 'new.txt': 'new bytes!' });
  remoteTree(h.sshd(), a, { 'same.txt': 'same bytes', 'd/same.txt': 'same bytes', 'new.txt': 'old bytes!' });
  const commands: string[] = [];
  const sha1Only = rewriting(await connect(), (c) => {
    commands.push(c);
    return hashToolsOnly(c, 'sha1sum');
  });
  const item = (rel: string): PlanItem => ({ rel, entry: { type: 'file', size: 10, mtimeMs: T * 1000, mode: 0o644 } });
  const r = await verifyByContent(sha1Only, a.local, a.remote, ['same.txt', 'd/same.txt', 'new.txt'].map(item));
  expect(commands.filter((c) => c.includes('for x in xxh128sum sha1sum;'))).toHaveLength(1); // the rewrite took
  expect([r.differ.map((i) => i.rel), r.same.map((i) => i.rel).sort()]).toEqual([['new.txt'], ['d/same.txt', 'same.txt']]);
});

test("beyond the comparison's bounds (files, bytes) the files are sent: a comparison reports no progress to the stall watchdog", async () => {
  const a = h.arena();
  const files = await mirrored(a);
  const conn = await connect();
  const items = (): PlanItem[] => files.map((rel) => ({ rel, entry: { type: 'file', size: 64 * 1024, mtimeMs: T * 1000, mode: 0o644 } }));
  for (const [limits, compared] of [[{ files: 5, bytes: 1024 ** 3 }, 5], [{ files: 100, bytes: 3 * 64 * 1024 }, 3]] as const) {
    const plan = { ...emptyPlan(), verify: items() };
    const same = await resolveVerify(conn, a.local, a.remote, plan, undefined, limits);
    expect([same.length, plan.files.length, plan.verify.length]).toEqual([compared, 20 - compared, 0]);
  }
});

test('a hash line cut short (the tool died mid-line) is not read: its cut name could name another, shorter path', async () => {
  const a = h.arena();
  writeTree(a.local, { 'a/b': 'same bytes' });
  const { createXXHash128 } = await import('hash-wasm');
  const x = await createXXHash128();
  x.update('same bytes');
  // The server's output as a tool killed while it printed 'a/bc' would leave it: `./a/b` then nothing.
  const cut = { listedRoots: new Map(), exec: async () => ({ code: 0, stdout: Buffer.from(`xxh128sum\n${x.digest('hex')}  ./a/b`), stderr: './a\0' }) } as unknown as Connection;
  const r = await verifyByContent(cut, a.local, a.remote, [{ rel: 'a/b', entry: { type: 'file', size: 10, mtimeMs: T * 1000, mode: 0o644 } }]);
  expect([r.same.length, r.differ.map((i) => i.rel)]).toEqual([0, ['a/b']]);
});

test('a comparison aborted while the local side hashes stops reading: the files left are not read', async () => {
  const a = h.arena();
  const files = Array.from({ length: 400 }, (_, i) => `f${i}.bin`);
  const bytes = Buffer.alloc(256 * 1024, 7);
  for (const f of files) fs.writeFileSync(path.join(a.local, f), bytes);
  // The server never answers; the run is aborted at the third file the local side reads.
  const silent = { listedRoots: new Map(), exec: (_c: string, _in: Buffer, o: { signal?: AbortSignal }) => new Promise((_, reject) => o.signal?.addEventListener('abort', () => reject(new Error('aborted')))) } as unknown as Connection;
  const abort = new AbortController();
  const real = localRead.readSmallSync;
  const reads = jest.spyOn(localRead, 'readSmallSync').mockImplementation((...args) => {
    if (reads.mock.calls.length === 3) abort.abort();
    return real(...args);
  });
  const items = files.map((rel): PlanItem => ({ rel, entry: { type: 'file', size: bytes.length, mtimeMs: T * 1000, mode: 0o644 } }));
  await expect(verifyByContent(silent, a.local, a.remote, items, abort.signal)).rejects.toThrow('aborted');
  expect(reads.mock.calls.length).toBe(3); // all 400 (100 MB) before
});

function busyboxDir(): string {
  const d = tempDir('bb');
  for (const t of ['sh', 'find', 'xargs', 'sha1sum']) fs.symlinkSync('/usr/bin/busybox', path.join(d, t));
  execFileSync('chmod', ['755', d]);
  return d;
}

const shells: Record<string, (cmd: string, bb: string) => string> = {
  dash: (cmd) => cmd.replace(/^sh -c /, 'dash -c '),
  busybox: (cmd, bb) => `PATH=${bb}:$PATH; export PATH; exec busybox ${cmd}`,
};

describe.each(Object.keys(shells))('the comparison by content under %s', (shell) => {
  test('equal bytes under real folders are equal; a file under a symlinked folder (one or two above) differs', async () => {
    const a = h.arena();
    const same = 'the same bytes on both sides';
    const names = ['-dash/-x.txt', 'sp ace/f f.txt', 'd/keep.txt', 'a/b/c.txt', 'x/y/z.txt', 'top.txt', '-top', 'ü/ß.txt', 'q/-maxdepth', 'r/(/!.txt'];
    writeTree(a.local, Object.fromEntries(names.map((n) => [n, same])));
    const elsewhere = tempDir('elsewhere');
    writeTree(elsewhere, { 'keep.txt': same, 'b/c.txt': same });
    execFileSync('chmod', ['-R', 'a+rX', elsewhere]);
    const real = names.filter((n) => !n.startsWith('d/') && !n.startsWith('a/'));
    remoteTree(h.sshd(), a, Object.fromEntries(real.map((n) => [n, same])), () => {
      fs.symlinkSync(elsewhere, path.join(a.remote, 'd'));
      fs.symlinkSync(elsewhere, path.join(a.remote, 'a'));
    });
    const bb = busyboxDir();
    const conn = rewriting(await connect(), (c) => shells[shell](hashToolsOnly(c, 'sha1sum'), bb));
    const item = (rel: string): PlanItem => ({ rel, entry: { type: 'file', size: same.length, mtimeMs: T * 1000, mode: 0o644 } });
    const r = await verifyByContent(conn, a.local, a.remote, names.map(item));
    expect([r.differ.map((i) => i.rel).sort(), r.same.map((i) => i.rel).sort()]).toEqual([['a/b/c.txt', 'd/keep.txt'], real.sort()]);
  });
});

test('a folder swapped for a symlink while the hash tool works on an earlier file: its file is not taken as equal (the folders are looked at again after the hashing)', async () => {
  const a = h.arena();
  const local = 'the local bytes, 25 long'; // elsewhere/keep.txt holds these too
  const old = 'the remote, not the same';
  writeTree(a.local, { 'd/keep.txt': local });
  const big = (root: string): void => {
    const fd = fs.openSync(path.join(root, 'big.bin'), 'w');
    fs.ftruncateSync(fd, 20 * 1024 ** 3); // sparse: xxh128sum reads zeros for a second or so
    fs.closeSync(fd);
  };
  fs.writeFileSync(path.join(a.local, 'big.bin'), 'x'); // the local side need not hash it (it differs anyway)
  const elsewhere = tempDir('elsewhere');
  writeTree(elsewhere, { 'keep.txt': local });
  execFileSync('chmod', ['-R', 'a+rX', elsewhere]);
  remoteTree(h.sshd(), a, { 'd/keep.txt': old }, () => big(a.remote));
  const conn = await connect();
  const item = (rel: string, size: number): PlanItem => ({ rel, entry: { type: 'file', size, mtimeMs: T * 1000, mode: 0o644 } });
  const asked = verifyByContent(conn, a.local, a.remote, [item('big.bin', 20 * 1024 ** 3), item('d/keep.txt', local.length)]);
  // The container's doing: once the server's xxh128sum runs (the folder check is done), d becomes a symlink.
  const uid = String(h.sshd().uid);
  for (let i = 0; i < 200; i++) {
    try {
      execFileSync('pgrep', ['-u', uid, '-x', 'xxh128sum']);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  fs.renameSync(path.join(a.remote, 'd'), path.join(a.remote, 'd.real'));
  fs.symlinkSync(elsewhere, path.join(a.remote, 'd'));
  const r = await asked;
  expect(r.differ.map((i) => i.rel)).toContain('d/keep.txt');
});
