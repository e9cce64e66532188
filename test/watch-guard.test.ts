/**
 * The watch guard's rules without a server (issue 13): rescans wait for the first mirror, a full one
 * makes scoped ones moot, the root reported dirty means a rescan, a clock jump means a sleep, a new
 * folder is looked at again, a letter-case rename marks its folder; 'auto' by platform and file
 * system; the Windows name rules; `--watch` parsing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveSessions } from '../sync/cli/sync';
import { UsageError } from '../sync/errors';
import { foldKey, portabilityWarnings, windowsNameProblem } from '../sync/engine/portable-names';
import { autoChoice, WatchGuard } from '../sync/engine/watch';
import { darwinMountOf, networkFsOf } from '../sync/engine/watch/fs-kind';
import { mountsInside, PAUSE_MS, RELOOK_MS, TICK_MS } from '../sync/engine/watch/guard';
import { tempDir, writeTree } from './support/trees';
import { SilentBackend } from './support/watch';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function guard(extra: { now?: () => number; caseInsensitive?: boolean; root?: string } = {}): { g: WatchGuard; b: SilentBackend; scans: string[]; dirty: string[][] } {
  const b = new SilentBackend();
  const scans: string[] = [];
  const dirty: string[][] = [];
  const g = new WatchGuard({ root: extra.root ?? '/nonexistent', backend: b, rescanMs: 600_000, now: extra.now, caseInsensitive: extra.caseInsensitive, rescan: async (scope) => {
    scans.push(scope);
    await sleep(10);
    return [`changed-under-${scope || 'root'}`];
  } });
  g.on('dirty', (r) => dirty.push(r));
  return { g, b, scans, dirty };
}

test('rescans wait for arm(); a full rescan owed makes scoped ones moot; results are marked dirty', async () => {
  const { g, b, scans, dirty } = guard();
  await g.start();
  b.emit('rescan', 'a', 'overflow');
  b.emit('rescan', '', 'overflow');
  b.emit('rescan', 'b', 'null name');
  await sleep(30);
  expect(scans).toEqual([]);
  g.arm();
  await sleep(50);
  expect(scans).toEqual(['']);
  expect(dirty).toEqual([['changed-under-root']]);
  await g.close();
});

test('the root reported dirty (a coalesced event) becomes a full rescan; other paths pass through', async () => {
  const { g, b, scans, dirty } = guard();
  await g.start();
  g.arm();
  b.emit('dirty', ['', 'src/a.ts']);
  await sleep(50);
  expect(scans).toEqual(['']);
  expect(dirty[0]).toEqual(['src/a.ts']);
  await g.close();
});

test('a wall-clock jump (sleep/wake) rescans the whole tree; a normal tick does not', async () => {
  let offset = 0;
  const { g, scans } = guard({ now: () => Date.now() + offset });
  await g.start();
  g.arm();
  g.checkPause();
  await sleep(20);
  expect(scans).toEqual([]);
  offset += TICK_MS + PAUSE_MS + 1_000;
  g.checkPause();
  await sleep(30);
  expect(scans).toEqual(['']);
  await g.close();
});

test('a folder reported created is looked at again RELOOK_MS later; a file is not', async () => {
  const root = tempDir('guard');
  writeTree(root, { 'new/a/b.txt': 'b', 'file.txt': 'f' });
  const { g, b, scans } = guard({ root, caseInsensitive: false });
  await g.start();
  g.arm();
  b.emit('created', ['new', 'file.txt']);
  await sleep(RELOOK_MS + 100);
  expect(scans).toEqual(['new']);
  await g.close();
  fs.rmSync(root, { recursive: true });
});

test('case-insensitive file systems: a path found under another letter case marks its folder', async () => {
  const root = tempDir('guard');
  writeTree(root, { 'src/README.md': 'r' });
  // lstat on Linux is exact: a link stands in for the case-insensitive match of 'src/readme.md'.
  fs.symlinkSync('README.md', path.join(root, 'src/readme-alias'));
  const { g, b, dirty, scans } = guard({ root, caseInsensitive: true });
  await g.start();
  b.emit('created', ['src/README.md']);
  await sleep(50);
  expect(dirty).toEqual([]); // listed under its exact name: nothing more
  fs.renameSync(path.join(root, 'src/readme-alias'), path.join(root, 'src/other'));
  b.emit('created', ['src/README.md', 'src/gone.md']);
  await sleep(50);
  expect(dirty).toEqual([]);
  // A name lstat finds that the folder's listing lacks (as 'readme.md' after a rename to 'README.md'
  // on APFS or NTFS); on Linux 'src/.' is one: its folder is marked dirty, and at the root, a rescan.
  b.emit('created', ['src/.']);
  await sleep(50);
  expect(dirty).toEqual([['src']]);
  g.arm();
  b.emit('created', ['.']);
  await sleep(50);
  expect(scans).toEqual(['']);
  await g.close();
  fs.rmSync(root, { recursive: true });
});

test("'auto' on Linux is per-folder on a local file system; network file systems are recognised", () => {
  expect(autoChoice(__dirname, 'linux').choice).toBe('per-folder');
  expect(networkFsOf(__dirname, 'linux')).toBeUndefined();
  expect(networkFsOf('\\\\fileserver\\share\\repo', 'win32')).toBe('unc');
  expect(networkFsOf('C:\\Users\\dev\\repo', 'win32')).toBeUndefined();
  const mount = ['/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)', '/dev/disk3s5 on /System/Volumes/Data (apfs, local, journaled)', '//dev@nas/code on /Volumes/code (smbfs, nodev, nosuid, mounted by dev)'].join('\n');
  expect(darwinMountOf(mount, '/Volumes/code/app')).toEqual({ point: '/Volumes/code', type: 'smbfs' });
  expect(darwinMountOf(mount, '/Users/dev/app')).toEqual({ point: '/', type: 'apfs' });
});

test('names Windows cannot hold, and names that collide letter case or Unicode form aside, are reported', () => {
  for (const n of ['CON', 'nul.txt', 'com1.log', 'LPT9', 'a:b', 'what?', 'tab\tname', 'trailing.', 'trailing ']) expect(windowsNameProblem(n)).toBeDefined();
  for (const n of ['console.ts', 'nullable.ts', 'README.md', 'a.b.c', '.env']) expect(windowsNameProblem(n)).toBeUndefined();
  const w = portabilityWarnings(['src/Makefile', 'src/makefile', 'docs/Makefile', 'caf\u00e9.txt', 'cafe\u0301.txt', 'aux.c']);
  expect(w.map((r) => r.reason)).toEqual([
    expect.stringMatching(/^'src\/makefile' and 'src\/Makefile' differ only in letter case/),
    expect.stringMatching(/^'cafe\u0301.txt' and 'caf\u00e9.txt' differ only/),
    expect.stringMatching(/^'aux.c' is a reserved device name on Windows/),
  ]);
});

test('portabilityWarnings reports what a name-by-name look reports, in the same order (random trees of clashing names)', () => {
  // The plain way it replaced: every name's folded key kept; a collision reported at the later name.
  const plain = (rels: string[]): string[] => {
    const out: string[] = [];
    const seen = new Map<string, string>();
    for (const rel of rels) {
      const i = rel.lastIndexOf('/');
      const [parent, name] = [rel.slice(0, Math.max(i, 0)), rel.slice(i + 1)];
      const problem = windowsNameProblem(name);
      if (problem) out.push(`'${rel}' ${problem}`);
      const key = `${parent}/${foldKey(name)}`;
      const other = seen.get(key);
      if (other === undefined) seen.set(key, rel);
      else out.push(`'${rel}' and '${other}' differ`);
    }
    return out;
  };
  const parts = ['a', 'A', 'b', 'Make', 'make', 'caf\u00e9', 'cafe\u0301', 'CAF\u00c9', 'con', 'Con.x', 'x.', 'y ', 'q?', 'com1'];
  let seed = 7;
  const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (let round = 0; round < 300; round++) {
    const rels = new Set<string>();
    for (let k = rnd(30); k >= 0; k--) rels.add(Array.from({ length: 1 + rnd(3) }, () => parts[rnd(parts.length)]).join('/'));
    const list = [...rels];
    const got = portabilityWarnings(list).map((r) => r.reason.replace(/; (it is sent|both are sent).*/, '').replace(/ only in letter case or Unicode form$/, ''));
    expect(got).toEqual(plain(list));
  }
});

