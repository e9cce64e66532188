/**
 * The look at packed files (sync/engine/packed-look.ts) and the archive bounds it follows
 * (sync/engine/local-tar.ts, gnuMemberEnds): the bounds are checked against real GNU tar archives of
 * odd members (names and link targets around the 100-byte field, folders, sizes at block edges,
 * multi-byte names); a member is looked at only once the archive is past its bound; from the first
 * member seen changed on, the rest are looked at after the archive.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gnuMemberEnds, localTar } from '../sync/engine/local-tar';
import { PackedLook } from '../sync/engine/packed-look';
import { PlanItem } from '../sync/engine/plan';
import { tempDir } from './support/trees';

function gnuTar(): void {
  const v = execFileSync('tar', ['--version'], { encoding: 'utf8' });
  if (!/GNU tar/.test(v)) throw new Error(`these tests need GNU tar (found: ${v.split('\n')[0]}); install it: apt-get install tar`);
}

/** Makes `rel` in `root` and returns its plan item as the scan would. */
function make(root: string, rel: string, type: 'file' | 'dir' | 'symlink', size = 0, target = ''): PlanItem {
  const abs = path.join(root, rel);
  if (type === 'dir') fs.mkdirSync(abs, { recursive: true });
  else if (type === 'file') fs.writeFileSync(abs, Buffer.alloc(size, 97));
  else fs.symlinkSync(target, abs);
  const st = fs.lstatSync(abs);
  return { rel, entry: { type, size: type === 'file' ? size : 0, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, ...(type === 'symlink' ? { target } : {}) } };
}

/** The archive's offset just past each member's data (long-name and long-link headers belong to the member after them). */
function memberEnds(archive: Buffer): number[] {
  const ends: number[] = [];
  for (let off = 0; off + 512 <= archive.length; ) {
    const h = archive.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const type = String.fromCharCode(h[156]);
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type !== 'L' && type !== 'K') ends.push(off);
  }
  return ends;
}

async function archiveOf(root: string, members: readonly PlanItem[]): Promise<Buffer> {
  const t = localTar(root, members.map((m) => m.rel), { kind: 'gnu' });
  const chunks: Buffer[] = [];
  const ended = new Promise((r) => t.stream.on('data', (d: Buffer) => chunks.push(d)).once('end', r));
  await Promise.all([t.done, ended]);
  return Buffer.concat(chunks);
}

test("GNU tar's archive never goes past the bounds: long names and link targets around 100 bytes, folders, block edges, multi-byte names", async () => {
  gnuTar();
  const root = tempDir('packed-bounds-');
  const dirs: PlanItem[] = [];
  const links: PlanItem[] = [];
  const files: PlanItem[] = [];
  for (let n = 95; n <= 105; n++) {
    dirs.push(make(root, `d${'x'.repeat(n - 1)}`, 'dir'));
    links.push(make(root, `l${'y'.repeat(n - 1)}`, 'symlink', 0, 't'.repeat(n)));
    links.push(make(root, `m${n}`, 'symlink', 0, 'u'.repeat(n)));
    for (const size of [0, 1, 511, 512, 513, 10_240]) files.push(make(root, `f${'z'.repeat(n - 1)}.${size}`, 'file', size));
  }
  dirs.push(make(root, 'd', 'dir'), make(root, `d/${'é'.repeat(49)}`, 'dir'));
  files.push(make(root, 'é'.repeat(50), 'file', 10), make(root, 'é'.repeat(49), 'file', 10), make(root, `d/${'é'.repeat(49)}/✓`, 'file', 700));
  const members = [...dirs, ...links, ...files];
  const bounds = gnuMemberEnds(members);
  const actual = memberEnds(await archiveOf(root, members));
  expect(actual).toHaveLength(members.length);
  // Each member's own share (not only the running total, where an earlier member's slack could hide it).
  const share = (ends: ArrayLike<number>, i: number): number => ends[i] - (i > 0 ? ends[i - 1] : 0);
  const over = members.filter((_m, i) => share(actual, i) > share(bounds, i)).map((m) => `${m.rel.length}:${m.entry.type}`);
  expect(over).toEqual([]);
  // Tight: a short name's share is exact, and a member's slack is at most its long-name and long-link allowance.
  for (let i = 0; i < members.length; i++) {
    expect(share(bounds, i) - share(actual, i)).toBeLessThanOrEqual(Buffer.byteLength(members[i].rel) < 98 && members[i].entry.type !== 'symlink' ? 0 : 2048);
  }
});

