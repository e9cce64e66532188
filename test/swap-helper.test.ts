/**
 * The swap helper (swap-helper.ts): a perl process beside the session's remote shell that checks and
 * renames a laptop save with system calls. Real sshd, real perl on 127.0.0.1. Its mtime check must be
 * as exact as the sh path's `find`; it must end with its shell; a helper that is gone or a server
 * without perl must leave the swap to the sh path, never a wait or a file half done.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Connection } from '../sync/engine/transport';
import { InlinePush, PushSection } from '../sync/engine/two-way/push-inline';
import { lookMarkOf, releaseGuards } from '../sync/engine/two-way/remote-guard';
import { RemoteShell } from '../sync/engine/two-way/remote-shell';
import * as swapHelper from '../sync/engine/two-way/swap-helper';
import { useArena } from './support/hostile';
import { processes } from './support/procs';
import { eventually, tempDir } from './support/trees';
import { remote } from './support/two-way';

jest.setTimeout(30_000);
afterEach(() => jest.restoreAllMocks());
const { sshd, arena } = useArena();
let conn: Connection | undefined;
afterEach(async () => {
  await conn?.close();
  conn = undefined;
});

async function connect(): Promise<Connection> {
  const s = sshd();
  conn = await Connection.open({ host: '127.0.0.1', port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
  return conn;
}

/** The shell's helper once its start answered. */
async function opened(c: Connection, command?: string, ms = 5000): Promise<RemoteShell> {
  const shell = await RemoteShell.open(c, command);
  await shell.run('true');
  await eventually(() => (shell.helper === undefined ? ['the helper has not answered'] : []), ms, "the helper's start");
  return shell;
}

/** The pids of the swap helpers whose parent is `pid` (this machine: the test's sshd is local). */
function helpersOf(pid: number): number[] {
  return processes(({ ppid, argv }) => path.basename(argv[0]) === 'perl' && argv.some((x) => x.startsWith('# kubedev swap helper')) && ppid === pid);
}

const alive = (pid: number): boolean => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('# kubedev swap helper');
  } catch {
    return false;
  }
};

/** The listing's reading of the file's mtime (`%T@` as milliseconds) and its stat, as the ancestor records them. */
function listed(file: string): { s: number; m: number; p: number } {
  const out = remote(sshd(), arena(), `find ${JSON.stringify(file)} -printf '%s %T@ %m'`).split(' ');
  return { s: Number(out[0]), m: Number(out[1]) * 1000, p: parseInt(out[2], 8) };
}

/** One swap of `rel` in `root` to `bytes` over the remote version `r`: what the section took. */
async function swapOnce(shell: RemoteShell, root: string, rel: string, bytes: string, r: { s: number; m: number; p: number }, o: { mode?: number; edit?: (cmd: string) => string } = {}): Promise<{ out: string; section: PushSection }> {
  const st = fs.statSync(root);
  const push: InlinePush = { rel, bytes: Buffer.from(bytes), l: { t: 'f', s: bytes.length, m: 1_700_000_000_000, p: o.mode ?? 0o644 }, r: { t: 'f', ...r } };
  const section = new PushSection(root, `${st.dev}:${st.ino}`, [push], shell.helper === true);
  const cmd = section.lines().join('\n');
  const edited = o.edit ? o.edit(cmd) : cmd;
  if (o.edit) expect(edited).not.toBe(cmd); // the injection point is in the command
  const res = await shell.run(edited);
  section.took(res.stdout);
  return { out: res.stdout.toString('utf8'), section };
}

