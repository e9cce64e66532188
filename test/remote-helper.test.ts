/**
 * The remote helper (sync/engine/remote-helper.ts) against the sidecar's sshd run by a non-root user:
 * byte-equal files for odd names and modes, a helper killed mid-batch, a connection cut mid-batch, a
 * local file truncated or changed while sent, read-only folders, a server-side symlink leading out, and
 * one save through a delaying proxy in at most 1.5 round trips.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startDelayProxy } from '../bench/delay-proxy';
import { applyPlan, ApplyContext } from '../sync/engine/apply';
import { emptyPlan, Plan, PlanItem } from '../sync/engine/plan';
import { HELPER_MAX_BYTES, helperStarted, modeArgs, OutsideRootError, RemoteHelper } from '../sync/engine/remote-helper';
import { BatchStats } from '../sync/engine/session';
import { Connection, ConnectionError } from '../sync/engine/transport';
import { Entry } from '../sync/engine/tree';
import { Arena, useArena } from './support/hostile';
import { snapshot, tempDir } from './support/trees';

const { sshd, arena } = useArena();
let conn: Connection | undefined;

afterEach(async () => {
  await conn?.close();
  conn = undefined;
});

async function connect(port = sshd().port, knownHosts = sshd().knownHosts): Promise<Connection> {
  const s = sshd();
  conn = await Connection.open({ host: '127.0.0.1', port, user: s.user, identity: s.identity, knownHosts });
  return conn;
}

/** The remote root made, owned by the sshd user. */
function remoteRoot(a: Arena): string {
  fs.mkdirSync(a.remote, { recursive: true });
  execFileSync('chown', ['-R', `${sshd().uid}:${sshd().gid}`, a.remote]);
  return a.remote;
}

function fileItem(a: Arena, rel: string): PlanItem {
  const st = fs.lstatSync(path.join(a.local, rel));
  return { rel, entry: { type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 } };
}

/** `count` files of `bytes` random bytes in a fresh remote root's local folder; their names. */
function randomFiles(a: Arena, count: number, bytes: number): string[] {
  remoteRoot(a);
  const names = Array.from({ length: count }, (_, i) => `f${i}.bin`);
  for (const n of names) fs.writeFileSync(path.join(a.local, n), crypto.randomBytes(bytes));
  return names;
}

function plan(files: PlanItem[], dirs: PlanItem[] = []): Plan {
  return { ...emptyPlan(), files, dirs };
}

function ctx(c: Connection, a: Arena, remote: Map<string, Entry> = new Map(), extra: Partial<ApplyContext> = {}): ApplyContext {
  return { conn: c, localRoot: a.local, remoteRoot: a.remote, remote, method: 'helper', ...extra };
}

/** Names the runner's temporary files use: left by a killed run, removed by the next pass. */
function leftovers(root: string): string[] {
  return Object.keys(snapshot(root)).filter((r) => path.posix.basename(r).startsWith('.kubedev-'));
}

const ODD_NAMES = [
  'plain.txt', ' lead space', 'trail space ', '-n', '--', '-rf x', "it's", 'say "hi"', 'back\\slash\\', 'ünïcödé ✓.txt',
  'line\nbreak', 'tab\there', 'star*?[a]', '$(touch pwned)', '`id`', 'a;b|c&d', 'CR\r', '.hidden', 'sub/deeper/x y.txt', 'sub/-dash',
];
const MODES = [0o644, 0o755, 0o600, 0o444, 0o750, 0o4755, 0o640, 0o700];