test('a member is looked at once the archive is past its bound, not before; a change after its look is a later change', async () => {
  const root = tempDir('packed-look-');
  const members = [make(root, 'sub', 'dir'), make(root, 'sub/a', 'file', 100), make(root, 'sub/b', 'file', 2000), make(root, 'sub/c', 'file', 10)];
  const ends = gnuMemberEnds(members);
  const look = new PackedLook(root, members, ends);
  look.archived(ends[1] - 1); // the folder is past, 'a' is not
  expect(look.lookedEarly).toBe(1);
  fs.writeFileSync(path.join(root, 'sub/a'), 'changed before tar got to it'); // seen: 'a' not looked at yet
  look.archived(ends[2]);
  expect(look.lookedEarly).toBe(-1); // 'a' seen changed: the rest wait for the end
  fs.writeFileSync(path.join(root, 'sub/c'), 'changed while the archive may be off its bounds');
  expect(await look.rest()).toEqual(['sub/a', 'sub/c']);
});

test('members as planned are all looked at while the archive is written; those it changed after are not reported', async () => {
  const root = tempDir('packed-look-');
  const members = [make(root, 'sub', 'dir'), make(root, 'sub/link', 'symlink', 0, 'elsewhere'), make(root, 'sub/a', 'file', 100), make(root, 'sub/b', 'file', 0)];
  const ends = gnuMemberEnds(members);
  const look = new PackedLook(root, members, ends);
  look.archived(ends[ends.length - 1] + 1024);
  expect(look.lookedEarly).toBe(members.length);
  fs.writeFileSync(path.join(root, 'sub/a'), 'tar had read it whole before'); // the staged copy is the planned one
  expect(await look.rest()).toEqual([]);
});

test.each([
  ['a folder replaced by a file', (root: string) => (fs.rmdirSync(path.join(root, 'sub/d')), fs.writeFileSync(path.join(root, 'sub/d'), Buffer.alloc(100_000)))],
  ['a link replaced by a file', (root: string) => (fs.rmSync(path.join(root, 'sub/link')), fs.writeFileSync(path.join(root, 'sub/link'), Buffer.alloc(100_000)))],
  ['a file grown', (root: string) => fs.appendFileSync(path.join(root, 'sub/a'), Buffer.alloc(100_000))],
])('%s (it may push the later members past their bounds): the later ones are looked at after the archive', async (_name, swap) => {
  const root = tempDir('packed-look-');
  const members = [make(root, 'sub', 'dir'), make(root, 'sub/d', 'dir'), make(root, 'sub/link', 'symlink', 0, 'x'), make(root, 'sub/a', 'file', 100), make(root, 'sub/z', 'file', 100)];
  const ends = gnuMemberEnds(members);
  swap(root);
  const look = new PackedLook(root, members, ends);
  look.archived(ends[3]); // by the plan's bounds 'z' is not read yet
  expect(look.lookedEarly).toBe(-1);
  fs.writeFileSync(path.join(root, 'sub/z'), 'changed: tar may be reading it now');
  const changed = await look.rest();
  expect(changed).toContain('sub/z');
});

test('without bounds (bsdtar, the in-process packer) everything is looked at after the archive', async () => {
  const root = tempDir('packed-look-');
  const members = [make(root, 'a', 'file', 1), make(root, 'b', 'file', 1)];
  const look = new PackedLook(root, members);
  look.archived(1e9);
  expect(look.lookedEarly).toBe(-1);
  fs.writeFileSync(path.join(root, 'a'), 'changed');
  fs.rmSync(path.join(root, 'b'));
  expect(await look.rest()).toEqual(['a', 'b']);
});
