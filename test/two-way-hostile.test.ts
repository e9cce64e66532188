/**
 * Two-way on hostile ground: the runner now writes locally, so the local side gets the remote side's
 * guarantees — never outside the root, never through a symlink, odd names and modes carried — and
 * ownership globs route paths one way.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as localWrite from '../sync/engine/two-way/local-write';
import * as pullBulk from '../sync/engine/two-way/pull-bulk';
import { useArena } from './support/hostile';
import { snapshot, tempDir, writeTree } from './support/trees';
import { ChangedMeanwhile, checkedParent, commitFetched, deleteLocal, dropFetched, fetchBytes, LocalPathError, localSig, pullDir } from '../sync/engine/two-way/local-write';
import { Sig } from '../sync/engine/two-way/state-store';
import { guardOverwrites, releaseGuards } from '../sync/engine/two-way/remote-guard';
import { execRun, listRemoteExact } from '../sync/engine/two-way/remote-list';
import { RemoteShell } from '../sync/engine/two-way/remote-shell';
import { buildIgnore } from '../sync/engine/ignore';
import { Connection } from '../sync/engine/transport';
import { Entry } from '../sync/engine/tree';
import { pass, remote } from './support/two-way';

jest.setTimeout(30_000);
const { sshd, arena } = useArena();

/**
 * The runner's names left in `dir` once guards dropped without waiting are gone (over execRun the drop
 * runs on a channel of its own, so it may land after the next command; the session's shell runs in order).
 */