test('--watch takes a backend name; anything else is a usage error naming the choices', () => {
  const base = { local: __dirname, remote: '/srv/ws', host: 'h', port: '22', user: 'u', identity: __filename, knownHosts: __filename };
  expect(() => resolveSessions({ ...base, watch: 'inotify' })).toThrow(UsageError);
  expect(() => resolveSessions({ ...base, watch: 'inotify' })).toThrow(/--watch 'inotify' is not a watch backend. Pass one of auto, per-folder, parcel, recursive, poll/);
});

test('mount points inside the root are read from mountinfo (escapes undone, the root itself and its neighbours left out)', () => {
  const table = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '40 22 0:35 / /work/app rw shared:20 - tmpfs tmpfs rw',
    '41 40 0:36 / /work/app/node\\040modules rw shared:21 - tmpfs tmpfs rw',
    '42 40 0:37 / /work/app/a/b\\134c rw shared:22 - tmpfs tmpfs rw',
    '43 22 0:38 / /work/application rw shared:23 - tmpfs tmpfs rw',
    '',
  ].join('\n');
  expect([...mountsInside('/work/app', table)].sort()).toEqual(['41 node modules', '42 a/b\\c']);
  expect([...mountsInside('/', table)].sort()).toEqual(['40 work/app', '41 work/app/node modules', '42 work/app/a/b\\c', '43 work/application']);
});

test('a file system mounted or unmounted inside the tree: its watches dropped and its folder rescanned at the next tick', async () => {
  const root = tempDir('guard-mounts');
  try {
    const base = `22 1 8:1 / / rw - ext4 /dev/sda1 rw\n`;
    let table = base;
    const dropped: string[] = [];
    const b = new (class extends SilentBackend {
      override removeTree(rel?: string): void {
        dropped.push(rel ?? '');
      }
    })();
    const scans: string[] = [];
    const g = new WatchGuard({ root, backend: b, rescanMs: 600_000, mountTable: () => table, rescan: async (scope) => (scans.push(scope), []) });
    await g.start();
    g.arm();
    g.checkMounts();
    expect(dropped).toEqual([]);
    table = `${base}50 22 0:40 / ${fs.realpathSync(root)}/m rw - tmpfs tmpfs rw\n`;
    g.checkMounts();
    await sleep(20);
    expect(dropped).toEqual(['m']);
    expect(scans).toEqual(['m']);
    g.checkMounts(); // unchanged: nothing more
    table = base; // unmounted
    g.checkMounts();
    await sleep(20);
    expect(dropped).toEqual(['m', 'm']);
    expect(scans).toEqual(['m', 'm']);
    await g.close();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