test("the helper's mtime check: exactly the nanoseconds find's tests accept (the ancestor's mtime as the listing reads it); 300 ns either way, or another size or mode, is another version", async () => {
  const a = arena();
  const shell = await opened(await connect());
  expect(shell.helper).toBe(true);
  const at = '1700000000.123456789';
  remote(sshd(), a, `printf v1 > f.txt && touch -d @${at} f.txt && chmod 644 f.txt`);
  const r = listed(path.join(a.remote, 'f.txt'));
  const refused = async (what: string, o: { ns?: number; r?: Partial<typeof r> }): Promise<void> => {
    remote(sshd(), a, `touch -d @1700000000.${String(123456789 + (o.ns ?? 0)).padStart(9, '0')} f.txt`);
    const { section, out } = await swapOnce(shell, a.remote, 'f.txt', 'laptop', { ...r, ...o.r });
    expect([what, section.swapped.size, section.helperGone, out.startsWith('S')]).toEqual([what, 0, false, true]);
    expect(fs.readFileSync(path.join(a.remote, 'f.txt'), 'utf8')).toBe('v1');
    expect(fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-'))).toEqual([]); // no temporary file or guard left
  };
  for (const ns of [-1000, -300, 300, 1000]) await refused(`${ns} ns`, { ns });
  await refused('another size', { r: { s: r.s + 1 } });
  await refused('another mode', { r: { p: 0o600 } });
  remote(sshd(), a, `touch -d @${at} f.txt`);
  const { section } = await swapOnce(shell, a.remote, 'f.txt', 'laptop', r);
  expect(section.swapped.size).toBe(1);
  expect(fs.readFileSync(path.join(a.remote, 'f.txt'), 'utf8')).toBe('laptop');
  // What the helper says of the guard is what find prints (the release compares them as text).
  const s = section.swapped.get('f.txt');
  expect(s?.seen).toBe(`2/1700000000.1234567890/644`);
  const now = remote(sshd(), a, "find f.txt -printf '%i/%s/%T@/%m'");
  expect(s?.after).toBe(now);
  shell.close();
});

test('laptop modes without the owner\'s read bit, or without read and write (0200, 0000): swapped, with their mode and mtime', async () => {
  const a = arena();
  const shell = await opened(await connect());
  for (const mode of [0o200, 0o000]) {
    remote(sshd(), a, 'rm -f f.txt; printf v1 > f.txt');
    const { section } = await swapOnce(shell, a.remote, 'f.txt', 'laptop', listed(path.join(a.remote, 'f.txt')), { mode });
    expect([mode, section.swapped.size]).toEqual([mode, 1]);
    const st = fs.statSync(path.join(a.remote, 'f.txt'));
    expect([st.mode & 0o7777, st.mtimeMs, st.size]).toEqual([mode, 1_700_000_000_000, 6]);
  }
  shell.close();
});

test('the helper ends with its shell: a dropped connection and a closed shell leave no perl on the server', async () => {
  const c = await connect();
  const shell = await opened(c);
  expect(shell.helper).toBe(true);
  const pid = Number((await shell.run('echo $$')).stdout.toString());
  const [helper] = helpersOf(pid);
  expect(helper).toBeGreaterThan(0);
  c.destroy('cut by the test'); // no SSH goodbye, no channel close, no signal
  await eventually(() => (alive(helper) ? [`the helper ${helper} still runs`] : []), 3000, 'the helper ends with its connection');
  const shell2 = await opened(await connect());
  const pid2 = Number((await shell2.run('echo $$')).stdout.toString());
  const [helper2] = helpersOf(pid2);
  expect(helper2).toBeGreaterThan(0);
  shell2.close();
  await eventually(() => (alive(helper2) ? [`the helper ${helper2} still runs`] : []), 3000, 'the helper ends with its shell');
});

test('a helper killed under a live shell: the swap is skipped at once (the file as it was, nothing left), the shell is told, and the sh path swaps', async () => {
  const a = arena();
  const shell = await opened(await connect());
  const pid = Number((await shell.run('echo $$')).stdout.toString());
  const [helper] = helpersOf(pid);
  process.kill(helper, 'SIGKILL');
  await eventually(() => (alive(helper) ? ['still there'] : []), 3000, 'the kill');
  remote(sshd(), a, 'printf v1 > f.txt');
  const r = listed(path.join(a.remote, 'f.txt'));
  const t = Date.now();
  const first = await swapOnce(shell, a.remote, 'f.txt', 'laptop', r);
  expect(Date.now() - t).toBeLessThan(2000);
  expect(first.section.helperGone).toBe(true);
  expect(first.section.swapped.size).toBe(0);
  expect(fs.readFileSync(path.join(a.remote, 'f.txt'), 'utf8')).toBe('v1');
  expect(fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
  shell.helperGone();
  const second = await swapOnce(shell, a.remote, 'f.txt', 'laptop', r);
  expect(second.section.swapped.size).toBe(1);
  expect(fs.readFileSync(path.join(a.remote, 'f.txt'), 'utf8')).toBe('laptop');
  shell.close();
});

test('a helper that ends between the check and the rename: skipped, nothing left; one that ends after the rename: the swap counts, its guard kept for the release', async () => {
  const a = arena();
  for (const renamed of [false, true]) {
    const shell = await opened(await connect());
    const pid = Number((await shell.run('echo $$')).stdout.toString());
    const [helper] = helpersOf(pid);
    remote(sshd(), a, 'printf v1 > f.txt');
    const r = listed(path.join(a.remote, 'f.txt'));
    // Before the M request: the helper killed, after doing the rename itself (as if it had) or not.
    const { section } = await swapOnce(shell, a.remote, 'f.txt', 'laptop', r, {
      edit: (cmd) => cmd.replace(/ && \{ printf '%s\\n' 'M /, (m) => ` && { ${renamed ? 'mv -f ./.kubedev-*.tmp ./f.txt && ' : ''}kill -9 ${helper} && sleep 0.2; }${m}`),
    });
    expect([renamed, section.swapped.size]).toEqual([renamed, renamed ? 1 : 0]);
    expect(fs.readFileSync(path.join(a.remote, 'f.txt'), 'utf8')).toBe(renamed ? 'laptop' : 'v1');
    const left = fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-'));
    expect(left).toEqual(renamed ? [expect.stringMatching(/^\.kubedev-guard-/)] : []);
    if (renamed) fs.rmSync(path.join(a.remote, left[0]));
    shell.close();
    await conn?.close();
    conn = undefined;
  }
});

test('a perl that never answers at start: the shell is not held (it is ended after 10 s), and takes the sh path', async () => {
  const bin = tempDir('hung-perl-bin');
  fs.writeFileSync(path.join(bin, 'perl'), '#!/bin/sh\nexec sleep 600\n', { mode: 0o755 });
  fs.chmodSync(bin, 0o755);
  const t = Date.now();
  const shell = await opened(await connect(), `PATH=${bin}:$PATH exec sh`, 15_000);
  expect(shell.helper).toBe(false);
  expect(Date.now() - t).toBeLessThan(15_000);
  expect((await shell.run('echo still here')).stdout.toString()).toBe('still here\n');
  shell.close();
}, 30_000);

test("the guard's release by the helper: a container write in place since the swap is kept as a copy, guard and mark go; with the helper gone, the sh lines do it", async () => {
  const a = arena();
  for (const gone of [false, true]) {
    const shell = await opened(await connect());
    remote(sshd(), a, 'rm -f f.txt f.conflict-container-*; printf v1 > f.txt');
    const st = fs.statSync(a.remote);
    const { section } = await swapOnce(shell, a.remote, 'f.txt', 'laptop', listed(path.join(a.remote, 'f.txt')));
    expect(section.swapped.size).toBe(1);
    // The container writes into the old inode, which only the guard still holds.
    const guard = path.join(a.remote, section.swapped.get('f.txt')?.guard as string);
    remote(sshd(), a, `printf 'container in place' >| ${JSON.stringify(guard)}`);
    if (gone) {
      const pid = Number((await shell.run('echo $$')).stdout.toString());
      for (const p of helpersOf(pid)) process.kill(p, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
    }
    const seen: string[] = [];
    const kept = await releaseGuards((c) => shell.run(c), a.remote, section.guarded(), (rel, stat) => seen.push(`${rel} ${stat}`), { rootId: `${st.dev}:${st.ino}` });
    const copy = kept.get('f.txt') as string;
    expect([gone, copy]).toEqual([gone, expect.stringMatching(/^f\.conflict-container-\d{8}-\d{6}\.txt$/)]);
    expect(fs.readFileSync(path.join(a.remote, copy), 'utf8')).toBe('container in place');
    expect(seen).toEqual([`f.txt ${section.swapped.get('f.txt')?.after}`]);
    expect(fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
    shell.close();
    await conn?.close();
    conn = undefined;
  }
});

test.each([
  ['after it kept the copy, before it said so: the shell reports that copy, makes no second one', 'print "$req $file $kept\\n";'],
  ['after it said so, before it removed guard and mark: the shell removes them', 'unlink $g, $mark;'],
])('a helper that ends during a release %s', async (_, at) => {
  const a = arena();
  const real = swapHelper.helperStart.bind(swapHelper);
  jest.spyOn(swapHelper, 'helperStart').mockImplementation(() => {
    const script = real();
    expect(script).toContain(at);
    return script.replace(at, 'exit 0;');
  });
  const shell = await opened(await connect());
  expect(shell.helper).toBe(true);
  remote(sshd(), a, 'printf v1 > f.txt');
  const st = fs.statSync(a.remote);
  const { section } = await swapOnce(shell, a.remote, 'f.txt', 'laptop', listed(path.join(a.remote, 'f.txt')));
  remote(sshd(), a, `printf 'container in place' >| ${JSON.stringify(path.join(a.remote, section.swapped.get('f.txt')?.guard as string))}`);
  const kept = await releaseGuards((c) => shell.run(c), a.remote, section.guarded(), undefined, { rootId: `${st.dev}:${st.ino}` });
  const copies = fs.readdirSync(a.remote).filter((n) => n.startsWith('f.conflict-container-'));
  expect(copies).toEqual([kept.get('f.txt')]);
  expect(fs.readFileSync(path.join(a.remote, copies[0]), 'utf8')).toBe('container in place');
  expect(fs.readdirSync(a.remote).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
  shell.close();
});

test("the sh path's release: a look mark the container made a symlink to outside empties nothing there; one that cannot be made (a folder of that name) stops nothing", async () => {
  const a = arena();
  const sentinel = path.join(a.base, 'sentinel', 'keep.txt');
  const before = fs.readFileSync(sentinel, 'utf8');
  for (const trap of ['symlink', 'folder'] as const) {
    const shell = await opened(await connect(), `PATH=${noPerl()} exec sh`);
    expect(shell.helper).toBe(false);
    remote(sshd(), a, 'rm -f f.txt; printf v1 > f.txt');
    const { section } = await swapOnce(shell, a.remote, 'f.txt', 'laptop', listed(path.join(a.remote, 'f.txt')));
    const guard = section.swapped.get('f.txt')?.guard as string;
    const mark = path.join(a.remote, lookMarkOf(guard));
    remote(sshd(), a, trap === 'symlink' ? `ln -s ${JSON.stringify(sentinel)} ${JSON.stringify(mark)}` : `mkdir ${JSON.stringify(mark)}`);
    const seen: string[] = [];
    await releaseGuards((c) => shell.run(c), a.remote, section.guarded(), (rel, stat) => seen.push(`${rel} ${stat}`));
    expect([trap, fs.readFileSync(sentinel, 'utf8')]).toEqual([trap, before]);
    expect([trap, seen]).toEqual([trap, [`f.txt ${section.swapped.get('f.txt')?.after}`]]); // the release went on
    expect(fs.existsSync(path.join(a.remote, guard))).toBe(false);
    remote(sshd(), a, `rm -rf ${JSON.stringify(mark)}`);
    shell.close();
    await conn?.close();
    conn = undefined;
  }
});

test('a server without perl: no helper (its start says so at once), and swaps take the sh path', async () => {
  const a = arena();
  const shell = await opened(await connect(), `PATH=${noPerl()} exec sh`);
  expect(shell.helper).toBe(false);
  remote(sshd(), a, 'printf v1 > f.txt');
  const { section, out } = await swapOnce(shell, a.remote, 'f.txt', 'laptop', listed(path.join(a.remote, 'f.txt')));
  expect([section.swapped.size, out.startsWith('P')]).toEqual([1, true]);
  expect(fs.readFileSync(path.join(a.remote, 'f.txt'), 'utf8')).toBe('laptop');
  shell.close();
});

/** A folder holding every tool the shell and the sh path use, but no perl (for PATH). */
function noPerl(): string {
  const bin = tempDir('no-perl-bin');
  for (const t of ['sh', 'find', 'mktemp', 'mkfifo', 'rm', 'touch', 'ln', 'mv', 'chmod', 'cat']) fs.symlinkSync(execPath(t), path.join(bin, t));
  fs.chmodSync(bin, 0o755);
  return bin;
}

function execPath(tool: string): string {
  for (const d of ['/usr/bin', '/bin', '/usr/sbin']) if (fs.existsSync(path.join(d, tool))) return path.join(d, tool);
  throw new Error(`'${tool}' is not on this machine: install coreutils and findutils (apt-get install -y coreutils findutils)`);
}
