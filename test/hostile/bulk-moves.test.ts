/**
 * The bulk path's moves (sync/engine/apply-moves.ts) and deletes against the sidecar's sshd run by a
 * non-root user, when the server changed under the plan (the container writes there too): a target
 * folder that became a symlink (out of the root, or to a folder inside it) or a file is never written
 * through; a folder the container made meanwhile is not merged into or replaced; and the same with no
 * perl on the server (SFTP renames). The sentinel beside the root stays untouched (useArena).
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyPlan, ApplyContext } from '../../sync/engine/apply';
import * as localTarModule from '../../sync/engine/local-tar';
import { PackedLook } from '../../sync/engine/packed-look';
import { emptyPlan, Plan, PlanItem } from '../../sync/engine/plan';
import { Connection } from '../../sync/engine/transport';
import { Entry } from '../../sync/engine/tree';
import { Arena, remoteTree as remoteTreeOf, rewriting, useArena, useConnection, without } from '../support/hostile';
import { snapshot, writeTree } from '../support/trees';

jest.setTimeout(60_000);

const { sshd, arena } = useArena();
const connect = useConnection(sshd);

const DIR: Entry = { type: 'dir', size: 0, mtimeMs: 0, mode: 0o755 };

function item(a: Arena, rel: string): PlanItem {
  const st = fs.lstatSync(path.join(a.local, rel));
  return { rel, entry: st.isDirectory() ? { ...DIR, mode: st.mode & 0o7777 } : { type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 } };
}

/** The remote root as the sshd user owns it, holding `tree`; then `prepare` (as the container would). */
function remoteTree(a: Arena, tree: Record<string, string>, prepare: () => void = () => undefined): void {
  remoteTreeOf(sshd(), a, tree, prepare);
}
const withoutPerl = (c: Connection): Connection => without('perl', c);

/** An arena whose local side holds `tree` (new to the server: the plan sends it) and a file both sides hold. */
function newFiles(tree: Record<string, string>, dirs: readonly string[]): { a: Arena; plan: Plan } {
  const a = arena();
  writeTree(a.local, { ...tree, 'keep.txt': 'k' });
  remoteTree(a, { 'keep.txt': 'k' });
  return { a, plan: { ...emptyPlan(), dirs: dirs.map((d) => item(a, d)), files: Object.keys(tree).map((rel) => item(a, rel)) } };
}

function staging(a: Arena): string[] {
  return fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-'));
}

