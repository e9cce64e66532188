/**
 * The comparison by content (sync/engine/verify.ts) when the run ends or the server is odd: an abort
 * stops it and reports nothing as different (a closing session would send it); the server's tool is
 * remembered per connection (a sha1sum-only server costs one local read per file, a server with none
 * costs none); many folders above the files; a server that never answers. From the fourth review (each
 * failed before its fix). Real sshd as a non-root user.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Connection } from '../../sync/engine/transport';
import { PlanItem } from '../../sync/engine/plan';
import * as localRead from '../../sync/engine/local-read';
import { verifyByContent } from '../../sync/engine/verify';
import { WatchBackend } from '../../sync/engine/watch';
import { hashToolsOnly, remoteTree, rewriting, useArena, useConnection } from '../support/hostile';
import { writeTree } from '../support/trees';
import { SilentBackend } from '../support/watch';

jest.setTimeout(120_000);
const h = useArena();
const connect = useConnection(h.sshd);
const T = 1_600_000_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
afterEach(() => jest.restoreAllMocks());

const item = (rel: string, size: number): PlanItem => ({ rel, entry: { type: 'file', size, mtimeMs: T * 1000, mode: 0o644 } });

/** 20 small files with the same bytes on both sides. */
function twentyEqual(): { a: ReturnType<typeof h.arena>; same: string; tree: Record<string, string> } {
  const a = h.arena();
  const same = 'same bytes';
  const tree = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.txt`, same]));
  writeTree(a.local, tree);
  remoteTree(h.sshd(), a, tree);
  return { a, same, tree };
}

function counting(c: Connection, rewrite: (s: string) => string = (s) => s): { conn: Connection; cmds: string[] } {
  const cmds: string[] = [];
  return { conn: rewriting(c, (s) => (cmds.push(s), rewrite(s))), cmds };
}

test('aborted while the local side hashes (a real connection): the comparison rejects, and no later batch is asked for', async () => {
  const a = h.arena();
  const same = 'the same bytes';
  // ~1500 names of ~100 bytes: two batches of 128 KiB.
  const names = Array.from({ length: 1500 }, (_, i) => `d${i % 10}/${'n'.repeat(90)}${i}.txt`);
  const tree = Object.fromEntries(names.map((n) => [n, same]));
  writeTree(a.local, tree);
  remoteTree(h.sshd(), a, tree);
  const { conn, cmds } = counting(await connect());
  const abort = new AbortController();
  const real = localRead.readSmallSync;
  const reads = jest.spyOn(localRead, 'readSmallSync').mockImplementation((...args) => {
    if (reads.mock.calls.length === 3) abort.abort(new Error('closed'));
    return real(...args);
  });
  let outcome: string;
  try {
    const r = await verifyByContent(conn, a.local, a.remote, names.map((n) => item(n, same.length)), abort.signal);
    outcome = `resolved: ${r.same.length} same, ${r.differ.length} differ`;
  } catch (e) {
    outcome = `rejected: ${(e as Error).message}`;
  }
  expect(outcome).toBe('rejected: closed'); // it resolved with 3 same, 1,497 different (sent) and asked for both batches
  expect(cmds.length).toBe(1);
});

test('a sha1sum-only server: the local side is hashed twice by the first comparison only (the tool is remembered per connection)', async () => {
  const { a, same, tree } = twentyEqual();
  const sha1 = rewriting(await connect(), (c) => hashToolsOnly(c, 'sha1sum'));
  const reads = jest.spyOn(localRead, 'readSmallSync');
  const perCall: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = reads.mock.calls.length;
    const r = await verifyByContent(sha1, a.local, a.remote, Object.keys(tree).map((n) => item(n, same.length)));
    expect(r.same.length).toBe(20);
    perCall.push(reads.mock.calls.length - before);
  }
  expect(perCall).toEqual([40, 20, 20]); // [40, 40, 40] before
});

test('a server with no hash tool: after its first answer, no local file is read for nothing', async () => {
  const { a, same, tree } = twentyEqual();
  const none = rewriting(await connect(), (c) => hashToolsOnly(c));
  const items = Object.keys(tree).map((n) => item(n, same.length));
  expect((await verifyByContent(none, a.local, a.remote, items)).differ.length).toBe(20); // read while the server looked
  const reads = jest.spyOn(localRead, 'readSmallSync');
  expect((await verifyByContent(none, a.local, a.remote, items)).differ.length).toBe(20);
  expect(reads.mock.calls.length).toBe(0); // 20 each time before
});

test('1,200 folders above the compared files: their list (on stderr) is read whole, and every equal file is equal', async () => {
  const a = h.arena();
  const same = 'same bytes';
  const names = Array.from({ length: 1200 }, (_, i) => `${'f'.repeat(60)}${String(i).padStart(4, '0')}/x`);
  const tree = Object.fromEntries(names.map((n) => [n, same]));
  writeTree(a.local, tree);
  remoteTree(h.sshd(), a, tree);
  const r = await verifyByContent(await connect(), a.local, a.remote, names.map((n) => item(n, same.length)));
  expect([r.same.length, r.differ.length]).toEqual([1200, 0]); // [978, 222] when stderr was cut at 64 KiB
});

test('a server that never answers: the abort ends the comparison at once', async () => {
  const a = h.arena();
  const same = 'same bytes';
  writeTree(a.local, { 'f.txt': same });
  remoteTree(h.sshd(), a, { 'f.txt': same });
  const hang = rewriting(await connect(), (c) => (c.includes('for x in') ? 'sleep 20' : c));
  const abort = new AbortController();
  setTimeout(() => abort.abort(new Error('closed')), 200);
  const t0 = Date.now();
  await verifyByContent(hang, a.local, a.remote, [item('f.txt', same.length)], abort.signal).catch(() => undefined);
  expect(Date.now() - t0).toBeLessThan(5000); // 20 s (the server's sleep) before
});

test('close() during a full pass\'s comparison by content (watching): no equal file is sent again before the session closes', async () => {
  const a = h.arena();
  const files = Array.from({ length: 200 }, (_, i) => `f${i}.bin`);
  for (const f of files) {
    fs.writeFileSync(path.join(a.local, f), Buffer.alloc(64 * 1024, f));
    fs.utimesSync(path.join(a.local, f), T, T);
  }
  const s = a.session({ rescanMs: 600_000, watchTest: { factory: () => new SilentBackend() as unknown as WatchBackend } });
  await s.start();
  const ino = (): number[] => files.map((f) => fs.statSync(path.join(a.remote, f)).ino);
  const before = ino();
  await sleep(20);
  for (const f of files) fs.chmodSync(path.join(a.local, f), 0o644); // ctime moves, no event (silent backend)
  const real = localRead.readSmallSync;
  let closing: Promise<void> | undefined;
  const reads = jest.spyOn(localRead, 'readSmallSync').mockImplementation((...args) => {
    if (reads.mock.calls.length === 3) closing = s.close();
    return real(...args);
  });
  (s as unknown as { conn: { destroy(r: string): void } }).conn.destroy('test: a full pass is owed'); // reconnect -> full pass
  for (let i = 0; i < 500 && !closing; i++) await sleep(10);
  await closing;
  const after = ino();
  const rewritten = files.filter((_, i) => before[i] !== after[i]).length;
  expect(rewritten).toBe(0); // 197 before
});
