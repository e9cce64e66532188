/**
 * Two-way sync, every classification cell, against a real sshd run by a non-root user: each pass is a
 * fresh session (so the ancestor is read back from the state file: a restart between every change),
 * trees compared byte for byte, the sentinel beside the remote root untouched (useArena).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useArena } from './support/hostile';
import { snapshot, writeTree } from './support/trees';
import { pass, remote, stateFileOf } from './support/two-way';
import { conflictCopyName } from '../sync/engine/two-way/local-write';
import { Agreed, StateStore } from '../sync/engine/two-way/state-store';

jest.setTimeout(30_000);
const { sshd, arena } = useArena();
const conflictCopy = (rel: string): boolean => /\.conflict-remote-\d{8}-\d{6}/.test(rel);
const same = (): string[] => arena().differences(conflictCopy);
const read = (rel: string): string => fs.readFileSync(path.join(arena().local, rel), 'utf8');
const rread = (rel: string): string => fs.readFileSync(path.join(arena().remote, rel), 'utf8');

test('first pass: local-only pushed, remote-only pulled (mode kept), equal on both agreed', async () => {
  const a = arena();
  writeTree(a.local, { 'l.txt': 'local', 'both.txt': 'same', 'dir/l2.txt': 'l2' });
  remote(sshd(), a, "printf remote > r.txt && printf same > both.txt && mkdir -p gen && printf '#!/bin/sh\\n' > gen/run.sh && chmod 755 gen/run.sh");
  fs.utimesSync(path.join(a.local, 'both.txt'), fs.statSync(path.join(a.remote, 'both.txt')).atime, fs.statSync(path.join(a.remote, 'both.txt')).mtime);
  const r = await pass(sshd(), a);
  expect(r.conflicts).toEqual([]);
  expect(same()).toEqual([]);
  expect(fs.statSync(path.join(a.local, 'gen/run.sh')).mode & 0o777).toBe(0o755);
  expect(read('r.txt')).toBe('remote');
});

test('one-sided changes win, deletions included; echoes of the runner\'s own writes are not changes', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c', 'd.txt': 'd', 'sub/x.txt': 'x' });
  await pass(sshd(), a);
  expect(same()).toEqual([]);
  fs.writeFileSync(path.join(a.local, 'a.txt'), 'a edited locally');
  fs.rmSync(path.join(a.local, 'b.txt'));
  remote(sshd(), a, 'printf "c edited remotely" > c.txt && rm d.txt && chmod 700 sub/x.txt');
  const r = await pass(sshd(), a);
  expect(r.conflicts).toEqual([]);
  expect(same()).toEqual([]);
  expect(rread('a.txt')).toBe('a edited locally');
  expect(read('c.txt')).toBe('c edited remotely');
  expect(fs.existsSync(path.join(a.remote, 'b.txt'))).toBe(false);
  expect(fs.existsSync(path.join(a.local, 'd.txt'))).toBe(false);
  expect(fs.statSync(path.join(a.local, 'sub/x.txt')).mode & 0o777).toBe(0o700);
  // A pass with nothing changed changes nothing (what it wrote is what the ancestor says).
  const before = [snapshot(a.local), snapshot(a.remote)];
  await pass(sshd(), a);
  expect([snapshot(a.local), snapshot(a.remote)]).toEqual(before);
});

test("both changed, a name near the longest a file system takes: the conflict copy's name is cut to fit, both versions kept", async () => {
  const a = arena();
  const rel = `${'n'.repeat(120)}${'ü'.repeat(60)}.json`; // 245 bytes
  writeTree(a.local, { [rel]: 'v1' });
  await pass(sshd(), a);
  fs.writeFileSync(path.join(a.local, rel), 'local v2');
  remote(sshd(), a, `printf 'remote v2' > '${rel}'`);
  const r = await pass(sshd(), a);
  expect(r.warnings).toEqual([]);
  expect(r.conflicts.map((c) => c.rel)).toEqual([rel]);
  const copy = r.conflicts[0].copy as string;
  expect(Buffer.byteLength(copy)).toBeLessThanOrEqual(255 - 6);
  expect(copy).toMatch(/^n{120}ü+\.conflict-remote-\d{8}-\d{6}\.json$/);
  expect(read(rel)).toBe('local v2');
  expect(read(copy)).toBe('remote v2');
  // The container's own copy (a guard's, `.conflict-container-`, plus a counter) fits too.
  const container = conflictCopyName(rel).replace('.conflict-remote-', '.conflict-container-');
  expect(Buffer.byteLength(`${container}-99999`)).toBeLessThanOrEqual(255);
});

test('both deleted: gone; both changed alike: agreed, no conflict', async () => {
  const a = arena();
  writeTree(a.local, { 'gone.txt': 'g', 'alike.txt': 'old', 'keep.txt': 'k' });
  await pass(sshd(), a);
  fs.rmSync(path.join(a.local, 'gone.txt'));
  fs.writeFileSync(path.join(a.local, 'alike.txt'), 'new');
  remote(sshd(), a, 'rm gone.txt && printf new > alike.txt');
  const r = await pass(sshd(), a);
  expect(r.conflicts).toEqual([]);
  expect(same()).toEqual([]);
  expect(read('alike.txt')).toBe('new');
  expect(fs.readdirSync(a.local).filter((n) => conflictCopy(n))).toEqual([]);
});

test('both changed: a conflict keeps both versions, local untouched, reported once', async () => {
  const a = arena();
  writeTree(a.local, { 'pkg.json': 'v1', 'other.txt': 'o' });
  await pass(sshd(), a);
  fs.writeFileSync(path.join(a.local, 'pkg.json'), 'local v2');
  remote(sshd(), a, 'printf "remote v2!" > pkg.json');
  const r = await pass(sshd(), a);
  expect(r.conflicts.map((c) => [c.rel, c.why])).toEqual([['pkg.json', 'changed on both sides']]);
  const copy = r.conflicts[0].copy as string;
  expect(copy).toMatch(/^pkg\.conflict-remote-\d{8}-\d{6}\.json$/);
  expect(read('pkg.json')).toBe('local v2');
  expect(read(copy)).toBe('remote v2!');
  expect(rread('pkg.json')).toBe('remote v2!');
  expect(fs.existsSync(path.join(a.remote, copy))).toBe(false); // copies are never sent
  // Still in conflict: not reported again, nothing written.
  const again = await pass(sshd(), a);
  expect(again.conflicts).toEqual([]);
  expect(read('pkg.json')).toBe('local v2');
  expect(rread('pkg.json')).toBe('remote v2!');
  // A new remote version is a new conflict with its own copy; the first copy stays.
  remote(sshd(), a, 'printf "remote v3" > pkg.json');
  const third = await pass(sshd(), a);
  expect(third.conflicts).toHaveLength(1);
  expect(read(copy)).toBe('remote v2!');
});

test('a laptop file rewritten with the same bytes (a touch, a save without changes) while the container changed it: the container version comes, no conflict', async () => {
  const a = arena();
  remote(sshd(), a, 'printf "generated v1" > gen.ts && printf "generated v1" > same-size.ts && printf "generated v1" > mode.ts');
  await pass(sshd(), a); // pulled: the ancestor records the bytes' hash
  await pass(sshd(), a); // a pass with nothing changed keeps it
  const later = new Date(Date.now() + 5_000);
  fs.utimesSync(path.join(a.local, 'gen.ts'), later, later); // the same bytes, another mtime
  fs.writeFileSync(path.join(a.local, 'same-size.ts'), 'generated v2'); // other bytes, the same size
  fs.utimesSync(path.join(a.local, 'same-size.ts'), later, later);
  fs.chmodSync(path.join(a.local, 'mode.ts'), 0o755); // the same bytes, another mode: a change
  remote(sshd(), a, 'printf "generated v3!" > gen.ts && printf "generated v3!" > same-size.ts && printf "generated v3!" > mode.ts');
  const r = await pass(sshd(), a);
  expect(r.conflicts.map((c) => c.rel).sort()).toEqual(['mode.ts', 'same-size.ts']);
  expect(read('gen.ts')).toBe('generated v3!');
  expect(read('same-size.ts')).toBe('generated v2');
  expect(Object.keys(snapshot(a.local)).filter((rel) => rel.startsWith('gen.'))).toEqual(['gen.ts']);
  const again = await pass(sshd(), a);
  expect(again.conflicts).toEqual([]);
  expect(read('gen.ts')).toBe('generated v3!');
});

test("a laptop file rewritten with other bytes of the same size and its mtime put back (cp -p, rsync -t) is a change: pushed, or a conflict when the container changed it too, never pulled over", async () => {
  const a = arena();
  const T = 1_700_000_000;
  // pulled.ts came from the container (the ancestor knows its bytes); pushed.ts from the laptop (it does not).
  remote(sshd(), a, `printf "container v1" > pulled.ts && touch -d @${T} pulled.ts`);
  writeTree(a.local, { 'pushed.ts': 'laptop v1!!!', 'quiet.ts': 'laptop v1!!!', 'kept.ts': 'laptop v1!!!' });
  for (const n of ['pushed.ts', 'quiet.ts', 'kept.ts']) fs.utimesSync(path.join(a.local, n), T, T);
  await pass(sshd(), a);
  await new Promise((r) => setTimeout(r, 20)); // a later ctime than the pass's
  const rewrite = (rel: string, bytes: string): void => {
    fs.writeFileSync(path.join(a.local, rel), bytes);
    fs.utimesSync(path.join(a.local, rel), T, T); // size, mtime and mode as before
  };
  rewrite('pulled.ts', 'laptop v2!!!');
  rewrite('pushed.ts', 'laptop v2!!!');
  rewrite('kept.ts', 'laptop v2!!!');
  remote(sshd(), a, 'printf "container v2" > pulled.ts && printf "container v2" > pushed.ts');
  const r = await pass(sshd(), a);
  expect(r.conflicts.map((c) => c.rel).sort()).toEqual(['pulled.ts', 'pushed.ts']);
  expect([read('pulled.ts'), read('pushed.ts')]).toEqual(['laptop v2!!!', 'laptop v2!!!']);
  expect(read(r.conflicts.find((c) => c.rel === 'pulled.ts')?.copy as string)).toBe('container v2');
  // The container left kept.ts alone: the laptop's rewrite is sent.
  expect(rread('kept.ts')).toBe('laptop v2!!!');
  // A chmod to the same mode moves only the ctime: quiet.ts (sent by the laptop: no hash to read it
  // against) goes again, the same bytes; no conflict, nothing different in the container.
  fs.chmodSync(path.join(a.local, 'quiet.ts'), 0o644);
  const again = await pass(sshd(), a);
  expect(again.conflicts).toEqual([]);
  expect(rread('quiet.ts')).toBe('laptop v1!!!');
});

test('an ancestor saved before ctimes were kept keeps its content hashes through the first pass after (a touched file still reads as unchanged)', async () => {
  const a = arena();
  const s = sshd();
  remote(s, a, 'printf "generated v1" > gen.ts');
  await pass(s, a); // pulled: the ancestor records the bytes' hash
  const open = (): StateStore => new StateStore(stateFileOf(a), { host: s.host, port: s.port, remoteRoot: a.remote, localRoot: a.local });
  const old = open();
  const was = old.agreed('gen.ts') as Agreed;
  expect([was.h, was.l.c]).toEqual([expect.any(String), expect.any(Number)]);
  old.agree('gen.ts', { ...was, l: { t: was.l.t, s: was.l.s, m: was.l.m, p: was.l.p } }); // as an older kubedev wrote it
  old.save();
  await pass(s, a); // nothing changed
  const now = open().agreed('gen.ts') as Agreed;
  expect([now.h, now.l.c]).toEqual([was.h, expect.any(Number)]);
  const later = new Date(Date.now() + 5_000);
  fs.utimesSync(path.join(a.local, 'gen.ts'), later, later); // the same bytes, another mtime
  remote(s, a, 'printf "generated v2!" > gen.ts');
  const r = await pass(s, a);
  expect(r.conflicts).toEqual([]);
  expect(read('gen.ts')).toBe('generated v2!');
});

test('a hash recorded for an older version does not decide: pulled A, pushed B, reverted to A, the container changes it: a conflict', async () => {
  const a = arena();
  remote(sshd(), a, 'printf "version A" > f.ts');
  await pass(sshd(), a); // pulled: the ancestor holds the hash of A
  fs.writeFileSync(path.join(a.local, 'f.ts'), 'version B');
  await pass(sshd(), a); // pushed: the ancestor is B, whose bytes it does not know
  expect(rread('f.ts')).toBe('version B');
  fs.writeFileSync(path.join(a.local, 'f.ts'), 'version A');
  remote(sshd(), a, 'printf "version C!" > f.ts');
  const r = await pass(sshd(), a);
  expect(r.conflicts.map((c) => c.rel)).toEqual(['f.ts']);
  expect(read('f.ts')).toBe('version A');
  expect(read(r.conflicts[0].copy as string)).toBe('version C!');
});

test('deleted on one side, changed on the other: the change wins (both ways)', async () => {
  const a = arena();
  writeTree(a.local, { 'x.txt': 'x', 'y.txt': 'y' });
  await pass(sshd(), a);
  fs.rmSync(path.join(a.local, 'x.txt'));
  remote(sshd(), a, 'printf "x changed" > x.txt && rm y.txt');
  fs.writeFileSync(path.join(a.local, 'y.txt'), 'y changed');
  const r = await pass(sshd(), a);
  expect(r.conflicts).toEqual([]);
  expect(same()).toEqual([]);
  expect(read('x.txt')).toBe('x changed');
  expect(rread('y.txt')).toBe('y changed');
});

test('a folder deleted on one side while the other added inside it is made again', async () => {
  const a = arena();
  writeTree(a.local, { 'd/old.txt': 'old', 'e/old.txt': 'old' });
  await pass(sshd(), a);
  remote(sshd(), a, 'rm -r d && printf new > e/new.txt');
  fs.writeFileSync(path.join(a.local, 'd/new.txt'), 'new');
  fs.rmSync(path.join(a.local, 'e'), { recursive: true });
  const r = await pass(sshd(), a);
  expect(r.conflicts).toEqual([]);
  expect(same()).toEqual([]);
  expect(fs.readdirSync(path.join(a.local, 'd'))).toEqual(['new.txt']);
  expect(fs.readdirSync(path.join(a.local, 'e'))).toEqual(['new.txt']);
});

test('file <-> folder flips on one side win; on both sides they conflict and nothing moves', async () => {
  const a = arena();
  writeTree(a.local, { 'f': 'file', 'g/in.txt': 'in', 'h': 'h' });
  await pass(sshd(), a);
  remote(sshd(), a, 'rm f && mkdir f && printf z > f/z.txt && rm -r g && printf g > g');
  fs.rmSync(path.join(a.local, 'h'));
  fs.mkdirSync(path.join(a.local, 'h'));
  const r = await pass(sshd(), a);
  expect(r.conflicts).toEqual([]);
  expect(same()).toEqual([]);
  expect(read('f/z.txt')).toBe('z');
  expect(read('g')).toBe('g');
  expect(fs.statSync(path.join(a.remote, 'h')).isDirectory()).toBe(true);
});

test('the ancestor survives restarts in the state file; without it a one-sided delete would come back', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'a', 'b.txt': 'b' });
  await pass(sshd(), a);
  expect(JSON.parse(fs.readFileSync(stateFileOf(a), 'utf8')).agreed.map((x: [string]) => x[0]).sort()).toEqual(['a.txt', 'b.txt']);
  expect(fs.statSync(stateFileOf(a)).mode & 0o777).toBe(0o600);
  remote(sshd(), a, 'rm a.txt');
  await pass(sshd(), a);
  expect(fs.existsSync(path.join(a.local, 'a.txt'))).toBe(false);
});

test('a remote root emptied halts: nothing deleted locally', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'a', 'b.txt': 'b', 'c/d.txt': 'd' });
  await pass(sshd(), a);
  const before = snapshot(a.local);
  remote(sshd(), a, 'rm -rf ./* ./.[!.]* 2>/dev/null; true');
  await expect(pass(sshd(), a)).rejects.toThrow(/was emptied .*the sync stopped and deleted nothing locally/);
  expect(snapshot(a.local)).toEqual(before);
});

test('a remote root replaced by another folder halts: nothing deleted or overwritten locally', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'a', 'b.txt': 'b' });
  await pass(sshd(), a);
  const before = snapshot(a.local);
  remote(sshd(), a, `cd .. && mv ws ws.old && mkdir ws && printf other > ws/a.txt`);
  await expect(pass(sshd(), a)).rejects.toThrow(/was replaced by another folder.*deleted nothing locally/);
  expect(snapshot(a.local)).toEqual(before);
});

test('a local root emptied halts: nothing deleted remotely', async () => {
  const a = arena();
  writeTree(a.local, { 'a.txt': 'a', 'b.txt': 'b' });
  await pass(sshd(), a);
  const before = snapshot(a.remote);
  for (const n of fs.readdirSync(a.local)) fs.rmSync(path.join(a.local, n), { recursive: true });
  await expect(pass(sshd(), a)).rejects.toThrow(/was emptied.*deleted nothing remotely/);
  expect(snapshot(a.remote)).toEqual(before);
});

test('the same bytes on both sides with different modes agree on the local mode', async () => {
  const a = arena();
  writeTree(a.local, { 'run.sh': { content: 'x', mode: 0o755 } });
  remote(sshd(), a, 'printf x > run.sh && chmod 600 run.sh');
  const r = await pass(sshd(), a);
  expect(r.conflicts).toEqual([]);
  expect(fs.statSync(path.join(a.remote, 'run.sh')).mode & 0o777).toBe(0o755);
  expect(same()).toEqual([]);
  const before = snapshot(a.remote);
  await pass(sshd(), a);
  expect(snapshot(a.remote)).toEqual(before);
});

test('temporary files of a pull killed mid-write are removed by the next session; nothing else is', async () => {
  const a = arena();
  writeTree(a.local, { 'd/.kubedev-0123456789ab.tmp': 'half', '.kubedev-ffffffffffff.tmp': 'half', 'd/keep.txt': 'k', '.kubedev-notes': 'mine' });
  await pass(sshd(), a);
  expect(fs.existsSync(path.join(a.local, 'd/.kubedev-0123456789ab.tmp'))).toBe(false);
  expect(fs.existsSync(path.join(a.local, '.kubedev-ffffffffffff.tmp'))).toBe(false);
  expect(fs.readFileSync(path.join(a.local, '.kubedev-notes'), 'utf8')).toBe('mine');
  expect(fs.readFileSync(path.join(a.remote, 'd/keep.txt'), 'utf8')).toBe('k');
});
