/**
 * The two-way state on disk: a base written whole now and then, and a journal of changes appended on
 * each save, so a save while watching costs the change, not the ancestor. A crash mid-append, a journal
 * of another generation and a second process writing the same state never make the ancestor newer
 * than what was saved; at worst older, which is safe (see StateStore.reload).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Agreed, ConflictRecord, StateStore } from '../sync/engine/two-way/state-store';
import { tempDir } from './support/trees';

const key = { host: '127.0.0.1', port: 2222, remoteRoot: '/workspace', localRoot: '/tmp/project' };
const ag = (s: number): Agreed => ({ l: { t: 'f', s, m: 1_700_000_000_123.5, p: 0o644 }, r: { t: 'f', s, m: 1_700_000_000_000, p: 0o644 } });
const conflict: ConflictRecord = { rel: 'c.txt', copy: 'c.conflict-remote-20261201-040000.txt', at: '2026-12-01T04:00:00.000Z', why: 'changed on both sides' };

let dir = '';
let file = '';
beforeEach(() => {
  dir = tempDir('two-way-state');
  file = path.join(dir, 'state.json');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Everything a store holds, to compare a store with one read back from disk. */
function contents(s: StateStore): unknown {
  return { agreed: s.paths().sort().map((p) => [p, s.agreed(p)]), conflicts: s.conflicts(), root: s.remoteRootId };
}

test('small saves append to the journal and leave the base alone; a fresh store reads the same state back', () => {
  const s = new StateStore(file, key);
  for (let i = 0; i < 1000; i++) s.agree(`src/f${i}.ts`, ag(i));
  s.remoteRootId = '64769:12';
  s.save();
  const base = fs.statSync(file);
  expect(base.mode & 0o777).toBe(0o600);
  expect(fs.statSync(s.journalFile).mode & 0o777).toBe(0o600);
  const journalBefore = fs.statSync(s.journalFile).size;
  s.agree('src/f1.ts', ag(99));
  s.agree('src/f2.ts', undefined);
  s.setConflict(conflict);
  s.save();
  s.clearConflict('c.txt');
  s.agree('new.txt', ag(7));
  s.remoteRootId = '64769:13';
  s.save();
  expect(fs.statSync(file).mtimeMs).toBe(base.mtimeMs);
  expect(fs.statSync(s.journalFile).size - journalBefore).toBeLessThan(1000);
  const back = new StateStore(file, key);
  expect(contents(back)).toEqual(contents(s));
  expect(back.agreed('src/f1.ts')).toEqual(ag(99));
  expect(back.agreed('src/f2.ts')).toBeUndefined();
  expect(back.remoteRootId).toBe('64769:13');
  expect(back.conflicts()).toEqual([]);
});

