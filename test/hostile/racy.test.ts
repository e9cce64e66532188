/**
 * Racy files (sync/engine/pass-clock.ts): a file saved again with the same size in the very second the
 * last pass read it keeps its whole-second mtime, and the remote keeps whole seconds; the next pass
 * sends it all the same (rsync's default would not), and only it. Real sshd as a non-root user.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassClock, SessionClock } from '../../sync/engine/pass-clock';
import * as apply from '../../sync/engine/apply';
import * as verify from '../../sync/engine/verify';
import { useArena } from '../support/hostile';
import { tempDir } from '../support/trees';

jest.setTimeout(60_000);

const h = useArena();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function once(a: ReturnType<typeof h.arena>): Promise<number> {
  const s = a.session({ watch: false });
  const stats = await s.start();
  await s.close();
  return stats.files;
}

test('saved again with the same size in the second the last pass read it: sent by the next pass; then, unchanged, no more', async () => {
  const a = h.arena();
  const file = path.join(a.local, 'a.txt');
  fs.writeFileSync(path.join(a.local, 'old.txt'), 'untouched');
  fs.utimesSync(path.join(a.local, 'old.txt'), 1_600_000_000, 1_600_000_000);
  let raced = false;
  for (let attempt = 0; attempt < 5 && !raced; attempt++) {
    await sleep(1000 - (Date.now() % 1000) + 20); // early in a second: the pass and the save fit in it
    fs.writeFileSync(file, `v1-${attempt}`);
    const first = fs.statSync(file).mtimeMs;
    await once(a);
    fs.writeFileSync(file, `v2-${attempt}`); // same size, same second (checked below)
    raced = Math.floor(fs.statSync(file).mtimeMs / 1000) === Math.floor(first / 1000);
  }
  expect(raced).toBe(true); // the machine was too slow to save within the second 5 times: no test
  expect(await once(a)).toBe(1); // a.txt, not old.txt
  expect(a.differences()).toEqual([]);
  expect(await once(a)).toBe(0); // not modified since the last pass began reading: not racy any more
  expect(a.differences()).toEqual([]);
});

test('without a state folder (blockCache: false) the run works, the last read kept in memory only', async () => {
  const a = h.arena();
  fs.writeFileSync(path.join(a.local, 'b.txt'), 'b');
  const s = a.session({ watch: false, blockCache: false });
  expect((await s.start()).files).toBe(1);
  await s.close();
  expect(a.differences()).toEqual([]);
});

test('a clock file that is garbage, from the future or in the way (a file where its folder goes): ignored, the run works and sends nothing racy', async () => {
  const a = h.arena();
  const state = tempDir('racy-state');
  try {
    fs.writeFileSync(path.join(a.local, 'old.txt'), 'untouched');
    fs.utimesSync(path.join(a.local, 'old.txt'), 1_600_000_000, 1_600_000_000);
    const pass = async (): Promise<number> => {
      const s = a.session({ watch: false, blockCache: state });
      const stats = await s.start();
      await s.close();
      return stats.files;
    };
    expect(await pass()).toBe(1);
    const dir = path.join(state, 'passes');
    const [name] = fs.readdirSync(dir);
    const clock = path.join(dir, name);
    expect(fs.readFileSync(clock, 'utf8')).toMatch(/^\d+\n$/);
    for (const text of ['not a time\n', '0x10\n', `${Date.now() + 3_600_000}\n`, '']) {
      fs.writeFileSync(clock, text);
      expect(await pass()).toBe(0); // nothing racy: old.txt is not sent again
      expect(fs.readFileSync(clock, 'utf8')).toMatch(/^\d+\n$/); // and the clock is good again
    }
    fs.rmSync(dir, { recursive: true });
    fs.writeFileSync(dir, 'a file where the folder goes');
    expect(await pass()).toBe(0);
    expect(fs.readFileSync(dir, 'utf8')).toBe('a file where the folder goes');
    expect(fs.readdirSync(state).filter((n) => n.includes('.tmp'))).toEqual([]);
    expect(a.differences()).toEqual([]);
  } finally {
    fs.rmSync(state, { recursive: true, force: true });
  }
});

// Reproducible builds, `cp -p`, `touch -r`, an archive unpacked over the file: new bytes of the same size
// under the old mtime. The remote's size and whole-second mtime agree; the change time, which only the
// kernel sets, is from after the last pass began reading.
test('new bytes of the same size with the old mtime put back: sent by the next run (its change time is after the last pass); then no more', async () => {
  const a = h.arena();
  const file = path.join(a.local, 'gen.txt');
  fs.writeFileSync(file, 'build 1');
  fs.utimesSync(file, 1_600_000_000, 1_600_000_000);
  fs.writeFileSync(path.join(a.local, 'old.txt'), 'untouched');
  fs.utimesSync(path.join(a.local, 'old.txt'), 1_600_000_000, 1_600_000_000);
  expect(await once(a)).toBe(2);
  await sleep(20);
  fs.writeFileSync(file, 'build 2');
  fs.utimesSync(file, 1_600_000_000, 1_600_000_000);
  expect(await once(a)).toBe(1); // gen.txt, not old.txt
  expect(a.differences()).toEqual([]);
  expect(fs.readFileSync(path.join(a.remote, 'gen.txt'), 'utf8')).toBe('build 2');
  expect(await once(a)).toBe(0);
});

test('a chmod since the last pass (its change time moved too) sends the mode alone, no bytes', async () => {
  const a = h.arena();
  const file = path.join(a.local, 'tool.sh');
  fs.writeFileSync(file, '#!/bin/sh\necho hi\n');
  fs.utimesSync(file, 1_600_000_000, 1_600_000_000);
  expect(await once(a)).toBe(1);
  await sleep(20);
  fs.chmodSync(file, 0o755);
  const s = a.session({ watch: false });
  const stats = await s.start();
  await s.close();
  expect(stats.bytes).toBe(0);
  expect(fs.statSync(path.join(a.remote, 'tool.sh')).mode & 0o777).toBe(0o755);
  expect(a.differences()).toEqual([]);
});

describe("a watching session's rescans do not move the pass clock (the third review's findings: each failed with them)", () => {
  const T = 1_600_000_000;
  afterEach(() => jest.restoreAllMocks());

  /** `name` holding 'version 1\n' (mtime T), mirrored by a one-shot run. */
  async function mirroredV1(name: string): Promise<{ a: ReturnType<typeof h.arena>; f: string }> {
    const a = h.arena();
    const f = path.join(a.local, name);
    fs.writeFileSync(f, 'version 1\n');
    fs.utimesSync(f, T, T);
    expect(await once(a)).toBe(1);
    return { a, f };
  }

  test('SessionClock: full passes move it, never back', () => {
    const dir = tempDir('kubedev-clock-');
    const at = (fp: string): PassClock => PassClock.for(dir, fp, '/ws', '/local');
    const clock = new SessionClock(at);
    clock.passDone('fp', 2000);
    clock.passDone('fp', 1500);
    expect([clock.racyFrom('fp'), at('fp').last()]).toEqual([2001, 2000]);
  });

  test('a file changed while the watching session first sent it (mtime kept in the same second) is sent by the next run', async () => {
    const { a, f } = await mirroredV1('tool.sh');
    await sleep(20);
    // cp -p / touch -r: new bytes of the same size, the mtime put back (same second).
    fs.writeFileSync(f, 'version 2\n');
    fs.utimesSync(f, T, T + 0.3);
    // ... and once more while the watching session's first pass sends it (changed while sent: unsent).
    const real = verify.resolveVerify;
    let done = false;
    jest.spyOn(verify, 'resolveVerify').mockImplementation(async (...args) => {
      const same = await real(...args);
      if (!done && args[3].files.some((i) => i.rel === 'tool.sh')) {
        done = true;
        fs.writeFileSync(f, 'version 3\n');
        fs.utimesSync(f, T, T + 0.6);
      }
      return same;
    });
    const s = a.session({ rescanMs: 300 });
    await s.start();
    expect(done).toBe(true);
    await sleep(1500); // the batch for the changed file, then rescans
    await s.close();
    // The remote still holds version 1 (the session could not tell: pre-existing); the next run must send it.
    await once(a);
    expect(fs.readFileSync(path.join(a.remote, 'tool.sh'), 'utf8')).toBe('version 3\n');
    expect(a.differences()).toEqual([]);
  });

  test('a batch that read a file before a rescan began does not settle what the rescan found: a second save in the same second, then the session closed', async () => {
    const { a, f } = await mirroredV1('notes.txt');
    const s = a.session({ rescanMs: 60_000 }); // no periodic rescan: the test asks for one
    let closing: Promise<void> | undefined;
    const real = apply.applyPlan;
    jest.spyOn(apply, 'applyPlan').mockImplementation(async (ctx, plan) => {
      const res = await real(ctx, plan);
      if (closing || !plan.files.some((i) => i.rel === 'notes.txt')) return res;
      // The batch has read and sent version 2; the file is saved again (same size, same second)...
      fs.writeFileSync(f, 'version 3\n');
      fs.utimesSync(f, T, T + 0.6);
      // ... and a whole-tree rescan begins and ends before this batch is done (it finds notes.txt changed).
      const watcher = (s as unknown as { watcher: NodeJS.EventEmitter & { request(scope: string, why: string): void } }).watcher;
      const rescanned = new Promise((r) => watcher.once('rescanned', r));
      watcher.request('', 'review');
      await rescanned;
      closing = s.close(); // Ctrl-C: the batch in flight finishes, what is pending waits for the next run
      return res;
    });
    await s.start();
    fs.writeFileSync(f, 'version 2\n');
    fs.utimesSync(f, T, T + 0.2);
    for (let i = 0; i < 100 && !closing; i++) await sleep(100);
    expect(closing).toBeDefined();
    await closing;
    expect(fs.readFileSync(path.join(a.remote, 'notes.txt'), 'utf8')).toBe('version 2\n');
    jest.restoreAllMocks();
    await once(a); // version 3: same size, same second as version 2's remote copy; its ctime is before the rescan began
    expect(fs.readFileSync(path.join(a.remote, 'notes.txt'), 'utf8')).toBe('version 3\n');
  });
});