describe('remote helper', () => {
  test('odd names and modes arrive byte-equal (mode, mtime); a name with a newline and a file over the size limit go by SFTP', async () => {
    const a = arena();
    remoteRoot(a);
    fs.mkdirSync(path.join(a.local, 'sub/deeper'), { recursive: true });
    ODD_NAMES.forEach((n, i) => {
      const abs = path.join(a.local, n);
      // Contents that look like the framing: a header line with another key, a trailer, no newline at the end.
      const body = Buffer.concat([Buffer.from(`K0123 w 1 5 022 - 0 3\nabc\nK0123 c 1\n${n}`), crypto.randomBytes(i * 997)]);
      fs.writeFileSync(abs, i === 3 ? Buffer.alloc(0) : body);
      fs.chmodSync(abs, MODES[i % MODES.length]);
    });
    fs.mkdirSync(path.join(a.local, 'ro new'));
    fs.writeFileSync(path.join(a.local, 'ro new/f.txt'), 'in a new read-only folder');
    fs.writeFileSync(path.join(a.local, 'limit.bin'), crypto.randomBytes(HELPER_MAX_BYTES));
    fs.writeFileSync(path.join(a.local, 'over.bin'), crypto.randomBytes(HELPER_MAX_BYTES + 1));
    const files = [...ODD_NAMES, 'ro new/f.txt', 'limit.bin', 'over.bin'].map((n) => fileItem(a, n));
    fs.chmodSync(path.join(a.local, 'ro new'), 0o555);
    // New folders go through the helper too, in the same stream as the files after them.
    const dirs: PlanItem[] = [['sub', 0o755], ['sub/deeper', 0o700], ['ro new', 0o555]].map(([rel, mode]) => ({ rel: rel as string, entry: { type: 'dir', size: 0, mtimeMs: 0, mode: mode as number } }));
    fs.chmodSync(path.join(a.local, 'sub/deeper'), 0o700);
    const c = await connect();
    const helper = (await helperStarted(c, a.remote)) as RemoteHelper;
    expect(helper).toBeDefined();
    const res = await applyPlan(ctx(c, a), plan(files, dirs));
    expect(res.unsent).toEqual([]);
    expect(a.differences()).toEqual([]);
    for (const f of files) expect(Math.floor(fs.statSync(path.join(a.remote, f.rel)).mtimeMs / 1000)).toBe(Math.floor(f.entry.mtimeMs / 1000));
    // Everything but the newline name and the file over the limit went through the helper.
    expect(helper.written).toBe(files.length - 2);
    expect(leftovers(a.remote)).toEqual([]);
    expect(fs.existsSync(path.join(a.remote, 'pwned'))).toBe(false);
  });

  test('the mode as umask when it can, else chmod', () => {
    expect(modeArgs(0o644)).toEqual({ umask: '133', chmod: '-' });
    expect(modeArgs(0o400)).toEqual({ umask: '377', chmod: '-' });
    expect(modeArgs(0o755)).toEqual({ umask: '077', chmod: '755' });
    expect(modeArgs(0o4644)).toEqual({ umask: '077', chmod: '4644' });
  });

  test('a helper killed mid-batch: the unanswered files go by SFTP, no target is half-written, the next pass removes leftovers, and a new helper starts', async () => {
    const a = arena();
    const names = randomFiles(a, 30, 256 * 1024);
    const c = await connect();
    const helper = (await helperStarted(c, a.remote)) as RemoteHelper;
    let killed = false;
    const onBytes = (): void => {
      if (killed) return;
      killed = true;
      process.kill(helper.pid, 'SIGKILL');
    };
    const res = await applyPlan(ctx(c, a, new Map(), { onBytes }), plan(names.map((n) => fileItem(a, n))));
    expect(killed).toBe(true);
    expect(res.unsent).toEqual([]);
    expect(helper.alive).toBe(false);
    expect(helper.written).toBeLessThan(names.length);
    expect(a.differences((r) => r.startsWith('.kubedev-'))).toEqual([]);
    const next = await helperStarted(c, a.remote);
    expect(next?.pid).not.toBe(helper.pid);
    // A full pass removes what the killed helper left.
    await a.session({ watch: false }).start();
    expect(a.differences()).toEqual([]);
  });

  test('a connection cut mid-batch: the batch fails as a connection error, every target is whole or untouched, the next pass converges', async () => {
    const a = arena();
    const names = randomFiles(a, 30, 128 * 1024);
    const c = await connect();
    await helperStarted(c, a.remote);
    let cut = false;
    const onBytes = (): void => {
      if (!cut) cut = sshd().killSessions() > 0;
    };
    await expect(applyPlan(ctx(c, a, new Map(), { onBytes }), plan(names.map((n) => fileItem(a, n))))).rejects.toThrow(ConnectionError);
    expect(cut).toBe(true);
    for (const n of names) {
      const remote = path.join(a.remote, n);
      if (fs.existsSync(remote)) expect(fs.readFileSync(remote).equals(fs.readFileSync(path.join(a.local, n)))).toBe(true);
    }
    await a.session({ watch: false }).start();
    expect(a.differences()).toEqual([]);
  });

  test('a local file truncated, or changed after it was read: the remote copy stays as it was and no temporary file is left', async () => {
    const a = arena();
    remoteRoot(a);
    fs.writeFileSync(path.join(a.local, 'cut.txt'), 'x'.repeat(1000));
    fs.writeFileSync(path.join(a.local, 'touched.txt'), 'y'.repeat(1000));
    const c = await connect();
    await applyPlan(ctx(c, a), plan([fileItem(a, 'cut.txt'), fileItem(a, 'touched.txt')]));
    const before = snapshot(a.remote);
    const helper = (await helperStarted(c, a.remote)) as RemoteHelper;
    const cut = fileItem(a, 'cut.txt');
    fs.truncateSync(path.join(a.local, 'cut.txt'), 10);
    // Same size, another mtime than planned: read whole, sent, then aborted instead of committed.
    const touched = fileItem(a, 'touched.txt');
    const stale: PlanItem = { rel: touched.rel, entry: { ...touched.entry, mtimeMs: touched.entry.mtimeMs - 5000 } };
    const writes = helper.writes;
    const res = await applyPlan(ctx(c, a), plan([cut, stale]));
    expect(res.unsent.sort()).toEqual(['cut.txt', 'touched.txt']);
    expect(res.changed.sort()).toEqual(['cut.txt', 'touched.txt']);
    expect(helper.writes - writes).toBe(2);
    expect(snapshot(a.remote)).toEqual(before);
    expect(helper.alive).toBe(true);
  });

  test('read-only folders: opened for the write, given their mode back; one the index does not know refuses the helper, then SFTP says why', async () => {
    const a = arena();
    const root = remoteRoot(a);
    fs.mkdirSync(path.join(root, 'ro'));
    fs.writeFileSync(path.join(root, 'ro/old.txt'), 'old');
    fs.mkdirSync(path.join(root, 'ro2'));
    execFileSync('chown', ['-R', `${sshd().uid}:${sshd().gid}`, root]);
    fs.chmodSync(path.join(root, 'ro'), 0o555);
    fs.chmodSync(path.join(root, 'ro2'), 0o555);
    fs.mkdirSync(path.join(a.local, 'ro'));
    fs.mkdirSync(path.join(a.local, 'ro2'));
    fs.writeFileSync(path.join(a.local, 'ro/new.txt'), 'new in a read-only folder');
    fs.writeFileSync(path.join(a.local, 'ro2/new.txt'), 'refused');
    const c = await connect();
    const index = new Map<string, Entry>([['ro', { type: 'dir', size: 0, mtimeMs: 0, mode: 0o555 }]]);
    await applyPlan(ctx(c, a, index), plan([fileItem(a, 'ro/new.txt')]));
    expect(fs.readFileSync(path.join(root, 'ro/new.txt'), 'utf8')).toBe('new in a read-only folder');
    expect(fs.statSync(path.join(root, 'ro')).mode & 0o7777).toBe(0o555);
    // The index says 0755 (the folder was made read-only on the server since): the helper cannot create
    // its file there, and SFTP, trying after it, reports the permission problem.
    const stale = new Map<string, Entry>([['ro2', { type: 'dir', size: 0, mtimeMs: 0, mode: 0o755 }]]);
    await expect(applyPlan(ctx(c, a, stale), plan([fileItem(a, 'ro2/new.txt')]))).rejects.toThrow(/writing 'ro2\/new.txt' failed on the remote .*The remote user may not write there/);
    expect(leftovers(root)).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'ro2'))).toEqual([]);
  });

  test('a folder replaced on the server by a symlink leading out: nothing is written through it, by the helper or by SFTP', async () => {
    const a = arena();
    const root = remoteRoot(a);
    fs.symlinkSync(path.join(a.base, 'sentinel'), path.join(root, 'sub'));
    fs.mkdirSync(path.join(a.local, 'sub'));
    fs.writeFileSync(path.join(a.local, 'sub/keep.txt'), 'would overwrite the sentinel');
    const c = await connect();
    const index = new Map<string, Entry>([['sub', { type: 'dir', size: 0, mtimeMs: 0, mode: 0o755 }]]);
    await expect(applyPlan(ctx(c, a, index), plan([fileItem(a, 'sub/keep.txt')]))).rejects.toThrow(OutsideRootError);
    await expect(applyPlan(ctx(c, a, index), plan([fileItem(a, 'sub/keep.txt')]))).rejects.toThrow(`the remote folder of 'sub/keep.txt' resolves outside '${root}' on the server (a symlink made there since it was listed); nothing was written through it. Remove that symlink on the server (or make it a folder), then start the sync again`);
    expect(leftovers(path.join(a.base, 'sentinel'))).toEqual([]);
  });

  test('deletes: odd names and trees holding read-only folders go in one request each; a parent leading out of the root is an error, nothing deleted there', async () => {
    const a = arena();
    const root = remoteRoot(a);
    const gone = ['gone.txt', 'dir with space', '-rf', "q'uote\\"];
    for (const g of ['gone.txt', '-rf', "q'uote\\", 'ünï\nline', 'keep.txt']) fs.writeFileSync(path.join(root, g), g);
    fs.mkdirSync(path.join(root, 'dir with space/ro'), { recursive: true });
    fs.writeFileSync(path.join(root, 'dir with space/ro/f'), 'f');
    execFileSync('chown', ['-R', `${sshd().uid}:${sshd().gid}`, root]);
    fs.chmodSync(path.join(root, 'dir with space/ro'), 0o555);
    fs.symlinkSync(path.join(a.base, 'sentinel'), path.join(root, 'sub'));
    const c = await connect();
    const helper = (await helperStarted(c, a.remote)) as RemoteHelper;
    await applyPlan(ctx(c, a), { ...emptyPlan(), deletes: gone });
    expect(helper.removed).toBe(gone.length);
    expect(fs.readdirSync(root).sort()).toEqual(['keep.txt', 'sub', 'ünï\nline']);
    // A name with a newline cannot be framed in one line: the script deletes it.
    await applyPlan(ctx(c, a), { ...emptyPlan(), deletes: ['ünï\nline'] });
    expect(helper.removed).toBe(gone.length);
    expect(fs.readdirSync(root).sort()).toEqual(['keep.txt', 'sub']);
    const index = new Map<string, Entry>([['sub', { type: 'dir', size: 0, mtimeMs: 0, mode: 0o755 }]]);
    await expect(applyPlan(ctx(c, a, index), { ...emptyPlan(), deletes: ['sub/keep.txt'] })).rejects.toThrow(OutsideRootError);
    expect(fs.readdirSync(root).sort()).toEqual(['keep.txt', 'sub']);
  });

  test('a helper that cannot start (the root is not a folder) leaves every file to SFTP', async () => {
    const a = arena();
    const c = await connect();
    const file = path.join(a.base, 'not-a-folder');
    fs.writeFileSync(file, '');
    await expect(RemoteHelper.start(c, file)).rejects.toThrow(/the remote helper could not start: the helper exited: noroot|cd: /);
    expect(c.alive).toBe(true);
  });

  test('a one-shot run (--once) starts no helper on the server; a watching session starts one with its first pass', async () => {
    const a = arena();
    fs.writeFileSync(path.join(a.local, 'f.txt'), 'x');
    // The helper's exec names the root it serves in its arguments (its key goes on stdin).
    const helpers = (): number => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('kubedev-helper') && l.includes(a.remote)).length;
    const once = a.session({ watch: false });
    await once.start();
    await new Promise((r) => setTimeout(r, 500)); // a helper started in the background would be up by now
    expect(helpers()).toBe(0);
    await once.close();
    const watching = a.session();
    try {
      await watching.start();
      for (const deadline = Date.now() + 10_000; helpers() === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
      expect(helpers()).toBe(1);
    } finally {
      await watching.close();
    }
  });
});