test('a line torn by a crash is dropped (the ancestor is the one saved before it), and the next save folds the journal into the base', () => {
  const s = new StateStore(file, key);
  s.agree('a.txt', ag(1));
  s.save();
  s.agree('a.txt', ag(2));
  s.save();
  fs.appendFileSync(s.journalFile, '["a","a.txt",{"l":{"t":"f","s":3');
  const back = new StateStore(file, key);
  expect(back.agreed('a.txt')).toEqual(ag(2));
  back.agree('b.txt', ag(5));
  back.save();
  // Folded: the torn tail is gone, and what follows it is not lost behind it.
  expect(fs.readFileSync(back.journalFile, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
  const again = new StateStore(file, key);
  expect(contents(again)).toEqual(contents(back));
  expect(again.agreed('b.txt')).toEqual(ag(5));
});

test("a journal of another generation is ignored (a crash between a fold's two renames, a base deleted to start over)", () => {
  const s = new StateStore(file, key);
  s.agree('a.txt', ag(1));
  s.save();
  s.agree('a.txt', ag(2));
  s.save();
  const oldJournal = fs.readFileSync(s.journalFile);
  // A new base of another generation (as a fold writes it) with the old journal still beside it.
  fs.rmSync(file);
  fs.rmSync(s.journalFile);
  const fresh = new StateStore(file, key);
  fresh.agree('a.txt', ag(9));
  fresh.save();
  fs.writeFileSync(fresh.journalFile, oldJournal);
  expect(new StateStore(file, key).agreed('a.txt')).toEqual(ag(9));
});

test('a second process saving (kubedev conflicts --take) is read by the running one before its next pass', () => {
  const running = new StateStore(file, key);
  running.setConflict(conflict);
  running.agree('a.txt', ag(1));
  running.save();
  const other = new StateStore(file, key);
  other.clearConflict('c.txt');
  other.agree('c.txt', ag(4));
  other.save();
  running.reload();
  expect(running.conflicts()).toEqual([]);
  expect(running.agreed('c.txt')).toEqual(ag(4));
  running.agree('d.txt', ag(6));
  running.save();
  expect(contents(new StateStore(file, key))).toEqual(contents(running));
});

test('the journal is folded into the base once it outgrows it; an old state file without a journal is read and folded', () => {
  const s = new StateStore(file, key);
  s.agree('a.txt', ag(1));
  s.save();
  const firstBase = fs.readFileSync(file, 'utf8');
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 100; i++) s.agree(`f${i}`, ag(round * 100 + i));
    s.save();
  }
  expect(fs.readFileSync(file, 'utf8')).not.toBe(firstBase);
  expect(fs.statSync(s.journalFile).size).toBeLessThanOrEqual(Math.max(256 * 1024, fs.statSync(file).size));
  expect(contents(new StateStore(file, key))).toEqual(contents(s));

  // The format before the journal: a base with no generation, no journal file.
  const old = path.join(dir, 'old.json');
  fs.writeFileSync(old, JSON.stringify({ version: 1, localRoot: '/tmp/project', remote: 'x', agreed: [['a.txt', ag(1)]], conflicts: [] }), { mode: 0o600 });
  const o = new StateStore(old, key);
  expect(o.agreed('a.txt')).toEqual(ag(1));
  o.agree('b.txt', ag(2));
  o.save();
  expect(JSON.parse(fs.readFileSync(old, 'utf8')).journal).toMatch(/^[0-9a-f]{16}$/);
  expect(contents(new StateStore(old, key))).toEqual(contents(o));
});

test('100,000 agreed paths: a save after one change writes under a kilobyte, not the ancestor', () => {
  const s = new StateStore(file, key);
  for (let i = 0; i < 100_000; i++) s.agree(`src/pkg${i % 1000}/file-${i}.ts`, ag(i));
  s.save();
  const base = fs.statSync(file);
  expect(base.size).toBeGreaterThan(10_000_000);
  const j0 = fs.statSync(s.journalFile).size;
  s.agree('src/pkg1/file-1.ts', ag(42));
  s.save();
  expect(fs.statSync(s.journalFile).size - j0).toBeLessThan(1024);
  expect(fs.statSync(file).mtimeMs).toBe(base.mtimeMs);
});

test("a file's content hash: kept when the same sides are agreed again without one, dropped when a side changes, read back from the journal and the base", () => {
  const s = new StateStore(file, key);
  s.agree('gen.ts', { ...ag(1), h: 'hash-1' });
  s.save();
  s.agree('gen.ts', ag(1)); // a pass that found both sides unchanged
  expect(s.agreed('gen.ts')?.h).toBe('hash-1');
  s.save();
  expect(new StateStore(file, key).agreed('gen.ts')).toEqual({ ...ag(1), h: 'hash-1' }); // journal
  s.agree('gen.ts', { ...ag(1), h: 'hash-other' }); // the same sides with other bytes recorded: the newer hash
  expect(s.agreed('gen.ts')?.h).toBe('hash-other');
  s.agree('gen.ts', ag(2)); // pushed another way: its bytes are not known
  expect(s.agreed('gen.ts')?.h).toBeUndefined();
  s.agree('big.bin', { ...ag(3), h: 'hash-3' });
  for (let i = 0; i < 5000; i++) s.agree(`pad/f${i}`, ag(i)); // the journal outgrows the base: folded
  s.save();
  const back = new StateStore(file, key);
  expect(back.agreed('gen.ts')).toEqual(ag(2));
  expect(back.agreed('big.bin')).toEqual({ ...ag(3), h: 'hash-3' });
});
