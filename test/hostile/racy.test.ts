/**
 * Racy files (sync/engine/pass-clock.ts): a file saved again with the same size in the very second the
 * last pass read it keeps its whole-second mtime, and the remote keeps whole seconds; the next pass
 * sends it all the same (rsync's default would not), and only it. Real sshd as a non-root user.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useArena } from '../support/hostile';

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
