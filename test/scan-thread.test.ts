/**
 * The one-shot run's local scan in a worker thread (sync/engine/scan-thread.ts) must see exactly what
 * the main-thread walk sees, hostile shapes included: odd and non-UTF-8 names, links that leave the
 * tree, a named pipe, hard links, names Windows cannot hold, ignores from .kubedevignore and --ignore.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildIgnore } from '../sync/engine/ignore';
import { portabilityWarnings } from '../sync/engine/portable-names';
import { hasSpareScanThread, prestartScanThread, scanInThread } from '../sync/engine/scan-thread';
import { Entry, scanLocalSync } from '../sync/engine/tree';
import { tempDir, writeTree } from './support/trees';

let root: string;

beforeAll(() => {
  root = tempDir('scan-thread');
  writeTree(root, {
    'a.txt': 'a',
    'sub/deep/b.txt': 'bb',
    'sub/ünï cödé ☃.txt': 'u',
    'sub/with\nnewline': 'n',
    'link-in': { link: 'sub/deep/b.txt' },
    'link-out': { link: '../../etc/passwd' },
    'build/out.o': 'ignored by the file',
    'node_modules/x/index.js': 'ignored by the flag',
    'keep.log': { content: 'x', mode: 0o600 },
    '.kubedevignore': 'build/\n',
    'locked/inner.txt': 'i',
    'docs/Makefile': 'm',
    'docs/makefile': 'm',
  });
  fs.writeFileSync(Buffer.concat([Buffer.from(`${root}/sub/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]), 'not utf-8');
  fs.linkSync(path.join(root, 'a.txt'), path.join(root, 'sub/a-again.txt'));
  execFileSync('mkfifo', [path.join(root, 'pipe')]);
  fs.utimesSync(path.join(root, 'a.txt'), 1_700_000_000.123456, 1_700_000_000.123456);
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function entries(tree: { entries(): IterableIterator<[string, Entry]> }): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  // The thread's packed reply carries what the one-way engine keeps: not a file's ctime (only two-way
  // reads it, from its own scan).
  for (const [k, v] of tree.entries()) out[k] = { ...v, ctimeMs: undefined };
  return out;
}

test('the worker thread walk equals the main-thread walk, entry by entry, refusals and hard links included', async () => {
  const ig = buildIgnore(root, ['node_modules/']);
  const links: Array<[string, string]> = [];
  const here = scanLocalSync(root, ig, '', new Map(), [], { onHardLink: (rel, key) => links.push([rel, key]) });
  const there = await scanInThread(root, ig);
  expect(there.threaded).toBe(true);
  expect(entries(there.tree)).toEqual(entries(here.tree));
  expect(there.refused).toEqual(here.refused);
  expect(there.links).toEqual(links);
  expect(there.portable).toEqual(portabilityWarnings(here.tree.keys()));
  expect(there.portable?.map((w) => w.reason).join('\n')).toMatch(/differ only in letter case/);
  // What the fixture is for: each hostile shape is really there.
  expect(Object.keys(entries(there.tree)).sort()).toEqual(
    ['.kubedevignore', 'a.txt', 'docs', 'docs/Makefile', 'docs/makefile', 'keep.log', 'link-in', 'locked', 'locked/inner.txt', 'sub', 'sub/a-again.txt', 'sub/deep', 'sub/deep/b.txt', 'sub/with\nnewline', 'sub/ünï cödé ☃.txt'].sort(),
  );
  expect(there.tree.get('a.txt')?.mtimeMs).toBe(fs.lstatSync(path.join(root, 'a.txt')).mtimeMs);
  expect(there.tree.get('link-in')?.target).toBe('sub/deep/b.txt');
  expect(there.tree.get('sub')?.ino).toBe(fs.statSync(path.join(root, 'sub')).ino);
  expect(there.links.map(([rel]) => rel).sort()).toEqual(['a.txt', 'sub/a-again.txt']);
  const reasons = there.refused.map((r) => r.reason).join('\n');
  expect(reasons).toMatch(/link-out' points outside/);
  expect(reasons).toMatch(/not valid UTF-8 \(bytes 6261642dfffe2e747874\)/);
  expect(reasons).toMatch(/'pipe' is a named pipe/);
});

test('a folder that vanished before the thread came up is an empty scan, not a failure', async () => {
  const gone = tempDir('scan-thread-gone');
  fs.rmSync(gone, { recursive: true });
  const r = await scanInThread(gone, buildIgnore(gone));
  expect(r.tree.size).toBe(0);
  expect(r.refused).toEqual([]);
});

test('a thread started ahead (as bin/kubedev.js does) takes the first job; the next one starts its own', async () => {
  const ig = buildIgnore(root, ['node_modules/']);
  const here = entries(scanLocalSync(root, ig, '', new Map()).tree);
  prestartScanThread(false); // a machine without cores to spare: none
  expect(hasSpareScanThread()).toBe(false);
  prestartScanThread(true);
  expect(hasSpareScanThread()).toBe(true);
  await new Promise((r) => setTimeout(r, 200)); // the spare is up and idle by now
  expect(hasSpareScanThread()).toBe(true);
  const [first, second] = await Promise.all([scanInThread(root, ig), scanInThread(root, ig)]);
  expect(hasSpareScanThread()).toBe(false);
  for (const r of [first, second]) {
    expect(r.threaded).toBe(true);
    expect(entries(r.tree)).toEqual(here);
  }
});