async function leftAfterDrop(dir: string): Promise<string[]> {
  const left = (): string[] => fs.readdirSync(dir).filter((n) => n.startsWith('.kubedev-'));
  for (const deadline = Date.now() + 2000; left().length > 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
  return left();
}

test('ownership: remoteOwns flows only container -> laptop, localOwns only laptop -> container', async () => {
  const a = arena();
  const own = { remoteOwns: ['dist/', 'package-lock.json'], localOwns: ['src/'] };
  writeTree(a.local, { 'src/main.ts': 'v1', 'dist/local-only.js': 'never sent' });
  remote(sshd(), a, 'mkdir dist && printf v1 > dist/app.js && printf v1 > package-lock.json');
  await pass(sshd(), a, own);
  expect(fs.existsSync(path.join(a.remote, 'dist/local-only.js'))).toBe(false);
  expect(fs.readFileSync(path.join(a.remote, 'src/main.ts'), 'utf8')).toBe('v1');
  expect(fs.readFileSync(path.join(a.local, 'dist/app.js'), 'utf8')).toBe('v1');
  fs.writeFileSync(path.join(a.local, 'dist/app.js'), 'edited on the laptop');
  remote(sshd(), a, 'printf built > dist/new.js && printf "edited in the container" > src/main.ts && printf v2 > package-lock.json');
  fs.writeFileSync(path.join(a.local, 'src/other.ts'), 'new on the laptop');
  const r = await pass(sshd(), a, own);
  expect(r.conflicts).toEqual([]);
  const rd = (root: string, rel: string): string => fs.readFileSync(path.join(root, rel), 'utf8');
  expect(rd(a.local, 'dist/new.js')).toBe('built');
  expect(rd(a.local, 'package-lock.json')).toBe('v2');
  expect(rd(a.remote, 'dist/app.js')).toBe('v1'); // the laptop's edit is held, not sent
  expect(rd(a.local, 'dist/app.js')).toBe('edited on the laptop'); // and not lost
  expect(rd(a.remote, 'src/other.ts')).toBe('new on the laptop');
  expect(rd(a.local, 'src/main.ts')).toBe('v1'); // the container's edit is held, not fetched
  expect(rd(a.remote, 'src/main.ts')).toBe('edited in the container');
});

test('odd names and modes come back byte for byte', async () => {
  const a = arena();
  remote(sshd(), a, `mkdir -p 'sp ace/ünï' && printf one > ' lead' && printf two > -dash && printf three > 'sp ace/ünï/née.txt' && printf four > "$(printf 'new\\nline')" && printf x > ro.txt && chmod 440 ro.txt && printf '#!/bin/sh' > run && chmod 750 run && ln -s 'sp ace/ünï/née.txt' link`);
  const r = await pass(sshd(), a);
  expect(r.conflicts).toEqual([]);
  expect(a.differences()).toEqual([]);
  expect(fs.readFileSync(path.join(a.local, 'new\nline'), 'utf8')).toBe('four');
  expect(fs.statSync(path.join(a.local, 'ro.txt')).mode & 0o777).toBe(0o440);
  expect(fs.readlinkSync(path.join(a.local, 'link'))).toBe('sp ace/ünï/née.txt');
});

test('a container file the SSH user cannot read is a warning naming it and the fix, not a retry loop; the readable ones come', async () => {
  const a = arena();
  remote(sshd(), a, `printf ok > ok.txt && printf secret > 'sec ret' && chmod 000 'sec ret'`);
  const r = await pass(sshd(), a);
  expect(fs.readFileSync(path.join(a.local, 'ok.txt'), 'utf8')).toBe('ok');
  expect(fs.existsSync(path.join(a.local, 'sec ret'))).toBe(false);
  expect(r.warnings).toEqual([expect.stringMatching(/^'sec ret' could not be read in the container \(Permission denied\).*Make it readable by the SSH user there$/)]);
});

test('unreadable container files whose names tar quotes in its messages (colon, backslash, newline, non-ASCII) are warnings too, not passes owed again and again', async () => {
  const a = arena();
  const names = ['a:b.txt', 'back\\slash', 'new\nline', 'ünï.txt'];
  remote(sshd(), a, `for n in 'a:b.txt' 'back\\slash' "$(printf 'new\\nline')" 'ünï.txt'; do printf secret > "$n" && chmod 000 "$n"; done`);
  const r = await pass(sshd(), a);
  for (const n of names) expect(fs.existsSync(path.join(a.local, n))).toBe(false);
  expect(r.warnings.filter((w) => !/could not be read in the container \(Permission denied\)/.test(w))).toEqual([]);
  expect(r.warnings).toHaveLength(names.length);
});

test('container files that are hard links of one another (a package manager\'s store) all come in one pass, each a file of its own', async () => {
  const a = arena();
  remote(sshd(), a, 'mkdir -p pkg && printf MIT > LICENSE && for i in 1 2 3 4 5 6 7 8; do ln LICENSE pkg/LICENSE-$i; done');
  const r = await pass(sshd(), a);
  expect(r.warnings).toEqual([]);
  expect(a.differences()).toEqual([]);
  expect(fs.statSync(path.join(a.local, 'pkg/LICENSE-8')).nlink).toBe(1);
});

test('a fetched file whose local folder the user turned into a file meanwhile: looked at again next pass, the temp gone, the user\'s file untouched', () => {
  const a = arena();
  fs.mkdirSync(path.join(a.local, 'c/x'), { recursive: true });
  const r: Sig = { t: 'f', s: 2, m: 1_700_000_000_000, p: 0o644 };
  for (const settle of [commitFetched, dropFetched]) {
    const f = fetchBytes([Buffer.from('hi')], a.local, 'c/x/e', r, undefined);
    fs.rmSync(path.join(a.local, 'c/x'), { recursive: true });
    fs.writeFileSync(path.join(a.local, 'c/x'), 'mine');
    // Before: the temp's removal threw ENOTDIR, which ended a watching session.
    if (settle === commitFetched) expect(() => settle(f)).toThrow(ChangedMeanwhile);
    else expect(() => settle(f)).not.toThrow();
    expect(fs.readFileSync(path.join(a.local, 'c/x'), 'utf8')).toBe('mine');
    fs.rmSync(path.join(a.local, 'c/x'));
    fs.mkdirSync(path.join(a.local, 'c/x'));
  }
});

test('a pass ended by an error it does not expect while it puts pulled files in place leaves no temporary file of the files fetched after it', async () => {
  const a = arena();
  remote(sshd(), a, 'for i in 1 2 3 4; do head -c 100000 /dev/urandom > f$i.bin; done');
  const spy = jest.spyOn(localWrite, 'commitFetched').mockImplementationOnce(() => {
    throw new Error('unexpected');
  });
  try {
    await expect(pass(sshd(), a)).rejects.toThrow('unexpected');
    expect(spy).toHaveBeenCalledTimes(1);
  } finally {
    spy.mockRestore();
  }
  // Before: the three files fetched after the first stayed as .kubedev- temporaries in the folder.
  expect(Object.keys(snapshot(a.local)).filter((rel) => rel.includes('.kubedev-'))).toEqual([]);
  await pass(sshd(), a);
  expect(Object.keys(snapshot(a.local)).sort()).toEqual(['f1.bin', 'f2.bin', 'f3.bin', 'f4.bin']);
});

test('a touched laptop file found to hold the ancestor bytes, then rewritten (same size, mtime put back) before the pull lands: kept, then a conflict', async () => {
  const a = arena();
  remote(sshd(), a, 'printf "generated v1" > gen.ts');
  await pass(sshd(), a); // pulled: the ancestor holds the hash of its bytes
  const abs = path.join(a.local, 'gen.ts');
  const later = new Date(Date.now() + 5_000);
  fs.utimesSync(abs, later, later); // touched: the same bytes
  remote(sshd(), a, 'printf "generated v3!" > gen.ts');
  const ref = path.join(a.local, '..', 'gen-mtime-ref');
  execFileSync('touch', ['-r', abs, ref]);
  const real = pullBulk.fetchAsListed;
  const spy = jest.spyOn(pullBulk, 'fetchAsListed').mockImplementationOnce(async (...args) => {
    // After the classification read the file: the user writes other bytes of the same size and a tool puts the mtime back.
    fs.writeFileSync(abs, 'mine, v2 ok!');
    execFileSync('touch', ['-r', ref, abs]);
    return real(...args);
  });
  let r: Awaited<ReturnType<typeof pass>>;
  try {
    r = await pass(sshd(), a); // --once: the pass owed after the skipped pull reads the file again
  } finally {
    spy.mockRestore();
  }
  expect(fs.readFileSync(abs, 'utf8')).toBe('mine, v2 ok!'); // before: the container version landed over it
  expect(r.conflicts.map((c) => c.rel)).toEqual(['gen.ts']);
  expect(fs.readFileSync(path.join(a.local, r.conflicts[0].copy as string), 'utf8')).toBe('generated v3!');
  expect((await pass(sshd(), a)).conflicts).toEqual([]);
  expect(fs.readFileSync(abs, 'utf8')).toBe('mine, v2 ok!');
});

test('a touched laptop file found to hold the ancestor bytes whose folder the user turns into a file before the pull lands: the user\'s file kept, a conflict on the folder, no warning', async () => {
  const a = arena();
  remote(sshd(), a, 'mkdir g && printf "generated v1" > g/gen.ts');
  await pass(sshd(), a);
  const abs = path.join(a.local, 'g/gen.ts');
  const later = new Date(Date.now() + 5_000);
  fs.utimesSync(abs, later, later);
  remote(sshd(), a, 'printf "generated v3!" > g/gen.ts');
  const real = pullBulk.fetchAsListed;
  let turned = false;
  const spy = jest.spyOn(pullBulk, 'fetchAsListed').mockImplementationOnce(async (...args) => {
    const fetched = await real(...args);
    turned = true;
    fs.rmSync(path.join(a.local, 'g'), { recursive: true });
    fs.writeFileSync(path.join(a.local, 'g'), 'mine');
    return fetched;
  });
  let r: Awaited<ReturnType<typeof pass>>;
  try {
    r = await pass(sshd(), a);
  } finally {
    spy.mockRestore();
  }
  expect(turned).toBe(true);
  // Before: the lstat's ENOTDIR was warned about as a pull that failed, and the pass owed after it,
  // scoped to g/gen.ts, took the file g for its folder and warned again.
  expect(r.warnings).toEqual([]);
  expect(r.conflicts.map((c) => c.rel)).toEqual(['g']);
  expect(fs.readFileSync(path.join(a.local, 'g'), 'utf8')).toBe('mine');
  expect(Object.keys(snapshot(a.local)).filter((rel) => rel.includes('.kubedev-'))).toEqual([]);
});

test('a remote symlink leading outside is not made locally; nothing is written through a local symlink', async () => {
  const a = arena();
  const outside = tempDir('two-way-outside');
  writeTree(outside, { 'victim.txt': 'untouched' });
  const before = snapshot(outside);
  fs.symlinkSync(outside, path.join(a.local, 'out')); // leads outside: refused locally, never followed
  remote(sshd(), a, 'ln -s ../../../../../etc evil && mkdir out && printf pwned > out/victim.txt && printf ok > fine.txt');
  const r = await pass(sshd(), a);
  expect(snapshot(outside)).toEqual(before);
  expect(fs.lstatSync(path.join(a.local, 'out')).isSymbolicLink()).toBe(true);
  expect(fs.existsSync(path.join(a.local, 'evil'))).toBe(false);
  expect(fs.readFileSync(path.join(a.local, 'fine.txt'), 'utf8')).toBe('ok');
  expect(r.warnings.join('\n')).toMatch(/evil' -> '..\/..\/..\/..\/..\/etc' leads outside/);
  // Passes again: still nothing outside, the remote's own files untouched.
  await pass(sshd(), a);
  expect(snapshot(outside)).toEqual(before);
  expect(fs.readFileSync(path.join(a.remote, 'out/victim.txt'), 'utf8')).toBe('pwned');
  fs.rmSync(outside, { recursive: true });
});

test('a local file changed since it was classified is never deleted or replaced; no write passes a symlink', () => {
  const a = arena();
  writeTree(a.local, { 'x.txt': 'v1', 'real/in.txt': 'in' });
  const stale = localSig(path.join(a.local, 'x.txt')) as Sig;
  fs.writeFileSync(path.join(a.local, 'x.txt'), 'edited meanwhile');
  expect(() => deleteLocal(a.local, 'x.txt', stale)).toThrow(ChangedMeanwhile);
  expect(() => pullDir(a.local, 'x.txt', { t: 'd', s: 0, m: 0, p: 0o755 }, stale)).toThrow(ChangedMeanwhile);
  expect(fs.readFileSync(path.join(a.local, 'x.txt'), 'utf8')).toBe('edited meanwhile');
  fs.symlinkSync('real', path.join(a.local, 'via'));
  expect(() => checkedParent(a.local, 'via/in.txt')).toThrow(new LocalPathError("local 'via' is a symlink; 'via/in.txt' was not written through it"));
  expect(() => checkedParent(a.local, '../x')).toThrow(LocalPathError);
  // A file where the folder was (before: taken for the folder, its realpath resolving all the same).
  expect(() => checkedParent(a.local, 'x.txt/in.txt')).toThrow(new LocalPathError("local 'x.txt' is not a folder; 'x.txt/in.txt' was not written through it"));
  expect(checkedParent(a.local, 'real/in.txt')).toBe(path.join(a.local, 'real'));
});

test('a remote file written after the listing is not overwritten by the push (seen just before the writes)', async () => {
  const a = arena();
  const s = sshd();
  remote(s, a, `printf one > a.txt && printf two > -b && printf three > "$(printf 'c\\nd')" && printf four > same.txt`);
  const conn = await Connection.open({ host: s.host, port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  try {
    const listed = await listRemoteExact(execRun(conn), a.remote, buildIgnore(a.local));
    remote(s, a, `printf ONE > a.txt && printf TWO > -b && printf THREE > "$(printf 'c\\nd')"`);
    const get = (rel: string): Entry | undefined => listed.tree.get(rel);
    const guards = await guardOverwrites(execRun(conn), a.remote, ['a.txt', '-b', 'c\nd', 'same.txt', 'gone.txt'], get);
    expect([...guards.moved].sort()).toEqual(['-b', 'a.txt', 'c\nd', 'gone.txt']);
    await releaseGuards(execRun(conn), a.remote, guards);
    expect(await leftAfterDrop(a.remote)).toEqual([]);
  } finally {
    await conn.close();
  }
});

test('a container write in place during the upload is kept beside the file (guard link), over the long-lived shell', async () => {
  const a = arena();
  const s = sshd();
  remote(s, a, `printf one > a.txt && printf two > -b && printf three > "$(printf 'c\\nd')"`);
  const conn = await Connection.open({ host: s.host, port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  const shell = await RemoteShell.open(conn);
  const run = (c: string): ReturnType<RemoteShell['run']> => shell.run(c);
  try {
    const listed = await listRemoteExact(run, a.remote, buildIgnore(a.local));
    const get = (rel: string): Entry | undefined => listed.tree.get(rel);
    const guards = await guardOverwrites(run, a.remote, ['a.txt', '-b', 'c\nd'], get);
    expect([...guards.moved]).toEqual([]);
    // The container writes two files in place while "the upload" runs; then the runner's renames land.
    remote(s, a, `printf ONE-container > a.txt && printf THREE-container > "$(printf 'c\\nd')"`);
    remote(s, a, `for f in a.txt -b "$(printf 'c\\nd')"; do printf laptop > .up && mv -f .up "./$f"; done`);
    const kept = await releaseGuards(run, a.remote, guards);
    expect([...kept.keys()].sort()).toEqual(['a.txt', 'c\nd']);
    expect(fs.readFileSync(path.join(a.remote, kept.get('a.txt') as string), 'utf8')).toBe('ONE-container');
    expect(fs.readFileSync(path.join(a.remote, kept.get('c\nd') as string), 'utf8')).toBe('THREE-container');
    expect(fs.readFileSync(path.join(a.remote, 'a.txt'), 'utf8')).toBe('laptop');
    expect(fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-'))).toEqual([]); // guards gone
    // A scoped listing over the same shell: names with a newline and a leading dash, the root's identity.
    const scoped = await listRemoteExact(run, a.remote, buildIgnore(a.local), ['-b', 'c\nd', 'missing']);
    expect([...scoped.tree.keys()].sort()).toEqual(['-b', 'c\nd']);
    expect(scoped.rootId).toBe(listed.rootId);
    expect(scoped.rootEmpty).toBe(false);
  } finally {
    shell.close();
    await conn.close();
  }
});

test('small files the server named come inside a scoped listing byte for byte; links, folders, large and unreadable files do not', async () => {
  const a = arena();
  const s = sshd();
  remote(s, a, `printf one > -b && printf 'two\\n' > "$(printf 'c\\nd')" && : > empty && head -c 70000 /dev/zero > big && printf x > locked && chmod 000 locked && ln -s ./-b link && mkdir dir && printf '\\377\\000bin' > bin`);
  const conn = await Connection.open({ host: s.host, port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  try {
    const names = ['-b', 'c\nd', 'empty', 'big', 'locked', 'link', 'dir', 'bin', 'missing'];
    const scoped = await listRemoteExact(execRun(conn), a.remote, buildIgnore(a.local), names, names);
    expect([...scoped.tree.keys()].sort()).toEqual(['-b', 'big', 'bin', 'c\nd', 'dir', 'empty', 'link', 'locked']);
    const inline = scoped.inline as ReadonlyMap<string, Buffer>;
    expect([...inline.keys()].sort()).toEqual(['-b', 'bin', 'c\nd', 'empty']);
    expect(inline.get('bin')).toEqual(Buffer.from([0xff, 0, 0x62, 0x69, 0x6e]));
    expect(inline.get('c\nd')?.toString()).toBe('two\n');
    expect(inline.get('-b')?.toString()).toBe('one');
    expect(inline.get('empty')?.length).toBe(0);
    // Without names asked for, nothing comes inline.
    expect((await listRemoteExact(execRun(conn), a.remote, buildIgnore(a.local), names)).inline).toBeUndefined();
  } finally {
    await conn.close();
  }
});

test('a container save by rename after the listing is not overwritten by the push; an in-place write during the upload is kept; the release takes one round trip', async () => {
  const a = arena();
  const s = sshd();
  remote(s, a, `printf one > a.txt && printf two > -b && printf three > "$(printf 'c\\nd')"`);
  const conn = await Connection.open({ host: s.host, port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  let runs = 0;
  const run = (c: string): ReturnType<ReturnType<typeof execRun>> => {
    runs++;
    return execRun(conn)(c);
  };
  try {
    const names = ['a.txt', '-b', 'c\nd', 'gone.txt'];
    const scoped = await listRemoteExact(run, a.remote, buildIgnore(a.local), names);
    const get = (rel: string): Entry | undefined => scoped.tree.get(rel);
    // After the listing, the container saves -b the way editors do: a new file renamed over it.
    remote(s, a, 'printf TWO-container > .t && mv -f .t ./-b');
    const guards = await guardOverwrites(run, a.remote, names, get);
    expect([...guards.moved].sort()).toEqual(['-b', 'gone.txt']); // not pushed: the next pass sees the container's save
    expect([...guards.held.keys()].sort()).toEqual(['a.txt', 'c\nd']);
    // During "the upload" the container writes a.txt in place; then the runner's renames land.
    remote(s, a, 'printf ONE-container > a.txt');
    remote(s, a, `for f in a.txt "$(printf 'c\\nd')"; do printf laptop > .up && mv -f .up "./$f"; done`);
    runs = 0;
    const kept = await releaseGuards(run, a.remote, guards);
    expect(runs).toBe(1);
    expect([...kept.keys()]).toEqual(['a.txt']);
    expect(fs.readFileSync(path.join(a.remote, kept.get('a.txt') as string), 'utf8')).toBe('ONE-container');
    expect(fs.readFileSync(path.join(a.remote, '-b'), 'utf8')).toBe('TWO-container');
    expect(await leftAfterDrop(a.remote)).toEqual([]);
  } finally {
    await conn.close();
  }
});

test('a laptop edit to a file in a read-only container folder is pushed, with a warning that it went without its guard and how to have one', async () => {
  const a = arena();
  writeTree(a.local, { 'ro/f.txt': 'v1', 'ro/g.txt': 'g1', 'rw/h.txt': 'h1' });
  await pass(sshd(), a);
  remote(sshd(), a, 'chmod 555 ro');
  await pass(sshd(), a); // the folder's new mode is agreed
  fs.writeFileSync(path.join(a.local, 'ro/f.txt'), 'v2 from the laptop');
  fs.writeFileSync(path.join(a.local, 'rw/h.txt'), 'h2 from the laptop');
  const r = await pass(sshd(), a);
  expect(fs.readFileSync(path.join(a.remote, 'ro/f.txt'), 'utf8')).toBe('v2 from the laptop');
  expect(fs.readFileSync(path.join(a.remote, 'rw/h.txt'), 'utf8')).toBe('h2 from the laptop');
  expect(fs.statSync(path.join(a.remote, 'ro')).mode & 0o777).toBe(0o555);
  expect(r.conflicts).toEqual([]);
  expect(r.warnings).toEqual([
    "'ro/f.txt' was sent without its guard: its container folder 'ro' is not writable by the SSH user, so a container write to the file during the upload would not have been kept. To have it guarded, make the folder writable in the container (chmod u+w 'ro')",
  ]);
  expect(fs.readdirSync(path.join(a.remote, 'ro')).sort()).toEqual(['f.txt', 'g.txt']); // no guard left
  expect(a.differences()).toEqual([]);
});

test("a laptop edit to a container file of another user (no hard link allowed: fs.protected_hardlinks) is pushed, with a warning", async () => {
  if (fs.readFileSync('/proc/sys/fs/protected_hardlinks', 'utf8').trim() !== '1') throw new Error('this test needs fs.protected_hardlinks=1 (sysctl -w fs.protected_hardlinks=1)');
  if (process.getuid?.() !== 0) throw new Error('this test makes a file of another user in the container folder: run it as root');
  const a = arena();
  writeTree(a.local, { 'theirs.txt': 'v1' });
  await pass(sshd(), a);
  fs.chownSync(path.join(a.remote, 'theirs.txt'), 0, 0); // the container's process runs as another user
  fs.chmodSync(path.join(a.remote, 'theirs.txt'), 0o644);
  fs.utimesSync(path.join(a.remote, 'theirs.txt'), fs.statSync(path.join(a.local, 'theirs.txt')).mtime, fs.statSync(path.join(a.local, 'theirs.txt')).mtime);
  await pass(sshd(), a);
  fs.writeFileSync(path.join(a.local, 'theirs.txt'), 'v2 from the laptop');
  const r = await pass(sshd(), a);
  expect(fs.readFileSync(path.join(a.remote, 'theirs.txt'), 'utf8')).toBe('v2 from the laptop');
  expect(r.warnings).toEqual([
    "'theirs.txt' was sent without its guard: the server refused a hard link to it (it belongs to another user and fs.protected_hardlinks is on), so a container write to the file during the upload would not have been kept. To have it guarded, run the container's process and the sidecar as the same user",
  ]);
  expect(a.differences()).toEqual([]);
});

test('push guards never land outside the root: a folder the container replaced by a symlink since the listing is not entered', async () => {
  const a = arena();
  const s = sshd();
  const sentinel = path.join(a.base, 'sentinel');
  fs.utimesSync(path.join(sentinel, 'keep.txt'), 1_700_000_000, 1_700_000_000);
  const st = fs.statSync(path.join(sentinel, 'keep.txt'));
  // The listing saw a real folder 'a' holding a file like the sentinel's; then the container made 'a' a link to the sentinel.
  const listed = (rel: string): Entry | undefined => (rel === 'a/keep.txt' ? { type: 'file', size: st.size, mtimeMs: 1_700_000_000_000, mode: st.mode & 0o7777 } : undefined);
  remote(s, a, `ln -s ${sentinel} a`);
  const conn = await Connection.open({ host: s.host, port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  try {
    const guards = await guardOverwrites(execRun(conn), a.remote, ['a/keep.txt'], listed);
    expect(fs.readdirSync(sentinel).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
    expect([...guards.moved]).toEqual(['a/keep.txt']); // not pushed: the next listing sees the link
    await releaseGuards(execRun(conn), a.remote, guards);
  } finally {
    await conn.close();
  }
});

test('a laptop delete the container refuses (read-only folder) is a warning, kept in the state and done by a later pass', async () => {
  const a = arena();
  writeTree(a.local, { 'ro/f.txt': 'f', 'ro/g.txt': 'g', 'other.txt': 'o', 'keep.txt': 'k' });
  await pass(sshd(), a);
  remote(sshd(), a, 'chmod 555 ro');
  await pass(sshd(), a);
  fs.rmSync(path.join(a.local, 'ro'), { recursive: true });
  fs.rmSync(path.join(a.local, 'other.txt'));
  const r = await pass(sshd(), a);
  expect(r.warnings.sort()).toEqual(['f', 'g'].map((n) => `'ro/${n}.txt' was deleted on the laptop but could not be deleted in the container (Permission denied); it is kept there and deleted again by the next pass. Make its folder writable there (chmod u+w 'ro')`));
  expect(fs.readdirSync(a.remote).sort()).toEqual(['keep.txt', 'ro']);
  expect(fs.existsSync(path.join(a.local, 'ro'))).toBe(false); // not fetched back
  await pass(sshd(), a); // refused again: still not fetched back
  expect(fs.existsSync(path.join(a.local, 'ro'))).toBe(false);
  remote(sshd(), a, 'chmod 755 ro');
  expect((await pass(sshd(), a)).warnings).toEqual([]);
  // The files go; the folder's mode changed in the container, which wins over the laptop's delete (empty on both sides).
  expect(fs.readdirSync(path.join(a.remote, 'ro'))).toEqual([]);
  expect(a.differences()).toEqual([]);
});
