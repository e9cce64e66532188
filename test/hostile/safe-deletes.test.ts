/**
 * Deletes and mode changes on the server (sync/engine/remote-fix.ts) against the sidecar's sshd run by a
 * non-root user, when the server changed under the plan: a folder on the way to a delete that the
 * container replaced by a symlink (out of the root, or to a folder inside it) is never followed, at any
 * depth, by the bulk path's deletes, the SFTP path's, a delete-only batch, or two-way's records; with
 * perl and without it (the checked shell script). The sentinel beside the root stays untouched (useArena).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyPlan, remoteDelete } from '../../sync/engine/apply';
import { emptyPlan } from '../../sync/engine/plan';
import { FixOp, runFix } from '../../sync/engine/remote-fix';
import { Connection } from '../../sync/engine/transport';
import { Entry } from '../../sync/engine/tree';
import { Arena, remoteTree as remoteTreeOf, useArena, useConnection, without } from '../support/hostile';
import { snapshot, writeTree } from '../support/trees';

jest.setTimeout(60_000);

const { sshd, arena } = useArena();
const connect = useConnection(sshd);
const remoteTree = (a: Arena, tree: Record<string, string>, prepare?: () => void): void => remoteTreeOf(sshd(), a, tree, prepare);
const withoutPerl = (c: Connection): Connection => without('perl', c);

const FILE: Entry = { type: 'file', size: 1, mtimeMs: 0, mode: 0o644 };
const DIR: Entry = { type: 'dir', size: 0, mtimeMs: 0, mode: 0o755 };

/** A remote root whose folder 'out' the container made a link to the sentinel, and 'in' a link to 'real'. */
function swapped(a: Arena): void {
  const tree: Record<string, string> = { 'real/keep.txt': 'keep', 'real/sub/deep.txt': 'deep', 'real/x/y/z.txt': 'z' };
  for (let i = 0; i < 20; i++) tree[`ok/f${i}.txt`] = String(i);
  remoteTree(a, tree, () => {
    fs.symlinkSync(path.join(a.base, 'sentinel'), path.join(a.remote, 'out'));
    fs.symlinkSync('real', path.join(a.remote, 'in'));
    fs.mkdirSync(path.join(a.remote, 'deep'));
    fs.symlinkSync(path.join(a.remote, 'real'), path.join(a.remote, 'deep/x')); // deep/x/y: a link one level down
  });
}

// The plan's deletes as the listing saw them (out/, in/ and deep/x/ were folders then).
const DELETES = ['out/keep.txt', 'out/sub', 'in/keep.txt', 'in/sub', 'deep/x/y', ...Array.from({ length: 20 }, (_, i) => `ok/f${i}.txt`)];

describe.each([
  ['perl', (c: Connection) => c],
  ['no perl: the checked shell script', withoutPerl],
])('deletes through a folder replaced by a symlink (%s)', (_name, wrap) => {
  test.each(['tar', 'sftp', 'deletes only'])('are refused, nothing outside or beside is removed (%s)', async (how) => {
    const a = arena();
    swapped(a);
    writeTree(a.local, { 'new.txt': 'new' });
    const realBefore = snapshot(path.join(a.remote, 'real'));
    const c = wrap(await connect());
    const remote = new Map<string, Entry>();
    const ctx = { conn: c, localRoot: a.local, remoteRoot: a.remote, remote, method: how === 'tar' ? ('tar' as const) : ('sftp' as const) };
    const files = [{ rel: 'new.txt', entry: { ...FILE, size: 3, mtimeMs: fs.statSync(path.join(a.local, 'new.txt')).mtimeMs } }];
    const run = how === 'deletes only' ? remoteDelete(ctx, DELETES) : applyPlan(ctx, { ...emptyPlan(), deletes: DELETES, files });
    await expect(run).rejects.toThrow(/resolves outside .* nothing was written through it/);
    expect(snapshot(path.join(a.remote, 'real'))).toEqual(realBefore); // 'in' and 'deep/x' led there
    expect(fs.readdirSync(path.join(a.remote, 'ok'))).toEqual([]); // the deletes in real folders were done
    expect(fs.lstatSync(path.join(a.remote, 'out')).isSymbolicLink()).toBe(true);
  });
});

test.each([
  ['perl', (c: Connection) => c],
  ['no perl', withoutPerl],
])('removing a folder removes the links inside it, never what they lead to; read-only folders inside are opened (%s)', async (_name, wrap) => {
  const a = arena();
  remoteTree(a, { 'gone/a/b/c.txt': 'c', 'gone/ro/deep/f.txt': 'f', 'gone/top.txt': 't', 'real/keep.txt': 'keep' }, () => {
    fs.symlinkSync(path.join(a.base, 'sentinel'), path.join(a.remote, 'gone/a/out'));
    fs.symlinkSync(path.join(a.base, 'sentinel/keep.txt'), path.join(a.remote, 'gone/ro/file-out'));
    fs.symlinkSync('../../real', path.join(a.remote, 'gone/a/in'));
    fs.chmodSync(path.join(a.remote, 'gone/ro/deep'), 0o555);
    fs.chmodSync(path.join(a.remote, 'gone/ro'), 0o500);
  });
  const c = wrap(await connect());
  await remoteDelete({ conn: c, localRoot: a.local, remoteRoot: a.remote, remote: new Map(), method: 'sftp' }, ['gone']);
  expect(fs.readdirSync(a.remote)).toEqual(['real']);
  expect(fs.readFileSync(path.join(a.remote, 'real/keep.txt'), 'utf8')).toBe('keep');
});