describe('remote helper over a slow link', () => {
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

  test('one save takes at most 1.5 round trips (median of 10 through a 50 ms proxy), against 3 by SFTP', async () => {
    const a = arena();
    const proxy = await startDelayProxy(sshd().port, 25);
    try {
      const kh = path.join(tempDir('helper-kh'), 'known_hosts');
      fs.writeFileSync(kh, `[127.0.0.1]:${proxy.port} ${sshd().hostPublicKey}\n`);
      // The link's round trip, as the helper measures it: a no-op request through the same proxy.
      const c = await connect(proxy.port, kh);
      const probe = await RemoteHelper.start(c, a.base);
      const rtt = median(await Promise.all([0, 1, 2, 3, 4].map(async (i) => (await new Promise((r) => setTimeout(r, i * 120)), probe.ping()))));
      probe.close();
      fs.writeFileSync(path.join(a.local, 'f.txt'), 'start');
      const saves = async (method: 'sftp' | undefined, local: string, remote: string): Promise<number[]> => {
        const s = a.session({ localRoot: local, remoteRoot: remote, port: proxy.port, knownHosts: kh, method });
        const ms: number[] = [];
        const last: number[] = [];
        s.on('synced', (b: BatchStats) => ms.push(b.ms));
        await s.start();
        fs.writeFileSync(path.join(local, 'f.txt'), 'warm-up');
        await new Promise((r) => setTimeout(r, 1500)); // the first batch starts the helper in the background
        for (let i = 0; i < 10; i++) {
          const content = `save ${i}`;
          const n = ms.length;
          fs.writeFileSync(path.join(local, 'f.txt'), content);
          // One save may make two batches (the truncation seen first): the last one is the save's.
          while (ms.length === n || fs.readFileSync(path.join(remote, 'f.txt'), 'utf8') !== content) await new Promise((r) => setTimeout(r, 5));
          last.push(ms[ms.length - 1]);
        }
        await s.close();
        return last;
      };
      const helper = median(await saves(undefined, a.local, a.remote));
      const sftpLocal = tempDir('helper-sftp');
      fs.writeFileSync(path.join(sftpLocal, 'f.txt'), 'start');
      const sftp = median(await saves('sftp', sftpLocal, path.join(a.base, 'ws-sftp')));
      fs.rmSync(sftpLocal, { recursive: true, force: true });
      expect(rtt).toBeGreaterThanOrEqual(50);
      // 1.5 round trips of the no-op request, plus 15 ms for a loaded 2-core machine (90 ms at 50 ms).
      expect({ helper, rtt, within: helper <= 1.5 * rtt + 15 }).toEqual({ helper, rtt, within: true });
      expect(sftp).toBeGreaterThan(2.5 * rtt);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});
