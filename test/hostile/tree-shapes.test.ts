/**
 * Hostile and everyday tree shapes against the sidecar's sshd run by a non-root user (issue 8, rows 3,
 * 5, 6, 7, 8, 9, 10, 11): each test asserts both trees byte for byte and that the sentinel beside the
 * remote root is untouched.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Arena, useArena } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { eventually, tempDir, writeTree } from '../support/trees';

jest.setTimeout(60_000);

const h = useArena();
let sshd: Sshd;
let a: Arena;
beforeEach(() => {
  sshd = h.sshd();
  a = h.arena();
});

describe('events are hints', () => {
  test('row 3: rm -rf build && mkdir -p build/sub && echo z > build/sub/z arrives, and later changes under it too', async () => {
    writeTree(a.local, { 'build/old/a.txt': 'a', 'build/b.txt': 'b', 'src/x.ts': 'x' });
    const s = a.session();
    await s.start();
    const b = path.join(a.local, 'build');
    fs.rmSync(b, { recursive: true });
    fs.mkdirSync(path.join(b, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(b, 'sub', 'z'), 'z\n');
    await eventually(() => a.differences(), 5_000, 'recreated folder');
    fs.writeFileSync(path.join(b, 'sub', 'later'), 'later\n');
    fs.writeFileSync(path.join(b, 'sub', 'z'), 'z2\n');
    await eventually(() => a.differences(), 5_000, 'changes under the recreated folder');
  });

  test('replace a file by a folder and back, rename in and out, in one batch', async () => {
    writeTree(a.local, { 'flip': 'file', 'keep/a': 'a', 'outside-src/m.txt': 'm' });
    const s = a.session();
    await s.start();
    fs.rmSync(path.join(a.local, 'flip'));
    writeTree(a.local, { 'flip/inner.txt': 'now a folder' });
    fs.renameSync(path.join(a.local, 'keep'), path.join(a.local, 'kept'));
    fs.renameSync(path.join(a.local, 'outside-src'), path.join(a.local, 'kept', 'moved-in'));
    await eventually(() => a.differences(), 5_000, 'flip and renames');
    fs.rmSync(path.join(a.local, 'flip'), { recursive: true });
    fs.writeFileSync(path.join(a.local, 'flip'), 'file again');
    await eventually(() => a.differences(), 5_000, 'flip back');
  });

  test('row 10: two hard links to one file, edited through one name: both names follow', async () => {
    writeTree(a.local, { 'a/x.txt': 'one', 'b/placeholder': '' });
    fs.linkSync(path.join(a.local, 'a/x.txt'), path.join(a.local, 'b/y.txt'));
    const s = a.session();
    await s.start();
    expect(a.differences()).toEqual([]);
    fs.writeFileSync(path.join(a.local, 'a/x.txt'), 'two, longer');
    await eventually(() => a.differences(), 5_000, 'the other name');
    expect(fs.readFileSync(path.join(a.remote, 'b/y.txt'), 'utf8')).toBe('two, longer');
  });
});

describe('leftovers, ignores, odd names', () => {
  test('row 5: a killed run\'s staging folder and temp files are removed by the next pass', async () => {
    writeTree(a.local, { 'src/a.txt': 'a' });
    const stage = path.join(a.remote, '.kubedev-stage-0123456789ab');
    writeTree(stage, Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`d${i % 7}/f${i}.txt`, `left ${i}`])));
    writeTree(a.remote, { 'src/.kubedev-abcdef012345.tmp': 'half', 'src/a.txt': 'old' });
    execFileSync('chown', ['-R', `${sshd.uid}:${sshd.gid}`, a.remote]);
    const s = a.session({ watch: false });
    const r = await s.start();
    expect(fs.existsSync(stage)).toBe(false);
    expect(fs.existsSync(path.join(a.remote, 'src/.kubedev-abcdef012345.tmp'))).toBe(false);
    expect(a.differences()).toEqual([]);
    expect(r.deleted).toBe(2);
  });

  test('row 11: a submodule\'s .git file and a file named like a folder-only ignore are sent once, deleted when gone', async () => {
    writeTree(a.local, { '.git': 'gitdir: ../.git/modules/x\n', 'sub/.git': 'gitdir: elsewhere\n', 'build': 'a file, not the build/ folder', 'src/a.ts': 'a' });
    fs.writeFileSync(path.join(a.local, '.kubedevignore'), 'build/\n');
    const first = await a.session({ watch: false }).start();
    expect(a.differences()).toEqual([]);
    expect(first.files).toBeGreaterThanOrEqual(5);
    const second = await a.session({ watch: false }).start();
    expect(second.files + second.deleted).toBe(0);
    fs.rmSync(path.join(a.local, '.git'));
    fs.rmSync(path.join(a.local, 'build'));
    const third = await a.session({ watch: false }).start();
    expect(third.deleted).toBe(2);
    expect(a.differences()).toEqual([]);
  });

  test('row 9: names that are not UTF-8 are warnings on both sides, never counted as deleted', async () => {
    writeTree(a.local, { 'ok.txt': 'ok' });
    const bad = Buffer.concat([Buffer.from(a.local + '/bad-'), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]);
    fs.writeFileSync(bad, 'latin junk');
    const remoteBad = Buffer.concat([Buffer.from(a.remote + '/junk-'), Buffer.from([0xe9]), Buffer.from('.txt')]);
    fs.mkdirSync(a.remote, { recursive: true });
    fs.writeFileSync(remoteBad, 'remote junk');
    execFileSync('chown', ['-R', `${sshd.uid}:${sshd.gid}`, a.remote]);
    const s = a.session({ watch: false });
    const warnings: string[] = [];
    s.on('warning', (m) => warnings.push(m));
    const r = await s.start();
    expect(r.deleted).toBe(0);
    expect(warnings.some((w) => /bad-.*not valid UTF-8 \(bytes 6261642dfffe2e747874\)/.test(w))).toBe(true);
    expect(warnings.some((w) => /remote path 'junk-.*not valid UTF-8; it is left alone/.test(w))).toBe(true);
    expect(fs.readFileSync(path.join(a.remote, 'ok.txt'), 'utf8')).toBe('ok');
    const again = await a.session({ watch: false }).start();
    expect(again.deleted + again.files).toBe(0);
  });

  test('row 8: a path longer than 4,096 bytes is a warning; the rest is mirrored', async () => {
    writeTree(a.local, { 'fine.txt': 'fine' });
    // Two chains of 12 folders of 200 bytes, one renamed under the other: the file ends ~4,900 bytes deep
    // (no call may name a path over PATH_MAX, so the chain is built in halves).
    const seg = 'd'.repeat(200);
    const chain = (top: string): string => path.join(top, ...Array.from({ length: 12 }, (_, i) => `${seg}${i % 10}`));
    const upper = chain(path.join(a.local, 'deep'));
    fs.mkdirSync(upper, { recursive: true });
    const spare = tempDir('hostile-spare');
    fs.mkdirSync(chain(spare), { recursive: true });
    fs.writeFileSync(path.join(chain(spare), 'f.txt'), 'hidden');
    fs.renameSync(path.join(spare, `${seg}0`), path.join(upper, 'lower'));
    fs.rmSync(spare, { recursive: true });
    const s = a.session({ watch: false });
    const warnings: string[] = [];
    s.on('warning', (m) => warnings.push(m));
    await s.start();
    expect(warnings.some((w) => /ENAMETOOLONG/.test(w))).toBe(true);
    expect(fs.readFileSync(path.join(a.remote, 'fine.txt'), 'utf8')).toBe('fine');
  });
});

describe('special files', () => {
  test('a named pipe is a warning; the remote file of that name stays', async () => {
    writeTree(a.local, { 'ok.txt': 'ok' });
    execFileSync('mkfifo', [path.join(a.local, 'pipe')]);
    writeTree(a.remote, { pipe: 'a regular file on the remote' });
    execFileSync('chown', ['-R', `${sshd.uid}:${sshd.gid}`, a.remote]);
    const s = a.session({ watch: false });
    const warnings: string[] = [];
    s.on('warning', (m) => warnings.push(m));
    const r = await s.start();
    expect(warnings).toEqual(["'pipe' is a named pipe, which cannot be mirrored; it is skipped and its remote copy left as it is. Add it to .kubedevignore to silence this"]);
    expect([r.files, r.deleted]).toEqual([1, 0]);
    expect(fs.readFileSync(path.join(a.remote, 'pipe'), 'utf8')).toBe('a regular file on the remote');
  });
});

describe('permissions and links', () => {
  for (const method of ['sftp', 'tar'] as const) {
    test(`row 6: a read-only local folder with contents mirrors for a non-root remote user (${method}), and changes inside it follow`, async () => {
      writeTree(a.local, { 'ro/a.txt': 'a', 'ro/deeper/b.txt': 'b', 'rw/c.txt': 'c' });
      fs.chmodSync(path.join(a.local, 'ro/deeper'), 0o555);
      fs.chmodSync(path.join(a.local, 'ro'), 0o555);
      const s = a.session({ method });
      await s.start();
      expect(a.differences()).toEqual([]);
      fs.writeFileSync(path.join(a.local, 'ro/a.txt'), 'changed inside a read-only folder');
      fs.rmSync(path.join(a.local, 'ro/deeper/b.txt'));
      await eventually(() => a.differences(), 5_000, 'changes in read-only folders');
      execFileSync('chmod', ['-R', 'u+w', path.join(a.local, 'ro')]);
      fs.rmSync(path.join(a.local, 'ro'), { recursive: true });
      await eventually(() => a.differences(), 5_000, 'read-only folder deleted');
    });
  }

  test('row 7: a symlink that leaves the tree through another symlink is refused; links that stay inside are sent', async () => {
    writeTree(a.local, { 'a/b/c/file.txt': 'in', 'a/b/c/up': { link: '../../..' }, 'p': { link: 'a/b/c/up/../../../../etc/passwd' }, 'q': { link: 'a/b/c/up/a/b/c/file.txt' }, 'loop1': { link: 'loop2' }, 'loop2': { link: 'loop1/x' } });
    const s = a.session();
    const warnings: string[] = [];
    s.on('warning', (m) => warnings.push(m));
    await s.start();
    expect(fs.existsSync(path.join(a.remote, 'p'))).toBe(false);
    expect(fs.readlinkSync(path.join(a.remote, 'q'))).toBe('a/b/c/up/a/b/c/file.txt');
    expect(fs.readFileSync(path.join(a.remote, 'q'), 'utf8')).toBe('in');
    expect(warnings.some((w) => w.startsWith("symlink 'p' points outside the synced folder"))).toBe(true);
    // Watching: a link made to escape later is refused too.
    fs.symlinkSync('a/b/c/up/../../..', path.join(a.local, 'later'));
    fs.writeFileSync(path.join(a.local, 'marker.txt'), 'm');
    await eventually(() => (fs.existsSync(path.join(a.remote, 'marker.txt')) ? [] : ['marker']), 5_000, 'marker');
    expect(fs.existsSync(path.join(a.remote, 'later'))).toBe(false);
    await eventually(() => (warnings.some((w) => w.startsWith("symlink 'later' points outside")) ? [] : ['no warning for later']), 2_000, 'warning');
    // A link sent while it stayed inside, made to lead out by a link created after it, is removed.
    fs.symlinkSync('late/../etc/hostname', path.join(a.local, 'r'));
    await eventually(() => (fs.lstatSync(path.join(a.remote, 'r'), { throwIfNoEntry: false }) ? [] : ['r not sent']), 5_000, 'r sent');
    fs.symlinkSync('a/b/c/up', path.join(a.local, 'late')); // resolves to the root itself: inside
    await eventually(() => (fs.lstatSync(path.join(a.remote, 'late'), { throwIfNoEntry: false }) ? [] : ['late not sent']), 5_000, 'late sent');
    await eventually(() => (fs.lstatSync(path.join(a.remote, 'r'), { throwIfNoEntry: false }) ? ['r still there'] : []), 5_000, 'escaped link removed');
    // The warning follows the delete's answer, which may come after the link is gone.
    await eventually(() => (warnings.some((w) => w.startsWith("symlink 'r' now points outside")) ? [] : ['no warning for r']), 2_000, 'warning');
  });
});
