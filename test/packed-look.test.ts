/**
 * The look at packed files (sync/engine/packed-look.ts): it reads GNU tar's headers from the archive
 * as it is written, and looks at a file only once the next member's header (or the archive's end) has
 * been written, i.e. once tar has read it whole. Checked against real GNU tar archives of odd members
 * (names and link targets around the 100-byte field, hard links under long names, folders, sizes at
 * block edges, multi-byte names) fed in chunks of every awkward size; an archive it cannot read as
 * expected, and members tar left out, are looked at after the archive.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { localTar } from '../sync/engine/local-tar';
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
  return item(root, rel);
}

function item(root: string, rel: string): PlanItem {
  const st = fs.lstatSync(path.join(root, rel));
  const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
  return { rel, entry: { type, size: type === 'file' ? st.size : 0, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 } };
}

/** Where each member's header begins and its data ends, by name (an independent reading of the archive). */
function headers(archive: Buffer): Array<{ name: string; type: string; at: number; end: number }> {
  const out: Array<{ name: string; type: string; at: number; end: number }> = [];
  let long: string | undefined;
  for (let off = 0; off + 512 <= archive.length; ) {
    const h = archive.subarray(off, off + 512);
    if (h.every((b) => b === 0)) {
      out.push({ name: '(end)', type: 'end', at: off, end: off });
      break;
    }
    const type = String.fromCharCode(h[156]);
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    const data = archive.subarray(off + 512, off + 512 + size);
    const end = off + 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') long = data.subarray(0, data.indexOf(0)).toString('utf8');
    else if (type !== 'K') {
      out.push({ name: long ?? h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, ''), type, at: off, end });
      long = undefined;
    }
    off = end;
  }
  return out;
}