test.each([
  ['perl', (c: Connection) => c],
  ['no perl', withoutPerl],
])("two-way's records: a file (F), an empty folder (D) and a leftover (R) go; a folder kept when not empty; a refused file named; nothing through a swapped folder (%s)", async (_name, wrap) => {
  const a = arena();
  remoteTree(a, { 'd/f.txt': 'f', 'd/g.txt': 'g', 'full/new.txt': 'new', '.kubedev-stage-1/x': 'x', 'real/keep.txt': 'keep', 'ro/-x y': 'x' }, () => {
    fs.symlinkSync(path.join(a.base, 'sentinel'), path.join(a.remote, 'out'));
    fs.symlinkSync('real', path.join(a.remote, 'in'));
    fs.chmodSync(path.join(a.remote, 'ro'), 0o555);
  });
  const c = wrap(await connect());
  const ops: FixOp[] = [
    { k: 'R', rel: '.kubedev-stage-1' },
    { k: 'F', rel: 'd/f.txt' },
    { k: 'F', rel: 'd/g.txt' },
    { k: 'D', rel: 'd' },
    { k: 'D', rel: 'full' },
    { k: 'F', rel: 'out/keep.txt' },
    { k: 'D', rel: 'out/sub' },
    { k: 'F', rel: 'in/keep.txt' },
    { k: 'C', rel: 'in/keep.txt', mode: 0o600 },
    { k: 'F', rel: 'ro/-x y' },
    { k: 'D', rel: 'ro' },
  ];
  const rep = await runFix(c, a.remote, ops, { what: 'deleting' });
  expect(rep.denied.sort()).toEqual(['in/keep.txt', 'in/keep.txt', 'out/keep.txt', 'out/sub']);
  expect(rep.failed).toEqual([['ro/-x y', 'Permission denied']]);
  expect(fs.readdirSync(a.remote).sort()).toEqual(['full', 'in', 'out', 'real', 'ro']);
  expect(fs.readdirSync(path.join(a.remote, 'full'))).toEqual(['new.txt']);
  expect(fs.statSync(path.join(a.remote, 'real/keep.txt')).mode & 0o777).toBe(0o644);
});

const ODD = [' lead space', '-rf', 'new\nline', 'tab\there', 'it\'s "q" $x `y` \\z *', 'ünïcödé ✓'];

describe.each([
  ['perl', (c: Connection) => c],
  ['no perl', withoutPerl],
])('odd names through the deletes and moves (%s)', (_name, wrap) => {
  test.each(['tar', 'sftp'])('%s: in folders with odd names, files are deleted, replaced and added; a deleted folder goes whole, a name that is not UTF-8 inside it too', async (how) => {
    const a = arena();
    const before: Record<string, string> = { 'bye/x': 'x', 'bye/ro/y': 'y' };
    const after: Record<string, string> = {};
    for (const d of ODD) {
      Object.assign(before, { [`${d}/${d}`]: 'old', [`${d}/gone ${d}`]: 'gone', [`${d}/-dir/${d}/deep`]: 'gone' });
      Object.assign(after, { [`${d}/${d}`]: `new ${d}`, [`${d}/new ${d}`]: 'new' });
    }
    writeTree(a.local, after);
    remoteTree(a, before, () => {
      fs.writeFileSync(Buffer.concat([Buffer.from(`${a.remote}/bye/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]), 'not utf-8');
      fs.chmodSync(path.join(a.remote, 'bye/ro'), 0o555);
    });
    const remote = new Map<string, Entry>([['bye', DIR], ['bye/ro', DIR], ...ODD.map((d): [string, Entry] => [d, DIR])]);
    const deletes = ['bye', ...ODD.flatMap((d) => [`${d}/gone ${d}`, `${d}/-dir`])];
    const files = Object.keys(after).map((rel) => {
      const st = fs.statSync(path.join(a.local, rel));
      return { rel, entry: { type: 'file' as const, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 } };
    });
    const c = wrap(await connect());
    const res = await applyPlan({ conn: c, localRoot: a.local, remoteRoot: a.remote, remote, method: how as 'tar' | 'sftp' }, { ...emptyPlan(), deletes, files });
    expect(res.unsent).toEqual([]);
    expect(a.differences()).toEqual([]);
  });
});

test.each([
  ['perl', (c: Connection) => c, 'sftp', "'ro/link': Permission denied; 'ro/tab\there': Permission denied"],
  ['the remote helper, then perl', (c: Connection) => c, 'helper', "'ro/link': Permission denied; 'ro/tab\there': Permission denied"],
  ['no perl', withoutPerl, 'sftp', "rm: cannot remove './link': Permission denied"],
])('a delete the server refuses is an error naming the path and the fix; a link there is not followed to open what it leads to (%s)', async (_name, wrap, method, says) => {
  const a = arena();
  remoteTree(a, { 'ro/tab\there': 'x', 'other.txt': 'o' }, () => {
    fs.symlinkSync(path.join(a.base, 'sentinel/ro.txt'), path.join(a.remote, 'ro/link')); // 0444 there: a chmod -R through it shows
    fs.chmodSync(path.join(a.remote, 'ro'), 0o555);
  });
  const c = wrap(await connect());
  // The listing did not know 'ro' was read-only (made so since): nothing opens it.
  const run = remoteDelete({ conn: c, localRoot: a.local, remoteRoot: a.remote, remote: new Map([['ro', DIR]]), method: method as 'sftp' | 'helper' }, ['ro/link', 'ro/tab\there', 'other.txt']);
  await expect(run).rejects.toThrow(`deleting failed on the remote (exit 1): ${says}. The remote user cannot write there: fix the owner or mode of '${a.remote}' or pass a --remote the user owns.`);
  expect(fs.readdirSync(path.join(a.remote, 'ro')).sort()).toEqual(['link', 'tab\there']);
});
