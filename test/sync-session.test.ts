/**
 * SyncSession against a real sshd on 127.0.0.1: first mirror, each kind of change while watching,
 * random operations, a connection killed mid-transfer, host-key refusal and remote errors. Trees are
 * compared byte for byte (content, permission bits, symlink targets).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderSshdConfig } from '../lib/sshd';
import { buildIgnore } from '../sync/engine/ignore';
import { SyncOptions, SyncSession } from '../sync/engine/session';
import { HostKeyError } from '../sync/engine/transport';
import { Sshd, startSshd } from './support/sshd';
import { differences, eventually, nextEvent, snapshot, tempDir, writeTree } from './support/trees';

jest.setTimeout(60_000);

let sshd: Sshd;
let dirs: string[] = [];
let sessions: SyncSession[] = [];

// The DevEnvironment's own sshd_config (lib/sshd.ts), run by a non-root user as in the sidecar.
beforeAll(async () => {
  sshd = await startSshd({
    user: 'kubedev-test',
    asUser: true,
    config: (p) => renderSshdConfig({ port: p.port, user: p.user, listenAddress: '127.0.0.1', hostKey: p.hostKey, authorizedKeysFile: p.authorizedKeys, pidFile: p.pidFile }),
  });
});
afterAll(async () => {
  await sshd?.close();
});
afterEach(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  sessions = [];
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function folders(): { local: string; remoteBase: string; remote: string } {
  const local = tempDir('local');
  const remoteBase = tempDir('remote');
  fs.chownSync(remoteBase, sshd.uid, sshd.gid);
  dirs.push(local, remoteBase);
  return { local, remoteBase, remote: path.join(remoteBase, 'ws') };
}

function session(local: string, remote: string, extra: Partial<SyncOptions> = {}): SyncSession {
  const s = new SyncSession({
    localRoot: local,
    remoteRoot: remote,
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    identity: sshd.identity,
    knownHosts: sshd.knownHosts,
    ...extra,
  });
  sessions.push(s);
  return s;
}

const defaults = buildIgnore('/nonexistent');
const IGNORED = (rel: string): boolean => defaults.ignores(rel, false) || defaults.ignores(rel, true);
const same = (local: string, remote: string, skip = IGNORED) => (): string[] => differences(snapshot(local, skip), snapshot(remote, skip));

function sampleTree(root: string): void {
  writeTree(root, {
    'README.md': '# hello\n',
    'src/main.ts': 'console.log(1);\n',
    'src/deep/a/b/c/d/e/f.txt': 'deep',
    'bin/run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
    'bin/private': { content: 'secret', mode: 0o600 },
    'empty.txt': '',
    'empty-dir': { dir: true },
    'with space/and ünïcödé ☃.txt': 'unicode',
    '-leading-dash': 'dash',
    'src/--also': 'dashes',
    "quote's \"and\" $dollar `tick`": 'shell-hostile',
    'link-to-main': { link: 'src/main.ts' },
    'src/up-link': { link: '../README.md' },
    'dangling': { link: 'does/not/exist' },
    '.git/HEAD': 'ref: refs/heads/main\n',
    'node_modules/x/index.js': 'module.exports = 1;\n',
    'logs/app.log': 'log',
  });
  fs.writeFileSync(path.join(root, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 7));
}

describe('first mirror', () => {
  afterEach(() => {
    delete process.env.KUBEDEV_TAR;
  });
  for (const variant of ['tar', 'tar-stream', 'sftp'] as const) {
    const method = variant === 'sftp' ? 'sftp' : 'tar';
    test(`makes the remote equal, byte for byte (${variant})`, async () => {
      if (variant === 'tar-stream') process.env.KUBEDEV_TAR = 'js'; // pack in-process instead of the local tar
      const { local, remote } = folders();
      sampleTree(local);
      fs.writeFileSync(path.join(local, '.kubedevignore'), 'logs/\n');
      fs.symlinkSync('/etc/passwd', path.join(local, 'outside-abs'));
      fs.symlinkSync('../../escape', path.join(local, 'src/outside-rel'));
      // The remote has stale files (deleted), an ignored folder (kept) and runner leftovers (removed).
      writeTree(remote, { 'stale.txt': 'old', 'stale-dir/x': 'old', 'README.md': 'outdated', '.git/keep': 'remote-only', 'node_modules/remote-only.js': 'kept' });
      writeTree(remote, { '.kubedev-0123456789ab.tmp': 'leftover' });
      execFileSync('chown', ['-R', `${sshd.uid}:${sshd.gid}`, remote]);
      const s = session(local, remote, { watch: false, method, ignore: ['node_modules/'] });
      const warnings: string[] = [];
      s.on('warning', (w) => warnings.push(w));
      const connected: { fingerprint?: string }[] = [];
      s.on('connected', (c) => connected.push(c));
      const r = await s.start();
      expect(r.method).toBe(method);
      expect(s.fingerprint).toBe(sshd.hostKeyFingerprint);
      expect(connected).toEqual([{ host: sshd.host, port: sshd.port, fingerprint: sshd.hostKeyFingerprint }]);
      const skip = (rel: string): boolean => IGNORED(rel) || rel.startsWith('node_modules') || rel.startsWith('logs') || rel.startsWith('outside-abs') || rel === 'src/outside-rel';
      expect(same(local, remote, skip)()).toEqual([]);
      // ignored paths: not sent, not deleted
      expect(fs.existsSync(path.join(remote, 'logs'))).toBe(false);
      expect(fs.readFileSync(path.join(remote, '.git/keep'), 'utf8')).toBe('remote-only');
      expect(fs.existsSync(path.join(remote, '.git/HEAD'))).toBe(false);
      expect(fs.readFileSync(path.join(remote, 'node_modules/remote-only.js'), 'utf8')).toBe('kept');
      expect(fs.existsSync(path.join(remote, 'stale.txt'))).toBe(false);
      expect(fs.existsSync(path.join(remote, '.kubedev-0123456789ab.tmp'))).toBe(false);
      // symlinks out of the root are refused by name, never created
      expect(fs.existsSync(path.join(remote, 'src/outside-rel'))).toBe(false);
      expect(fs.readdirSync(remote)).not.toContain('outside-abs');
      expect(warnings.join('\n')).toMatch(/symlink 'outside-abs' points outside the synced folder \(-> \/etc\/passwd\)/);
      expect(warnings.join('\n')).toMatch(/symlink 'src\/outside-rel' points outside/);
      // no staging or temp names left behind
      expect(fs.readdirSync(remote).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
    });
  }

  test('a second pass with nothing changed sends nothing', async () => {
    const { local, remote } = folders();
    sampleTree(local);
    await session(local, remote, { watch: false }).start();
    const again = await session(local, remote, { watch: false }).start();
    expect({ files: again.files, deleted: again.deleted, bytes: again.bytes }).toEqual({ files: 0, deleted: 0, bytes: 0 });
  });
});

describe('watching', () => {
  let local: string;
  let remote: string;
  let s: SyncSession;
  beforeEach(async () => {
    ({ local, remote } = folders());
    sampleTree(local);
    s = session(local, remote);
    await s.start();
    expect(same(local, remote)()).toEqual([]);
  });
  const settle = (what: string): Promise<void> => eventually(same(local, remote), 10_000, what);

  test('each kind of change ends byte-equal', async () => {
    const L = (rel: string): string => path.join(local, rel);
    fs.writeFileSync(L('new.txt'), 'new');
    await settle('create');
    fs.appendFileSync(L('README.md'), 'more\n');
    await settle('modify');
    fs.chmodSync(L('src/main.ts'), 0o755);
    await settle('chmod +x');
    fs.chmodSync(L('src/main.ts'), 0o644);
    await settle('chmod -x');
    fs.rmSync(L('new.txt'));
    await settle('delete');
    fs.mkdirSync(L('fresh/empty/inside'), { recursive: true });
    await settle('mkdir -p of empty folders');
    fs.rmSync(L('fresh'), { recursive: true });
    await settle('rm -r');
    fs.renameSync(L('src/main.ts'), L('src/renamed.ts'));
    await settle('rename file');
    // editor atomic save: write a temp file, rename it over the original
    fs.writeFileSync(L('.README.md.swp'), 'swap');
    fs.writeFileSync(L('README.md.tmp~'), 'saved atomically\n');
    fs.renameSync(L('README.md.tmp~'), L('README.md'));
    await settle('atomic save');
    expect(fs.readFileSync(path.join(remote, 'README.md'), 'utf8')).toBe('saved atomically\n');
    expect(fs.existsSync(path.join(remote, '.README.md.swp'))).toBe(false);
    // delete and recreate at once
    fs.rmSync(L('bin/run.sh'));
    fs.writeFileSync(L('bin/run.sh'), 'recreated');
    await settle('delete + recreate');
    // symlink retarget, file -> folder, folder -> file
    fs.rmSync(L('link-to-main'));
    fs.symlinkSync('README.md', L('link-to-main'));
    await settle('symlink retarget');
    fs.rmSync(L('empty.txt'));
    fs.mkdirSync(L('empty.txt'));
    fs.writeFileSync(L('empty.txt/now-a-folder'), 'x');
    await settle('file -> folder');
    fs.rmSync(L('src/deep'), { recursive: true });
    fs.writeFileSync(L('src/deep'), 'now a file');
    await settle('folder -> file');
    // ignored paths are not sent
    fs.writeFileSync(L('.git/ORIG_HEAD'), 'x');
    fs.mkdirSync(L('node_modules/y'), { recursive: true });
    await settle('ignored');
    expect(fs.existsSync(path.join(remote, '.git'))).toBe(false);
  });

  // Reproducible builds, `cp -p`, `touch -r`, archive extraction: new bytes, the same size, the old mtime.
  // Only the change time (which no program can set) tells; the index holds it as sent.
  test('a write of the same size that puts the mtime back is sent, by its change time', async () => {
    const f = path.join(local, 'README.md');
    fs.writeFileSync(f, 'version 1\n');
    fs.utimesSync(f, 1_700_000_000, 1_700_000_000);
    await settle('first version');
    fs.writeFileSync(f, 'version 2\n');
    fs.utimesSync(f, 1_700_000_000, 1_700_000_000);
    await settle('same size, mtime put back');
    expect(fs.readFileSync(path.join(remote, 'README.md'), 'utf8')).toBe('version 2\n');
  });

  test('a file written through a hard link from outside, mtime put back, is found by the periodic rescan', async () => {
    const { local: l2, remote: r2 } = folders();
    const f = path.join(l2, 'data.txt');
    fs.writeFileSync(f, 'version 1\n');
    fs.utimesSync(f, 1_700_000_000, 1_700_000_000);
    const outside = tempDir('outside');
    dirs.push(outside);
    fs.linkSync(f, path.join(outside, 'same-file'));
    const s2 = session(l2, r2, { rescanMs: 300 });
    await s2.start();
    // No event reaches the folder's watch: only a rescan looks, and only the change time differs.
    fs.writeFileSync(path.join(outside, 'same-file'), 'version 2\n');
    fs.utimesSync(path.join(outside, 'same-file'), 1_700_000_000, 1_700_000_000); // by the outside name: no event inside
    await eventually(same(l2, r2), 10_000, 'written from outside, mtime put back');
    expect(fs.readFileSync(path.join(r2, 'data.txt'), 'utf8')).toBe('version 2\n');
  });

  test('a folder with 2,000 files renamed, then renamed back', async () => {
    const spec: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) spec[`many/d${i % 40}/f${i}.txt`] = `file ${i}\n`;
    writeTree(local, spec);
    await settle('2,000 files created');
    fs.renameSync(path.join(local, 'many'), path.join(local, 'moved'));
    await settle('renamed');
    expect(fs.existsSync(path.join(remote, 'many'))).toBe(false);
    fs.renameSync(path.join(local, 'moved'), path.join(local, 'many'));
    await settle('renamed back');
  });

  test('a file changed while it is being sent ends byte-equal', async () => {
    const f = path.join(local, 'growing.bin');
    fs.writeFileSync(f, Buffer.alloc(8 * 1024 * 1024, 1));
    for (let i = 0; i < 20; i++) {
      fs.appendFileSync(f, Buffer.alloc(256 * 1024, i));
      await new Promise((r) => setTimeout(r, 3));
    }
    fs.writeFileSync(f, 'finally small');
    await settle('file changed during upload');
  });

  test('200 random operations while watching', async () => {
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const all = (): string[] => Object.keys(snapshot(local, IGNORED));
    for (let op = 0; op < 200; op++) {
      const entries = all();
      const files = entries.filter((e) => fs.lstatSync(path.join(local, e)).isFile());
      const folderList = ['', ...entries.filter((e) => fs.lstatSync(path.join(local, e)).isDirectory())];
      const dir = folderList[rnd(folderList.length)];
      const at = (name: string): string => path.join(local, dir, name);
      switch (rnd(8)) {
        case 0:
        case 1:
          fs.writeFileSync(at(`r${op} ü.txt`), `content ${op}`.repeat(rnd(50) + 1));
          break;
        case 2:
          if (files.length) fs.appendFileSync(path.join(local, files[rnd(files.length)]), `+${op}`);
          break;
        case 3:
          if (files.length) fs.rmSync(path.join(local, files[rnd(files.length)]));
          break;
        case 4:
          fs.mkdirSync(at(`d${op}`), { recursive: true });
          fs.writeFileSync(at(`d${op}/inner`), `${op}`);
          break;
        case 5:
          if (files.length) {
            const src = files[rnd(files.length)];
            fs.renameSync(path.join(local, src), at(`mv${op}`));
          }
          break;
        case 6:
          if (files.length) fs.chmodSync(path.join(local, files[rnd(files.length)]), rnd(2) ? 0o755 : 0o644);
          break;
        default: {
          const ds = folderList.filter((d) => d !== '' && d !== 'empty-dir');
          if (ds.length) {
            const d = ds[rnd(ds.length)];
            if (rnd(2)) fs.rmSync(path.join(local, d), { recursive: true, force: true });
            else if (!fs.existsSync(path.join(local, `${d}-renamed${op}`))) fs.renameSync(path.join(local, d), path.join(local, `${d}-renamed${op}`));
          }
        }
      }
      if (op % 10 === 0) await new Promise((r) => setTimeout(r, rnd(15)));
    }
    await settle('200 random operations');
  });
});

test('a 1 GiB file is streamed, never held in memory', async () => {
  const { local, remote } = folders();
  const f = path.join(local, 'huge.img');
  const fd = fs.openSync(f, 'w');
  const chunk = Buffer.alloc(16 * 1024 * 1024);
  for (let i = 0; i < 64; i++) {
    chunk.fill(i);
    fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const r = await session(local, remote, { watch: false }).start();
    expect(r.bytes).toBe(1024 * 1024 * 1024);
  } finally {
    clearInterval(sampler);
  }
  expect((peak - before) / 1024 / 1024).toBeLessThan(256);
  expect(same(local, remote)()).toEqual([]);
  fs.rmSync(f);
}, 120_000);

describe('connection loss', () => {
  test('killed mid-transfer: reconnects and re-converges without resending what is there', async () => {
    const { local, remote } = folders();
    const spec: Record<string, string> = {};
    for (let i = 0; i < 300; i++) spec[`small/f${i}.txt`] = `small ${i}\n`;
    writeTree(local, spec);
    const s = session(local, remote, { maxBackoffMs: 300 });
    await s.start();
    const synced: { files: number; bytes: number }[] = [];
    s.on('synced', (b) => synced.push(b));
    const reconnecting = nextEvent(s, 'reconnecting', 20_000).catch(() => undefined);
    // A 100 MB file; kill the session while it streams.
    const fh = fs.openSync(path.join(local, 'huge.bin'), 'w');
    const chunk = Buffer.alloc(1024 * 1024, 3);
    for (let i = 0; i < 100; i++) fs.writeSync(fh, chunk);
    fs.closeSync(fh);
    const deadline = Date.now() + 15_000;
    const tempLanding = (): boolean => fs.readdirSync(remote).some((n) => n.startsWith('.kubedev-'));
    while (!tempLanding() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(tempLanding()).toBe(true);
    expect(sshd.killSessions()).toBeGreaterThan(0);
    await reconnecting;
    // 100 MB again over SFTP: seconds on a quiet machine, up to a minute on a loaded one (load 7+ on 2 cores).
    await eventually(same(local, remote), 75_000, 'after reconnect');
    // The pass after reconnecting sent the big file only (at most once), never the 300 files already
    // there. (The big file may also have landed whole before the kill took effect: the session runs in
    // this process, so on a busy machine the poll above can see the temp file late. Then nothing is
    // sent again at all, which is the same property.)
    const resend = synced.filter((b) => b.bytes > 0);
    expect(resend.length).toBeLessThanOrEqual(1);
    for (const b of resend) expect(b).toMatchObject({ files: 1, bytes: 100 * 1024 * 1024 });
    expect(fs.readdirSync(remote).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
  }, 150_000);

  test("what the lost connection's server processes write after the reconnect's pass is removed by the follow-up pass, nothing else sent", async () => {
    const { local, remote } = folders();
    writeTree(local, { 'a.txt': 'a', 'sub/b.txt': 'b' });
    const s = session(local, remote, { maxBackoffMs: 100, recheckMs: 300 });
    await s.start();
    const synced: { files: number; deleted: number }[] = [];
    s.on('synced', (b) => synced.push(b));
    const reconnected = nextEvent(s, 'synced', 20_000);
    expect(sshd.killSessions()).toBeGreaterThan(0);
    await reconnected;
    // The old sftp-server finishing requests it read before the cut, after the new pass listed the remote.
    const late = ['.kubedev-0a1b2c3d4e5f.tmp', 'sub/.kubedev-5f4e3d2c1b0a.tmp'];
    for (const rel of late) fs.writeFileSync(path.join(remote, rel), 'partial');
    // Counted (and 'synced' said) once the pass is over (the files go in the middle of it).
    await eventually(() => [...late.filter((rel) => fs.existsSync(path.join(remote, rel))), ...(s.rechecks === 1 && synced.length === 2 ? [] : [`${s.rechecks} follow-up passes, ${synced.length} synced`])], 10_000, 'the late temporary files removed');
    expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
    // The reconnect's pass, then the follow-up's: the two leftovers deleted, nothing sent.
    expect(synced.map((b) => [b.files, b.deleted])).toEqual([
      [0, 0],
      [0, 2],
    ]);
  });
});

describe('refusals', () => {
  test('an unknown host key is refused by fingerprint; nothing is written remotely', async () => {
    const { local, remote, remoteBase } = folders();
    sampleTree(local);
    const other = tempDir('kh');
    dirs.push(other);
    const kh = path.join(other, 'known_hosts');
    // A different ed25519 key for the same [host]:port, and an unrelated host.
    fs.writeFileSync(kh, `[127.0.0.1]:${sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9hk6t5TAa8dJmdWq0pOzSX5WNpfAhIpPNnnVEKRVbO\nexample.com ${sshd.hostPublicKey}\n`);
    const s = session(local, remote, { knownHosts: kh, watch: false });
    await expect(s.start()).rejects.toThrow(HostKeyError);
    await expect(session(local, remote, { knownHosts: kh, watch: false }).start()).rejects.toThrow(
      `host key of [127.0.0.1]:${sshd.port} has CHANGED: the server presented ssh-ed25519 ${sshd.hostKeyFingerprint}, which does not match '${kh}' (line 1).`,
    );
    fs.writeFileSync(kh, '');
    await expect(session(local, remote, { knownHosts: kh, watch: false }).start()).rejects.toThrow(
      `host [127.0.0.1]:${sshd.port} is unknown: the server presented ssh-ed25519 ${sshd.hostKeyFingerprint}, which '${kh}' does not list.`,
    );
    expect(fs.readdirSync(remoteBase)).toEqual([]);
  });

  test('hashed known_hosts entries and [host]:* patterns are accepted', async () => {
    const { local, remote } = folders();
    writeTree(local, { a: 'a' });
    const other = tempDir('kh');
    dirs.push(other);
    const kh = path.join(other, 'known_hosts');
    fs.writeFileSync(kh, fs.readFileSync(sshd.knownHosts));
    execFileSync('ssh-keygen', ['-H', '-f', kh], { stdio: 'ignore' });
    expect(fs.readFileSync(kh, 'utf8')).toMatch(/^\|1\|/);
    await session(local, remote, { knownHosts: kh, watch: false }).start();
    fs.writeFileSync(kh, `[127.0.0.1]:*,[localhost]:* ${sshd.hostPublicKey} kubedev:ns/env\n`);
    await session(local, remote, { knownHosts: kh, watch: false }).start();
    expect(same(local, remote)()).toEqual([]);
  });

  test('a remote path that is a file stops with a clear message', async () => {
    const { local, remoteBase } = folders();
    writeTree(local, { a: 'a' });
    fs.writeFileSync(path.join(remoteBase, 'file'), 'x');
    await expect(session(local, path.join(remoteBase, 'file'), { watch: false }).start()).rejects.toThrow(
      `remote path '${path.join(remoteBase, 'file')}' on ${sshd.user}@127.0.0.1 is a file, not a folder. Remove it or pass another --remote`,
    );
    await expect(session(local, path.join(remoteBase, 'file', 'below'), { watch: false }).start()).rejects.toThrow(/cannot create remote folder .*Not a directory/);
  });
});

describe('as a non-root user', () => {
  let user: Sshd;
  beforeAll(() => {
    user = sshd;
  });

  test('an unwritable remote folder stops with a clear message; nothing is written', async () => {
    const { local, remoteBase } = folders();
    writeTree(local, { a: 'a', 'b/c': 'c' });
    fs.chownSync(remoteBase, 0, 0);
    fs.chmodSync(remoteBase, 0o755); // owned by root: the test user may not write
    const s = new SyncSession({ localRoot: local, remoteRoot: remoteBase, host: user.host, port: user.port, user: user.user, identity: user.identity, knownHosts: user.knownHosts, watch: false });
    sessions.push(s);
    await expect(s.start()).rejects.toThrow(`remote folder '${remoteBase}' on kubedev-test@127.0.0.1 is not writable by 'kubedev-test'. Fix its owner or mode (chown/chmod), or pass another --remote`);
    const below = new SyncSession({ localRoot: local, remoteRoot: path.join(remoteBase, 'ws'), host: user.host, port: user.port, user: user.user, identity: user.identity, knownHosts: user.knownHosts, watch: false });
    sessions.push(below);
    await expect(below.start()).rejects.toThrow(/cannot create remote folder '.*\/ws' on kubedev-test@127.0.0.1: .*Permission denied/);
    expect(fs.readdirSync(remoteBase)).toEqual([]);
  });

  test('a full remote disk stops with a clear message (SFTP and tar)', async () => {
    const { local, remoteBase } = folders();
    writeTree(local, { 'a.txt': 'a' });
    fs.writeFileSync(path.join(local, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 1));
    const mnt = path.join(remoteBase, 'small');
    fs.mkdirSync(mnt);
    // A 1 MiB tmpfs stands in for a full volume (the tests run as root, as CI does).
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=1m,uid=${user.uid},gid=${user.gid}`, 'tmpfs', mnt]);
    try {
      for (const method of ['sftp', 'tar'] as const) {
        const s = new SyncSession({ localRoot: local, remoteRoot: path.join(mnt, method), host: user.host, port: user.port, user: user.user, identity: user.identity, knownHosts: user.knownHosts, watch: false, method });
        sessions.push(s);
        await expect(s.start()).rejects.toThrow(method === 'sftp' ? /writing 'big.bin' failed: the remote disk holding '.*\/small\/sftp' is full \(\d+ KiB free\)/ : /failed on the remote .*The remote disk holding '.*\/small\/tar' is full/);
      }
    } finally {
      await Promise.all(sessions.map((x) => x.close()));
      execFileSync('umount', [mnt]);
    }
  });

  test('a read-only file inside the tree stops a batch with the path named', async () => {
    const { local, remoteBase } = folders();
    const remote = path.join(remoteBase, 'ws');
    writeTree(local, { 'locked/a.txt': 'a' });
    fs.mkdirSync(path.join(remote, 'locked'), { recursive: true });
    fs.chownSync(remote, user.uid, user.gid);
    fs.chmodSync(path.join(remote, 'locked'), 0o755); // a root-owned folder inside the workspace
    const s = new SyncSession({ localRoot: local, remoteRoot: remote, host: user.host, port: user.port, user: user.user, identity: user.identity, knownHosts: user.knownHosts, watch: false, method: 'sftp' });
    sessions.push(s);
    await expect(s.start()).rejects.toThrow(/writing 'locked\/a.txt' failed on the remote \(Permission denied\)\. The remote user may not write there/);
  });
});