/** Writes a header's checksum anew (after a test changed it on purpose). */
function reseal(archive: Buffer, at: number): void {
  const h = archive.subarray(at, at + 512);
  h.fill(32, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

async function archiveOf(root: string, names: readonly string[]): Promise<Buffer> {
  const t = localTar(root, names, { kind: 'gnu' });
  const chunks: Buffer[] = [];
  const ended = new Promise((r) => t.stream.on('data', (d: Buffer) => chunks.push(d)).once('end', r));
  await Promise.all([t.done, ended]);
  return Buffer.concat(chunks);
}

/** Odd members: dirs, links and files as the plan lists them, in that order. */
function oddTree(root: string): { dirs: PlanItem[]; links: PlanItem[]; files: PlanItem[] } {
  const dirs: PlanItem[] = [];
  const links: PlanItem[] = [];
  const files: PlanItem[] = [];
  for (let n = 97; n <= 103; n++) {
    dirs.push(make(root, `d${'x'.repeat(n - 1)}`, 'dir'));
    links.push(make(root, `l${'y'.repeat(n - 1)}`, 'symlink', 0, 't'.repeat(n)));
    for (const size of [0, 1, 511, 512, 513, 10_240]) files.push(make(root, `f${'z'.repeat(n - 1)}.${size}`, 'file', size));
  }
  dirs.push(make(root, 'd', 'dir'), make(root, `d/${'é'.repeat(49)}`, 'dir'));
  files.push(make(root, 'é'.repeat(50), 'file', 10), make(root, `d/${'é'.repeat(49)}/✓`, 'file', 700));
  // Hard links under long names (pnpm's store): tar archives the later names as links, with a long-link header.
  const long = `h${'w'.repeat(150)}`;
  files.push(make(root, long, 'file', 0));
  fs.linkSync(path.join(root, long), path.join(root, 'hl'));
  files.push(item(root, 'hl'));
  fs.writeFileSync(path.join(root, 'big'), Buffer.alloc(100_000, 1));
  fs.linkSync(path.join(root, 'big'), path.join(root, `g${'v'.repeat(150)}`));
  files.push(item(root, 'big'), item(root, `g${'v'.repeat(150)}`), make(root, 'z-last', 'file', 3));
  return { dirs, links, files };
}

test.each([1, 7, 511, 512, 513, 10_240, 65_536])('every file of a real GNU tar archive is looked at while it is written, none before the next header is whole (fed %i bytes at a time)', async (step) => {
  gnuTar();
  const root = tempDir('packed-look-');
  const { dirs, links, files } = oddTree(root);
  // A link retargeted after it was planned, to a target past the name field: tar writes it larger.
  fs.rmSync(path.join(root, links[0].rel));
  fs.symlinkSync('u'.repeat(300), path.join(root, links[0].rel));
  const archive = await archiveOf(root, [...dirs, ...links, ...files].map((m) => m.rel));
  const hs = headers(archive);
  expect(hs.filter((h) => h.type === '1').map((h) => h.name).sort()).toEqual([`g${'v'.repeat(150)}`, 'hl'].sort());
  const look = new PackedLook(root, files, true);
  const lookedAt = new Map<string, number>();
  const fileNames = new Set(files.map((f) => f.rel));
  let seen = 0;
  for (let off = 0; off < archive.length; off += step) {
    look.archived(archive.subarray(off, Math.min(archive.length, off + step)));
    const end = Math.min(archive.length, off + step);
    while (lookedAt.size < look.lookedEarly) lookedAt.set(`#${seen++}`, end);
  }
  expect(look.lookedEarly).toBe(files.length);
  // The k-th file in the archive was looked at only once a whole header (or the end) followed its data.
  const order = hs.filter((h) => fileNames.has(h.name));
  order.forEach((h, k) => expect(lookedAt.get(`#${k}`)).toBeGreaterThanOrEqual(h.end + 512));
  // ... and by then: no later than the next member's own header.
  order.forEach((h, k) => expect(lookedAt.get(`#${k}`)).toBeLessThanOrEqual(hs[hs.indexOf(h) + 1].at + 512 + step));
  expect(await look.rest()).toEqual([]);
});

test('a file changed before its look is reported; one changed after it is not (tar had read it whole)', async () => {
  gnuTar();
  const root = tempDir('packed-look-');
  const files = [make(root, 'a', 'file', 100), make(root, 'b', 'file', 2000), make(root, 'c', 'file', 10)];
  const archive = await archiveOf(root, files.map((f) => f.rel));
  const hs = headers(archive);
  const look = new PackedLook(root, files, true);
  look.archived(archive.subarray(0, hs[1].at + 511)); // b's header not whole: a not looked at yet
  expect(look.lookedEarly).toBe(0);
  fs.writeFileSync(path.join(root, 'a'), 'changed before its look');
  look.archived(archive.subarray(hs[1].at + 511, hs[2].at + 512)); // a and b looked at
  expect(look.lookedEarly).toBe(2);
  fs.writeFileSync(path.join(root, 'b'), 'changed after tar read it: a later change');
  look.archived(archive.subarray(hs[2].at + 512));
  expect(look.lookedEarly).toBe(3);
  expect(await look.rest()).toEqual(['a']);
});

test.each([
  ['a broken checksum', (a: Buffer, at: number) => (a[at + 148] = 0x37)],
  ['a member type GNU tar does not write here (a FIFO)', (a: Buffer, at: number) => (a[at + 156] = '6'.charCodeAt(0))],
  ['a name the plan does not hold', (a: Buffer, at: number) => (a[at] = 'Q'.charCodeAt(0))],
])('%s stops the following: what was not looked at yet is looked at after the archive', async (_name, spoil) => {
  gnuTar();
  const root = tempDir('packed-look-');
  const files = [make(root, 'a', 'file', 100), make(root, 'b', 'file', 100), make(root, 'c', 'file', 100)];
  const archive = await archiveOf(root, files.map((f) => f.rel));
  const hs = headers(archive);
  spoil(archive, hs[1].at);
  if (!_name.includes('checksum')) reseal(archive, hs[1].at); // only what the case names is wrong
  const look = new PackedLook(root, files, true);
  look.archived(archive);
  expect(look.lookedEarly).toBe(1); // 'a', before the spoilt header
  fs.writeFileSync(path.join(root, 'b'), 'changed');
  fs.writeFileSync(path.join(root, 'c'), 'changed');
  expect(await look.rest()).toEqual(['b', 'c']);
});

test('files tar left out (vanished) or found otherwise (a folder now, or under a folder now a file) are looked at after the archive and reported, without a throw', async () => {
  gnuTar();
  const root = tempDir('packed-look-');
  const files = [make(root, 'gone', 'file', 5), make(root, 'now-dir', 'file', 5), make(root, 'sub', 'dir'), make(root, 'sub/x', 'file', 5), make(root, 'kept', 'file', 5)].filter((m) => m.entry.type === 'file');
  fs.rmSync(path.join(root, 'gone'));
  fs.rmSync(path.join(root, 'now-dir'));
  fs.mkdirSync(path.join(root, 'now-dir'));
  const archive = await archiveOf(root, files.map((f) => f.rel));
  fs.rmSync(path.join(root, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'sub'), 'a file where the folder was'); // sub/x: ENOTDIR
  const look = new PackedLook(root, files, true);
  look.archived(archive);
  expect(await look.rest()).toEqual(expect.arrayContaining(['gone', 'now-dir', 'sub/x']));
  expect((await look.rest()).includes('kept')).toBe(false);
});

test('without following (bsdtar, the in-process packer) everything is looked at after the archive', async () => {
  const root = tempDir('packed-look-');
  const files = [make(root, 'a', 'file', 1), make(root, 'b', 'file', 1)];
  const look = new PackedLook(root, files);
  look.archived(Buffer.alloc(2048));
  expect(look.lookedEarly).toBe(0);
  fs.writeFileSync(path.join(root, 'a'), 'changed');
  fs.rmSync(path.join(root, 'b'));
  expect(await look.rest()).toEqual(['a', 'b']);
});
