/**
 * Safety halts and the scheduler (issue 8, rows 0, 1, 13 and "never stall silently"): a local root that
 * goes away halts with nothing deleted; the batch loop cannot be left holding work; a batch that hangs
 * is abandoned and the mirror re-converges; a file truncated while it is sent never lands padded.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Scheduler } from '../../sync/engine/scheduler';
import { SyncSession } from '../../sync/engine/session';
import { Arena, useArena } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { eventually, nextEvent, snapshot, writeTree } from '../support/trees';

jest.setTimeout(60_000);

const h = useArena();
let sshd: Sshd;
let a: Arena;
beforeEach(() => {
  sshd = h.sshd();
  a = h.arena();
});

function files(n: number, prefix = 'f'): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i % 5}/file-${i}.txt`, `content ${i}\n`]));
}

describe('row 1: the local root goes away', () => {
  for (const backend of ['per-folder', 'parcel', 'recursive'] as const) {
    test(`moved away and a symlink to it put in its place (--watch ${backend}): the session halts within two ticks, every remote file stays`, async () => {
      writeTree(a.local, files(6));
      const s = a.session({ watchBackend: backend });
      await s.start();
      const remoteBefore = snapshot(a.remote);
      const failed = nextEvent<Error>(s, 'error', 15_000);
      const real = `${a.local}.real`;
      fs.renameSync(a.local, real);
      fs.symlinkSync(real, a.local);
      try {
        // Node's recursive watcher names paths by the folder's real place: no event matches the root any
        // more, so only the watcher's tick looks (a failed look is reported at the second in a row).
        fs.writeFileSync(path.join(a.local, 'after.txt'), 'written through the link');
        const e = await failed;
        expect(e.message).toMatch(/^local folder '.*' was replaced by a symlink.*deleted nothing remotely/);
        expect(snapshot(a.remote)).toEqual(remoteBefore);
      } finally {
        await s.close();
        fs.unlinkSync(a.local);
        fs.renameSync(real, a.local);
      }
    });
  }

  test('rm -rf of the mirrored folder: an error, the session stops, every remote file stays', async () => {
    writeTree(a.local, files(31));
    const s = a.session();
    await s.start();
    const remoteBefore = snapshot(a.remote);
    const failed = nextEvent<Error>(s, 'error', 10_000);
    fs.rmSync(a.local, { recursive: true });
    const e = await failed;
    expect(e.message).toMatch(/^local folder '.*' (is gone|was emptied).*deleted nothing remotely/);
    await expect(s.done).rejects.toThrow(/deleted nothing remotely/);
    expect(snapshot(a.remote)).toEqual(remoteBefore);
    fs.mkdirSync(a.local); // for the arena's cleanup
  });

  test('mv the folder away, then edit a file in it: an error, nothing deleted', async () => {
    writeTree(a.local, files(12));
    const s = a.session();
    await s.start();
    const remoteBefore = snapshot(a.remote);
    const failed = nextEvent<Error>(s, 'error', 10_000);
    const moved = `${a.local}-moved`;
    fs.renameSync(a.local, moved);
    fs.writeFileSync(path.join(moved, 'f0/file-0.txt'), 'edited after the move');
    expect((await failed).message).toMatch(/is gone \(removed, moved away or unmounted\)/);
    expect(snapshot(a.remote)).toEqual(remoteBefore);
    fs.renameSync(moved, a.local);
  });

  test('the folder replaced by another of the same name: an error, nothing deleted', async () => {
    writeTree(a.local, files(6));
    const s = a.session();
    await s.start();
    const remoteBefore = snapshot(a.remote);
    const failed = nextEvent<Error>(s, 'error', 10_000);
    fs.renameSync(a.local, `${a.local}-old`);
    fs.mkdirSync(a.local);
    fs.writeFileSync(path.join(a.local, 'other.txt'), 'another checkout');
    expect((await failed).message).toMatch(/was replaced by another folder/);
    expect(snapshot(a.remote)).toEqual(remoteBefore);
    fs.rmSync(`${a.local}-old`, { recursive: true });
  });

  test('emptied (every entry deleted, the folder kept): an error, nothing deleted', async () => {
    writeTree(a.local, files(40));
    const s = a.session();
    await s.start();
    const remoteBefore = snapshot(a.remote);
    const failed = nextEvent<Error>(s, 'error', 10_000);
    for (const n of fs.readdirSync(a.local)) fs.rmSync(path.join(a.local, n), { recursive: true });
    expect((await failed).message).toMatch(/was emptied \(the remote holds 45 entries\)/);
    expect(snapshot(a.remote)).toEqual(remoteBefore);
  });

  test('deleting one big folder (most of the tree) is still mirrored, after a short settle', async () => {
    writeTree(a.local, { ...files(60, 'big'), 'small/keep.txt': 'k' });
    const s = a.session();
    await s.start();
    for (let i = 0; i < 5; i++) fs.rmSync(path.join(a.local, `big${i}`), { recursive: true });
    await eventually(() => a.differences(), 5_000, 'big folders deleted');
  });
});

describe('row 2 on the server: a remote root that is a symlink', () => {
  test('resolving to a system folder is refused before anything is written', async () => {
    writeTree(a.local, { 'a.txt': 'a' });
    fs.symlinkSync('/usr', a.remote);
    const s = a.session({ watch: false });
    await expect(s.start()).rejects.toThrow(`remote folder '${a.remote}' on ${sshd.user}@127.0.0.1 resolves to '/usr' on the server (through a symlink), which is the system folder '/usr'; nothing was written. Pass a --remote that is a folder of its own, e.g. '/workspace'`);
    fs.unlinkSync(a.remote);
  });

  test('a folder below it resolving to / is refused too', async () => {
    writeTree(a.local, { 'a.txt': 'a' });
    fs.symlinkSync('/', path.join(a.base, 'up'));
    const s = a.session({ watch: false, remoteRoot: path.join(a.base, 'up', 'var') });
    await expect(s.start()).rejects.toThrow(/resolves to '\/var' on the server \(through a symlink\), which is the system folder '\/var'; nothing was written/);
  });
});

describe('row 0: the scheduler', () => {
  test('pump() finding nothing to do leaves the loop idle, and the next change is sent', async () => {
    writeTree(a.local, { 'a.txt': 'a' });
    const s = a.session();
    await s.start();
    const scheduler = (s as unknown as { scheduler: Scheduler }).scheduler;
    scheduler.pump();
    scheduler.pump();
    await new Promise((r) => setImmediate(r));
    expect(scheduler.running).toBeUndefined();
    expect(scheduler.busy).toBe(false);
    fs.writeFileSync(path.join(a.local, 'b.txt'), 'after an empty pump');
    await eventually(() => a.differences(), 5_000, 'change after an empty pump');
  });

  test('saves spread over the tree with folder churn: every write arrives, the last within 1 s', async () => {
    writeTree(a.local, files(1_500, 'tree'));
    const s = a.session();
    await s.start();
    const stopAt = Date.now() + 3_000;
    let op = 0;
    while (Date.now() < stopAt) {
      op++;
      if (op % 50 === 0) {
        fs.rmSync(path.join(a.local, 'gen'), { recursive: true, force: true });
        writeTree(a.local, files(20, `gen/g${op}-`));
      } else fs.writeFileSync(path.join(a.local, `tree${op % 5}/file-${(op * 7) % 1_500}.txt`), `save ${op}\n`);
      await new Promise((r) => setTimeout(r, 20));
    }
    fs.writeFileSync(path.join(a.local, 'last.txt'), 'the last write');
    const t0 = Date.now();
    await eventually(() => a.differences(), 10_000, 'after churn');
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});

describe('never stall silently', () => {
  test('a batch that hangs (the server stopped) is abandoned with a warning naming the step, then the mirror re-converges', async () => {
    writeTree(a.local, { 'a.txt': 'a' });
    const s = a.session({ stallMs: 1_500 });
    await s.start();
    const warned = nextEvent<string>(s, 'warning', 15_000, (m) => /^no progress for 2 s while /.test(m));
    expect(sshd.signalSessions('SIGSTOP')).toBe(1);
    try {
      fs.writeFileSync(path.join(a.local, 'b.txt'), 'sent while the server hangs');
      expect(await warned).toMatch(/dropping the connection and running a full pass/);
      await eventually(() => a.differences(), 15_000, 'after the stall');
    } finally {
      sshd.signalSessions('SIGKILL');
    }
  });
});

describe('row 13: bytes sent are bytes read', () => {
  for (const method of ['sftp', 'tar'] as const) {
    test(`a file truncated while it is sent never lands padded (--once, ${method})`, async () => {
      const big = path.join(a.local, 'big.bin');
      fs.writeFileSync(big, Buffer.alloc(64 * 1024 * 1024, 7));
      writeTree(a.local, { 'small.txt': 's' });
      const s: SyncSession = a.session({ watch: false, method });
      s.once('progress', () => fs.truncateSync(big, 1024 * 1024));
      await s.start();
      let remote = fs.readFileSync(path.join(a.remote, 'big.bin'));
      const local = fs.readFileSync(big);
      // Zero bytes would be tar's padding of a file that shrank (the local file holds none).
      // The whole file as it was before the cut is a copy read before it (twice in CI, under load, the
      // first progress report came after the file was read and looked at): not padded, not a mix, and
      // the next run sends the cut file. Anything else fails.
      if (remote.length === 64 * 1024 * 1024 && remote.every((x) => x === 7)) {
        await a.session({ watch: false, method }).start();
        remote = fs.readFileSync(path.join(a.remote, 'big.bin'));
      }
      expect({ length: remote.length, zeros: remote.filter((x) => x === 0).length }).toEqual({ length: local.length, zeros: 0 });
      expect(remote.equals(local)).toBe(true);
      expect(a.differences()).toEqual([]);
    });
  }
});