describe.each([
  ['perl', (c: Connection) => c],
  ['no perl: SFTP renames', withoutPerl],
])('bulk moves (%s)', (_name, wrap) => {
  test('a target folder replaced by a symlink out of the root, by a symlink inside it or by a file is not written through', async () => {
    const a = arena();
    const local: Record<string, string> = { 'out/x.txt': 'x', 'in/y.txt': 'y', 'file/z.txt': 'z', 'real/keep.txt': 'keep' };
    for (let i = 0; i < 30; i++) local[`ok/f${i}.txt`] = `ok ${i}`;
    writeTree(a.local, local);
    // The listing saw four folders; since then the server made 'out' a link to the sentinel, 'in' a
    // link to 'real', and 'file' a file.
    remoteTree(a, { 'real/keep.txt': 'keep', 'ok/.k': '', 'file': 'now a file' }, () => {
      fs.symlinkSync(path.join(a.base, 'sentinel'), path.join(a.remote, 'out'));
      fs.symlinkSync('real', path.join(a.remote, 'in'));
    });
    const remote = new Map<string, Entry>(['out', 'in', 'file', 'real', 'ok'].map((d) => [d, DIR]));
    const files = Object.keys(local).filter((r) => !r.startsWith('real/')).map((r) => item(a, r));
    const c = wrap(await connect());
    const ctx: ApplyContext = { conn: c, localRoot: a.local, remoteRoot: a.remote, remote, method: 'tar' };
    const res = await applyPlan(ctx, { ...emptyPlan(), files });
    expect(res.unsent.sort()).toEqual(['file/z.txt', 'in/y.txt', 'out/x.txt']);
    expect(res.changed).toEqual([]);
    for (const d of ['out', 'in', 'file']) expect(res.warnings.some((w) => w.includes(`'${d}`))).toBe(true);
    expect(fs.existsSync(path.join(a.remote, 'real/y.txt'))).toBe(false);
    expect(fs.readFileSync(path.join(a.remote, 'file'), 'utf8')).toBe('now a file');
    for (let i = 0; i < 30; i++) expect(fs.readFileSync(path.join(a.remote, `ok/f${i}.txt`), 'utf8')).toBe(`ok ${i}`);
    expect(staging(a)).toEqual([]);
  });

  test('a new folder the container made meanwhile: a non-empty one is kept as it is, an empty one is replaced', async () => {
    const a = arena();
    writeTree(a.local, { 'made/ours.txt': 'ours', 'empty/ours.txt': 'ours too', 'other/o.txt': 'o' });
    remoteTree(a, { 'made/theirs.txt': 'theirs' }, () => fs.mkdirSync(path.join(a.remote, 'empty')));
    const plan: Plan = { ...emptyPlan(), dirs: ['made', 'empty', 'other'].map((d) => item(a, d)), files: ['made/ours.txt', 'empty/ours.txt', 'other/o.txt'].map((r) => item(a, r)) };
    const c = wrap(await connect());
    const ctx: ApplyContext = { conn: c, localRoot: a.local, remoteRoot: a.remote, remote: new Map(), method: 'tar' };
    // Without perl SFTP's rename fails ("Failure") on the non-empty folder: the same outcome as the mover's.
    const res = await applyPlan(ctx, plan);
    expect(res.unsent).toEqual(['made']);
    expect(res.warnings.some((w) => w.startsWith("'made' was not put in place"))).toBe(true);
    expect(snapshot(path.join(a.remote, 'empty'))).toEqual(snapshot(path.join(a.local, 'empty')));
    expect(fs.readFileSync(path.join(a.remote, 'other/o.txt'), 'utf8')).toBe('o');
    expect(staging(a)).toEqual([]);
    expect(fs.readdirSync(path.join(a.remote, 'made'))).toEqual(['theirs.txt']);
  });
});

test('many deletes go in one rm; a read-only folder among them is opened and removed', async () => {
  const a = arena();
  const tree: Record<string, string> = { 'keep.txt': 'k', 'ro/sub/deep.txt': 'd' };
  for (let i = 0; i < 500; i++) tree[`gone${i % 10}/f${i}.txt`] = String(i);
  writeTree(a.local, { 'keep.txt': 'k' });
  remoteTree(a, tree, () => fs.chmodSync(path.join(a.remote, 'ro/sub'), 0o555));
  const c = await connect();
  const deletes = ['ro', ...Array.from({ length: 10 }, (_, i) => `gone${i}`), 'not-there'];
  await applyPlan({ conn: c, localRoot: a.local, remoteRoot: a.remote, remote: new Map(), method: 'tar' }, { ...emptyPlan(), deletes });
  expect(fs.readdirSync(a.remote)).toEqual(['keep.txt']);
});

