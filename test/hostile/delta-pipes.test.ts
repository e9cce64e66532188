/**
 * The server's changed-blocks script cuts the file into named pipes that one hash tool reads in order
 * (sync/engine/delta-remote.ts). A pipe's writer and reader each wait for the other, so every way one
 * side can stop early is played here, with the real script under a real `sh`, real coreutils and real
 * FIFOs (the tools that misbehave are wrappers put first on PATH): the script must end at once with
 * exit 65 (the runner then sends the file whole), say why, and leave no pipe, copy or process behind.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { deltaScript } from '../../sync/engine/delta-remote';
import { tempDir } from '../support/trees';

const BS = 65_536;
const TEMP = '.kubedev-0123456789ab.tmp';

let dir: string;
let root: string;
let bin: string;
beforeEach(() => {
  dir = tempDir('delta-pipes');
  root = path.join(dir, 'root');
  bin = path.join(dir, 'bin');
  fs.mkdirSync(root);
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(root, 'f.bin'), crypto.randomBytes(10 * BS + 100));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A tool on the script's PATH ahead of the real one. */
function wrap(name: string, body: string): void {
  fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

interface Ended {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
  readonly ms: number;
}

/** Runs the script for f.bin; ends its stdin after `stdinMs` (the runner's give-up) if still running. */
function run(stdinMs = 5_000): Promise<Ended> {
  const t0 = performance.now();
  const c: ChildProcess = spawn('sh', ['-c', deltaScript(root, '', 'f.bin', TEMP, BS, true)], { cwd: dir, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  c.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const giveUp = setTimeout(() => c.stdin?.end(), stdinMs);
  return new Promise((resolve) => {
    c.on('exit', (code) => {
      clearTimeout(giveUp);
      resolve({ code, out, err, ms: performance.now() - t0 });
    });
  });
}

/** What the script left in the folder, once its background removal had time to run. */
async function left(): Promise<string[]> {
  await new Promise((r) => setTimeout(r, 300));
  return fs.readdirSync(root).sort();
}

test('all goes well: every block hashed through its pipe, in order, no block file on disk', async () => {
  // A hash tool that reports what it was given: pipes, not files.
  wrap('xxh128sum', 'for p; do case $p in -*) ;; *) [ -p "$p" ] || { echo "not a pipe: $p" >&2; exit 9; };; esac; done; exec /usr/bin/xxh128sum "$@"');
  const e = await run(500); // no changed range: the runner gives up after the hashes
  expect(e.err).toBe('');
  const lines = e.out.split('\n');
  const hashes = lines.filter((l) => /^[0-9a-f]{32} {2}\S+\.\d{6}$/.test(l));
  expect(hashes.map((l) => l.slice(-6))).toEqual(Array.from({ length: 11 }, (_, i) => String(i).padStart(6, '0')));
  expect(lines).toContain('KUBEDEV-DELTA end');
  expect(e.code).toBe(3); // stdin ended without a commit: the copy removed
  expect(await left()).toEqual(['f.bin']);
});

test('the file shrinks while split reads it: split ends short, the hash tool is let go, exit 65 at once', async () => {
  wrap('split', 'truncate -s 200000 ./f.bin; exec /usr/bin/split "$@"');
  const e = await run();
  expect(e.code).toBe(65);
  expect(e.ms).toBeLessThan(4_000);
  expect(e.err).toMatch(/changed or could not be read while it was cut into blocks/);
  expect(e.out).not.toContain('KUBEDEV-DELTA end');
  expect(await left()).toEqual(['f.bin']);
});

test('split fails after three blocks, having named a fourth it never opened: the hash tool waiting on it is let go', async () => {
  wrap('split', `for p; do :; done; head -c ${3 * BS} ./f.bin | /usr/bin/split --verbose -a 6 -d -b ${BS} - "$p"; echo "creating file '\${p}000003'"; exit 1`);
  const e = await run();
  expect(e.code).toBe(65);
  expect(e.ms).toBeLessThan(4_000);
  expect(e.err).toMatch(/changed or could not be read while it was cut into blocks/);
  expect(await left()).toEqual(['f.bin']);
});

test('split fails mid-block (a read error): the hash tool already past that pipe is let go from the next', async () => {
  wrap('split', `for p; do :; done; head -c ${3 * BS + 500} ./f.bin | /usr/bin/split --verbose -a 6 -d -b ${BS} - "$p"; exit 1`);
  const e = await run();
  expect(e.code).toBe(65);
  expect(e.ms).toBeLessThan(4_000);
  expect(await left()).toEqual(['f.bin']);
});

test('the hash tool is killed after its first block: split, waiting for a reader of the next pipe, is stopped', async () => {
  wrap('xxh128sum', 'for p; do :; done; /usr/bin/xxh128sum -q "${p%.*}.000000"; kill -9 $$');
  const e = await run();
  expect(e.code).toBe(65);
  expect(e.ms).toBeLessThan(4_000);
  expect(e.out).not.toContain('KUBEDEV-DELTA end');
  expect(await left()).toEqual(['f.bin']);
});
