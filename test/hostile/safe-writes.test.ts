/**
 * The SFTP path's writes (sync/engine/apply-sftp.ts: the fast link, where the remote helper is not used)
 * against the sidecar's sshd run by a non-root user, when a folder the plan writes into was replaced by a
 * symlink on the server since it was listed: nothing is written, made, linked or chmod-ed through it
 * (SFTP follows links), out of the root or to another folder inside it; the error names the path. The
 * sentinel beside the root stays untouched (useArena). Writes into real folders still go.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyPlan } from '../../sync/engine/apply';
import { emptyPlan, Plan } from '../../sync/engine/plan';
import { Entry } from '../../sync/engine/tree';
import { deltaContext, put, sendOne } from '../support/delta';
import { Arena, remoteTree as remoteTreeOf, useArena, useConnection } from '../support/hostile';
import { snapshot, writeTree } from '../support/trees';

jest.setTimeout(60_000);

const { sshd, arena } = useArena();
const connect = useConnection(sshd);

/** A remote root whose folder 'out' the container made a link to the sentinel, 'in' a link to 'real', and 'f' a link to a file there. */
function swapped(a: Arena): void {
  remoteTreeOf(sshd(), a, { 'real/keep.txt': 'keep', 'ok/old.txt': 'old' }, () => {
    fs.symlinkSync(path.join(a.base, 'sentinel'), path.join(a.remote, 'out'));
    fs.symlinkSync('real', path.join(a.remote, 'in'));
    fs.symlinkSync(path.join(a.base, 'sentinel', 'keep.txt'), path.join(a.remote, 'f'));
  });
}

function file(a: Arena, rel: string, text: string): { rel: string; entry: Entry } {
  writeTree(a.local, { [rel]: text });
  const st = fs.statSync(path.join(a.local, rel));
  return { rel, entry: { type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode: 0o644 } };
}

const DIR: Entry = { type: 'dir', size: 0, mtimeMs: 0, mode: 0o755 };

const cases: Array<[string, (a: Arena) => Partial<Plan>]> = [
  ['a file into a folder linked out of the root', (a) => ({ files: [file(a, 'out/new.txt', 'new')] })],
  ['a file into a folder linked inside the root', (a) => ({ files: [file(a, 'in/new.txt', 'new')] })],
  ['a new folder (and a file in it) under a linked folder', (a) => ({ dirs: [{ rel: 'out/sub', entry: DIR }], files: [file(a, 'out/sub/new.txt', 'new')] })],
  ['a symlink into a linked folder', () => ({ links: [{ rel: 'out/l', entry: { type: 'symlink', size: 0, mtimeMs: 0, mode: 0o777, target: 'x' } }] })],
  ['a mode change of a file that is now a link out of the root', () => ({ chmods: [{ rel: 'f', entry: { type: 'file', size: 1, mtimeMs: 0, mode: 0o600 } }] })],
];

test.each(cases)('%s: refused, nothing written through it', async (_name, make) => {
  const a = arena();
  swapped(a);
  const realBefore = snapshot(path.join(a.remote, 'real'));
  const ok = file(a, 'ok/also.txt', 'also');
  const c = await connect();
  const ctx = { conn: c, localRoot: a.local, remoteRoot: a.remote, remote: new Map<string, Entry>(), method: 'sftp' as const };
  const plan: Plan = { ...emptyPlan(), ...make(a) };
  await expect(applyPlan(ctx, { ...plan, files: [...plan.files, ok] })).rejects.toThrow(/resolves outside .* nothing was written through it/);
  expect(snapshot(path.join(a.remote, 'real'))).toEqual(realBefore);
  expect(fs.lstatSync(path.join(a.remote, 'out')).isSymbolicLink()).toBe(true);
  expect(fs.existsSync(path.join(a.remote, 'ok/also.txt'))).toBe(false); // checked before anything was written
});

test('writes into real folders (and a root reached through a link) go as before', async () => {
  const a = arena();
  swapped(a);
  const viaLink = path.join(a.base, 'root-link');
  fs.symlinkSync(a.remote, viaLink);
  const c = await connect();
  const ctx = { conn: c, localRoot: a.local, remoteRoot: viaLink, remote: new Map<string, Entry>(), method: 'sftp' as const };
  const plan: Plan = { ...emptyPlan(), dirs: [{ rel: 'ok/sub', entry: DIR }], files: [file(a, 'ok/new.txt', 'new'), file(a, 'ok/sub/deep.txt', 'deep'), file(a, 'top.txt', 'top')] };
  await applyPlan(ctx, plan);
  expect(fs.readFileSync(path.join(a.remote, 'ok/new.txt'), 'utf8')).toBe('new');
  expect(fs.readFileSync(path.join(a.remote, 'ok/sub/deep.txt'), 'utf8')).toBe('deep');
  expect(fs.readFileSync(path.join(a.remote, 'top.txt'), 'utf8')).toBe('top');
});

test('a large file whose folder is now a link: its changed blocks are not worked on through it, nor is it sent whole', async () => {
  const a = arena();
  const big = crypto.randomBytes(20 * 1024 * 1024);
  remoteTreeOf(sshd(), a, { 'real/.keep': '' }, () => {
    fs.rmSync(path.join(a.remote, 'real/.keep'));
    fs.writeFileSync(path.join(a.remote, 'real/big.bin'), big);
    fs.symlinkSync('real', path.join(a.remote, 'in'));
  });
  const changed = Buffer.from(big);
  changed.fill(7, 1024, 4096);
  put(a, 'in/big.bin', changed);
  const ctx = await deltaContext(sshd(), a);
  try {
    await expect(sendOne(ctx, 'in/big.bin', {})).rejects.toThrow(/resolves outside .* nothing was written through it/);
  } finally {
    await ctx.conn.close();
  }
  expect(fs.readFileSync(path.join(a.remote, 'real/big.bin')).equals(big)).toBe(true);
  expect(fs.readdirSync(path.join(a.remote, 'real'))).toEqual(['big.bin']);
});