test.each([
  ['gzip on the server', (c: Connection) => c],
  ['no gzip on the server: sent again as it is', (c: Connection) => without('gzip', c)],
])('a gzipped archive (%s) arrives byte-equal, odd names and modes kept', async (_name, wrap) => {
  const a = arena();
  const names = ['plain.txt', ' lead space', '-rf x', "it's", 'line\nbreak', 'ünïcödé ✓.txt', 'sub/deeper/x y.txt', 'sub/empty.bin'];
  const tree: Record<string, { content: string; mode: number }> = {};
  names.forEach((n, i) => (tree[n] = { content: n === 'sub/empty.bin' ? '' : `${n}\n`.repeat(1000 + i * 37), mode: [0o644, 0o755, 0o600][i % 3] }));
  writeTree(a.local, tree);
  remoteTree(a, { 'old.txt': 'old' });
  const plan: Plan = { ...emptyPlan(), deletes: ['old.txt'], dirs: ['sub', 'sub/deeper'].map((d) => item(a, d)), files: names.map((n) => item(a, n)) };
  const c = wrap(await connect());
  const steps: string[] = [];
  const res = await applyPlan({ conn: c, localRoot: a.local, remoteRoot: a.remote, remote: new Map(), method: 'tar', compress: true, onStep: (w) => steps.push(w) }, plan);
  expect(steps.filter((w) => w.startsWith('sending'))).toEqual(_name.startsWith('gzip') ? ['sending 8 files (tar, gzip)'] : ['sending 8 files (tar, gzip)', 'sending 8 files (tar)']);
  expect(res.unsent).toEqual([]);
  expect(a.differences()).toEqual([]);
  expect(staging(a)).toEqual([]);
});

test.each([
  ['gzip', true, 'before the local tar reads it'],
  ['plain', false, 'before the local tar reads it'],
  ['gzip', true, 'once the local tar read every file'],
  ['plain', false, 'once the local tar read every file'],
])('a file changed after it was planned (%s archive, %s) never takes its real name torn: reported changed and its staged copy removed, or moved as planned; the rest moved', async (_name, compress, when) => {
  const a = arena();
  const tree: Record<string, string> = { 'sub/late.txt': 'as planned' };
  for (let i = 0; i < 20; i++) tree[`sub/f${i}.txt`] = `f ${i}`;
  writeTree(a.local, tree);
  remoteTree(a, { 'sub/late.txt': 'the remote version' });
  const plan: Plan = { ...emptyPlan(), files: Object.keys(tree).map((rel) => item(a, rel)) };
  const late = path.join(a.local, 'sub/late.txt');
  const change = (): void => fs.writeFileSync(late, 'changed after it was planned');
  const real = localTarModule.localTar;
  const spy = jest.spyOn(localTarModule, 'localTar').mockImplementation((...args) => {
    if (when.startsWith('before')) change();
    const t = real(...args);
    // The local tar is done with every file: the change lands before its end is seen.
    return when.startsWith('before') ? t : { ...t, done: t.done.then((d) => (change(), d)) };
  });
  let res;
  try {
    res = await applyPlan({ conn: await connect(), localRoot: a.local, remoteRoot: a.remote, remote: new Map([['sub', DIR], ['sub/late.txt', { type: 'file', size: 18, mtimeMs: 0, mode: 0o644 }]]), method: 'tar', compress }, plan);
    expect(spy).toHaveBeenCalled();
  } finally {
    spy.mockRestore();
  }
  const remote = fs.readFileSync(path.join(a.remote, 'sub/late.txt'), 'utf8');
  if (when.startsWith('before')) {
    // tar read the new bytes: they are not what was planned, so they stay out.
    expect(res.changed).toEqual(['sub/late.txt']);
    expect(res.unsent).toEqual(['sub/late.txt']);
    expect(remote).toBe('the remote version');
  } else {
    // Looked at before or after the change: in place with exactly the bytes tar read (planned), or out.
    if (res.changed.length === 0) expect(remote).toBe('as planned');
    else {
      expect(res.changed).toEqual(['sub/late.txt']);
      expect(remote).toBe('the remote version');
    }
  }
  expect(a.differences().map((d) => d.split(':')[0])).toEqual(['sub/late.txt']);
  expect(staging(a)).toEqual([]);
});

