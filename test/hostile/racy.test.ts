/**
 * Racy files (sync/engine/pass-clock.ts): a file saved again with the same size in the very second the
 * last pass read it keeps its whole-second mtime, and the remote keeps whole seconds; the next pass
 * sends it all the same (rsync's default would not), and only it. Real sshd as a non-root user.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplyResult, landed } from '../../sync/engine/apply-common';
import { PassClock, SessionClock } from '../../sync/engine/pass-clock';
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

describe('SessionClock: a whole-tree rescan moves the clock once what it found is on the remote', () => {
  const store = (): { clock: SessionClock; file: () => number | undefined } => {
    const dir = tempDir('kubedev-clock-');
    const at = (fp: string): PassClock => PassClock.for(dir, fp, '/ws', '/local');
    return { clock: new SessionClock(at), file: () => at('fp').last() };
  };
  const res = (unsent: string[], changed: string[]): ApplyResult => ({ unsent, changed, warnings: [], bytes: 0, method: 'none' });

  test('a full pass sets it, and a rescan that found nothing moves it to its start, in memory and on disk', () => {
    const { clock, file } = store();
    clock.passDone('fp', 1000);
    expect([clock.racyFrom('fp'), file()]).toEqual([1001, 1000]);
    clock.rescanned(2000, [], 'fp');
    expect([clock.racyFrom('fp'), file()]).toEqual([2001, 2000]);
    clock.passDone('fp', 1500); // a pass that began before the rescan's start never moves it back
    expect([clock.racyFrom('fp'), file()]).toEqual([2001, 2000]);
  });

  test('it waits for every path the rescan found, and for the host key', () => {
    const { clock, file } = store();
    clock.passDone('fp', 1000);
    clock.rescanned(2000, ['a', 'b/c'], 'fp');
    clock.sent(['a'], 'fp');
    expect(file()).toBe(1000);
    clock.sent(['b/c'], undefined); // not connected: nothing to name the store by
    expect(file()).toBe(1000);
    clock.sent([], 'fp');
    expect([clock.racyFrom('fp'), file()]).toEqual([2001, 2000]);
    clock.rescanned(3000, ['x'], 'fp'); // a later rescan's paths owe again; an earlier one's settled
    clock.sent(['a', 'b/c'], 'fp');
    expect(file()).toBe(2000);
  });

  test('landed: paths left unsent, under a folder left unsent, or changed while sent have not landed', () => {
    expect(landed(['a', 'b', 'd/e/f', 'd2/g'], res([], []))).toEqual(['a', 'b', 'd/e/f', 'd2/g']);
    expect(landed(['a', 'b', 'd/e/f', 'd2/g', 'd'], res(['d'], ['b']))).toEqual(['a', 'd2/g']);
    expect(landed(['d/e/f', 'de/f'], res(['d/e'], []))).toEqual(['de/f']);
  });
});
