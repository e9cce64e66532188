/**
 * Two-way onto a laptop that cannot hold every name the container can: a file system that folds names
 * (macOS, Windows: `README.md` and `readme.md`, a folder `Src` beside `src`, `é` in two Unicode forms),
 * or Windows' forbidden names (`a:b`, `a\b`, `notes.`, `con.txt`). They are held with a warning —
 * nothing overwritten, nothing written under another name, nothing deleted on either side, no pass
 * retried for ever. This machine is Linux on case-sensitive file systems: the laptop's rules are
 * declared (`localFoldsCase`, `localWindowsNames`: what the probe and the platform say on macOS and
 * Windows), and the folder reads are real.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { foldsCase } from '../sync/engine/two-way/pull-names';
import { useArena } from './support/hostile';
import { snapshot, writeTree } from './support/trees';
import { pass, remote, twoWay } from './support/two-way';

jest.setTimeout(30_000);
const { sshd, arena } = useArena();

const NFC = 'caf\u00e9.txt';
const NFD = 'cafe\u0301.txt';

test('the probe: this machine folds no case, and the probe leaves nothing behind', () => {
  const a = arena();
  expect(foldsCase(a.local)).toBe(false);
  expect(fs.readdirSync(a.local)).toEqual([]);
});

test('on a folding laptop the second spelling is held with a warning; both stay in the container, the first comes back', async () => {
  const a = arena();
  remote(sshd(), a, `printf upper > README.md && printf lower > readme.md && mkdir Src src && printf a > Src/a.txt && printf b > src/b.txt && printf nfc > '${NFC}' && printf nfd > '${NFD}' && printf plain > other.txt`);
  const first = await pass(sshd(), a, { localFoldsCase: true });
  expect(first.conflicts).toEqual([]);
  expect(fs.readdirSync(a.local).sort()).toEqual(['README.md', 'Src', NFD, 'other.txt'].sort());
  expect(fs.readFileSync(path.join(a.local, 'README.md'), 'utf8')).toBe('upper');
  expect(fs.readdirSync(path.join(a.local, 'Src'))).toEqual(['a.txt']);
  expect(first.warnings).toEqual(expect.arrayContaining([
    "'readme.md' is held in the container: this laptop's file system does not tell 'readme.md' from 'README.md' (letter case or Unicode form). Both stay there; rename one of them in the container",
    expect.stringContaining("'src' is held in the container: this laptop's file system does not tell 'src' from 'Src'"),
    expect.stringContaining(`'${NFC}' is held in the container`),
  ]));
  // Again: the same holds, nothing deleted or overwritten on either side.
  const local = snapshot(a.local);
  const second = await pass(sshd(), a, { localFoldsCase: true });
  expect(second.conflicts).toEqual([]);
  expect(snapshot(a.local)).toEqual(local);
  expect(fs.readFileSync(path.join(a.remote, 'readme.md'), 'utf8')).toBe('lower');
  expect(fs.readFileSync(path.join(a.remote, 'src/b.txt'), 'utf8')).toBe('b');
  expect(fs.readFileSync(path.join(a.remote, NFC), 'utf8')).toBe('nfc');
});

test('a new spelling made in the container while watching is held against the name already on the laptop', async () => {
  const a = arena();
  writeTree(a.local, { 'Makefile': 'local' });
  const s = twoWay(sshd(), a, { localFoldsCase: true });
  const warnings: string[] = [];
  s.on('warning', (w) => warnings.push(w));
  try {
    await s.start();
    remote(sshd(), a, 'printf container > makefile && printf new > fresh.txt');
    for (const deadline = Date.now() + 10_000; !fs.existsSync(path.join(a.local, 'fresh.txt')) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    expect(fs.readFileSync(path.join(a.local, 'fresh.txt'), 'utf8')).toBe('new');
    for (const deadline = Date.now() + 5_000; warnings.length === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    expect(warnings).toContain("'makefile' is held in the container: this laptop's file system does not tell 'makefile' from 'Makefile' (letter case or Unicode form). Both stay there; rename one of them in the container");
    expect(fs.readdirSync(a.local).sort()).toEqual(['Makefile', 'fresh.txt']);
    expect(fs.readFileSync(path.join(a.local, 'Makefile'), 'utf8')).toBe('local');
  } finally {
    await s.close();
  }
  expect(fs.readFileSync(path.join(a.remote, 'makefile'), 'utf8')).toBe('container');
  expect(fs.readFileSync(path.join(a.remote, 'Makefile'), 'utf8')).toBe('local');
});

test('without folding (Linux) both spellings come back', async () => {
  const a = arena();
  remote(sshd(), a, 'printf upper > README.md && printf lower > readme.md');
  const r = await pass(sshd(), a);
  expect(r.warnings).toEqual([]);
  expect(fs.readdirSync(a.local).sort()).toEqual(['README.md', 'readme.md']);
});

test('on Windows, names it cannot hold are held with the reason; the rest comes back; a held folder holds its subtree', async () => {
  const a = arena();
  remote(sshd(), a, `printf 1 > a:b && printf 2 > 'back\\slash' && printf 3 > notes. && printf 4 > con.txt && printf 5 > ok.txt && mkdir aux && printf 6 > aux/inner.txt && printf 7 > 'tab\there'`);
  const r = await pass(sshd(), a, { localWindowsNames: true });
  expect(r.conflicts).toEqual([]);
  expect(fs.readdirSync(a.local)).toEqual(['ok.txt']);
  expect(r.warnings.sort()).toEqual([
    "'a:b' is held in the container: the name holds ':', which Windows forbids in names. Rename it in the container",
    "'aux' is held in the container: the name is a reserved device name on Windows. Rename it in the container",
    "'back\\slash' is held in the container: the name holds '\\', which Windows forbids in names. Rename it in the container",
    "'con.txt' is held in the container: the name is a reserved device name on Windows. Rename it in the container",
    "'notes.' is held in the container: the name ends with a dot or a space, which Windows drops. Rename it in the container",
    "'tab\there' is held in the container: the name holds '\\x09', which Windows forbids in names. Rename it in the container",
  ]);
  const second = await pass(sshd(), a, { localWindowsNames: true });
  expect(second.conflicts).toEqual([]);
  expect(fs.readdirSync(a.local)).toEqual(['ok.txt']);
  expect(fs.readFileSync(path.join(a.remote, 'aux/inner.txt'), 'utf8')).toBe('6');
  expect(fs.readFileSync(path.join(a.remote, 'a:b'), 'utf8')).toBe('1');
});

test('on a folding laptop a rename in letter case only in the container comes through (the old spelling goes first)', async () => {
  const a = arena();
  remote(sshd(), a, 'printf f > Foo.txt && mkdir Src && printf a > Src/a.txt');
  await pass(sshd(), a, { localFoldsCase: true });
  expect(fs.readdirSync(a.local).sort()).toEqual(['Foo.txt', 'Src']);
  remote(sshd(), a, 'mv Foo.txt foo.txt && mv Src src');
  const r = await pass(sshd(), a, { localFoldsCase: true });
  expect(r.warnings).toEqual([]);
  expect(fs.readdirSync(a.local).sort()).toEqual(['foo.txt', 'src']);
  expect(fs.readFileSync(path.join(a.local, 'src/a.txt'), 'utf8')).toBe('a');
  expect(fs.readFileSync(path.join(a.local, 'foo.txt'), 'utf8')).toBe('f');
});