test.each([
  ['gzip', true],
  ['plain', false],
])('the local GNU tar\'s archive (%s) is followed: every file is looked at while it streams, none left for after it', async (_name, compress) => {
  const tree: Record<string, string> = {};
  for (let i = 0; i < 40; i++) tree[`sub/${i % 2 ? 'z'.repeat(120) : 'f'}${i}.txt`] = 'x'.repeat(i * 300);
  const { a, plan } = newFiles(tree, ['sub']);
  const early: number[] = [];
  const real = PackedLook.prototype.rest;
  const spy = jest.spyOn(PackedLook.prototype, 'rest').mockImplementation(function (this: PackedLook) {
    early.push(this.lookedEarly);
    return real.call(this);
  });
  try {
    const res = await applyPlan({ conn: await connect(), localRoot: a.local, remoteRoot: a.remote, remote: new Map(), method: 'tar', compress }, plan);
    expect(res.unsent).toEqual([]);
  } finally {
    spy.mockRestore();
  }
  expect(early).toEqual([40]);
  expect(a.differences()).toEqual([]);
  expect(staging(a)).toEqual([]);
});

test.each([
  ['gzip', true],
  ['plain', false],
])('the server\'s tar failing early on a large archive (%s) is reported at once: the local tar is stopped, not left blocked on a full pipe', async (_name, compress) => {
  const tree: Record<string, string> = {};
  // Random bytes (gzip cannot shrink them): far more than the pipes and the channel hold.
  for (let i = 0; i < 8; i++) tree[`big${i}.bin`] = crypto.randomBytes(1024 * 1024).toString('base64');
  const { a, plan } = newFiles(tree, []);
  // The server's tar reads a little, then fails (as a full disk would).
  const failing = rewriting(await connect(), (command) =>
    command.includes('tar -x') ? `tar() { head -c 4096 >/dev/null; echo 'tar: write error: No space left on device' >&2; return 2; }\n${command}` : command,
  );
  const t0 = Date.now();
  await expect(applyPlan({ conn: failing, localRoot: a.local, remoteRoot: a.remote, remote: new Map(), method: 'tar', compress }, plan)).rejects.toThrow(/No space left on device/);
  expect(Date.now() - t0).toBeLessThan(10_000);
  // No local tar or gzip of ours left running.
  const ours = execFileSync('ps', ['-o', 'args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).split('\n').filter((l) => /^(tar|gzip) /.test(l));
  expect(ours).toEqual([]);
  expect(staging(a)).toEqual([]);
});

test('a file replaced by a symlink out of the root between the plan and the packing is not moved into place (tar archives what the path holds by then)', async () => {
  const a = arena();
  const tree: Record<string, string> = { 'sub/x.txt': 'as planned' };
  for (let i = 0; i < 10; i++) tree[`sub/f${i}.txt`] = `f ${i}`;
  writeTree(a.local, tree);
  remoteTree(a, { 'sub/x.txt': 'the remote version' });
  const plan: Plan = { ...emptyPlan(), files: Object.keys(tree).map((rel) => item(a, rel)) };
  const x = path.join(a.local, 'sub/x.txt');
  // Just before the local tar starts reading (the plan is made).
  const real = localTarModule.localTar;
  const spy = jest.spyOn(localTarModule, 'localTar').mockImplementation((...args) => {
    fs.rmSync(x);
    fs.symlinkSync(path.join(a.base, 'sentinel'), x);
    return real(...args);
  });
  try {
    const res = await applyPlan({ conn: await connect(), localRoot: a.local, remoteRoot: a.remote, remote: new Map<string, Entry>([['sub', DIR], ['sub/x.txt', { type: 'file', size: 18, mtimeMs: 0, mode: 0o644 }]]), method: 'tar' }, plan);
    expect(spy).toHaveBeenCalled();
    expect(res.changed).toEqual(['sub/x.txt']);
  } finally {
    spy.mockRestore();
  }
  expect(fs.lstatSync(path.join(a.remote, 'sub/x.txt')).isSymbolicLink()).toBe(false);
  expect(fs.readFileSync(path.join(a.remote, 'sub/x.txt'), 'utf8')).toBe('the remote version');
  expect(staging(a)).toEqual([]);
});
