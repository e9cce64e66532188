/**
 * The server's changed-blocks script cuts the file into named pipes that one hash tool reads in order
 * (sync/engine/delta-remote.ts). A pipe's writer and reader each wait for the other, so every way one
 * side can stop early is played here, with the real script under a real `sh` (dash, Debian's; bash,
 * which is `sh` elsewhere and reaps its children as they end; busybox's, Alpine's), real coreutils and real FIFOs (the tools
 * that misbehave are wrappers put first on PATH): the script must end at once, say why, and leave no
 * pipe, copy, folder or process behind.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlockHashKind } from '../../sync/engine/block-hash';
import { deltaScript } from '../../sync/engine/delta-remote';
import { tempDir } from '../support/trees';

const BS = 65_536;
/** The copy's name: this run's own (the process check below must not see another run's scripts). */
const TEMP = `.kubedev-${crypto.randomBytes(6).toString('hex')}.tmp`;

let dir: string;
let root: string;
let bin: string;
let tmp: string;
let shm: string;
beforeEach(() => {
  dir = tempDir('delta-pipes');
  root = path.join(dir, 'root');
  bin = path.join(dir, 'bin');
  tmp = path.join(dir, 'tmp');
  shm = path.join(dir, 'shm');
  for (const d of [root, bin, tmp, shm]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(root, 'f.bin'), crypto.randomBytes(10 * BS + 100));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A tool on the script's PATH ahead of the real one. */
function wrap(name: string, body: string): void {
  fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

/**
 * split as it is, but reading the file slowly: 200,000 bytes (3 blocks and part of a 4th), then nothing
 * for 3 s (a file on a slow disk); with `killMs`, SIGKILLed after that long (its buffered list of blocks is lost).
 */
function slowSplit(killMs?: number): void {
  const feed = path.join(dir, `feed-${crypto.randomBytes(4).toString('hex')}`); // a test's own: an earlier test's feeder may still hold its feed
  wrap(
    'split',
    [
      'for a; do :; done',
      // The feed opened both ways first, so that neither open waits: a feeder whose split was killed
      // early ends (SIGPIPE, or after its sleep) instead of waiting for a reader for good.
      `mkfifo ${feed}`,
      `exec 3<>${feed}`,
      // The feeder's own open of the feed holds a read end first (read-write never waits): the split
      // killed before the feeder opened it (a loaded machine) no longer leaves the feeder waiting for good.
      // split starts once the feeder holds its end: else, on a loaded machine, split could find no writer
      // at all (this shell's end closed, the feeder's not yet open) and end short at once.
      `( exec 4<>${feed} >${feed} 4<&-; : > ${feed}.open; head -c 200000 ./f.bin; exec sleep 3 ) 3<&- 2>/dev/null &`,
      `while [ ! -e ${feed}.open ]; do sleep 0.01; done`,
      // The killer is a shell of its own (not a subshell, which would look like this split to the check of what is left).
      ...(killMs === undefined ? [] : [`sh -c 'sleep ${killMs / 1000}; kill -9 "$0"' $$ 3<&- &`]),
      `exec /usr/bin/split --verbose -a 6 -d -b ${BS} - "$a" < ${feed} 3<&-`,
    ].join('\n'),
  );
}

interface Ended {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
  readonly ms: number;
}

interface RunOptions {
  /** Ends its stdin after this long (the runner's give-up) if still running. */
  readonly stdinMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Closes the script's stderr at once (the runner's channel half gone: a write there is a SIGPIPE). */
  readonly closeStderr?: boolean;
  /** Sends SIGHUP to the script after this long. */
  readonly hupMs?: number;
  readonly known?: { id: string; kind: BlockHashKind };
  readonly kinds?: readonly BlockHashKind[];
  /**
   * The script's shared-memory folder (/dev/shm) moved to this path (the test's own, unless said), so
   * what it makes and leaves there is this test's alone; `false` keeps /dev/shm itself.
   */
  readonly shm?: string | false;
  /** A command the shell is started through (`env --ignore-signal=TERM`). */
  readonly prefix?: readonly string[];
}

beforeAll(() => {
  for (const sh of ['dash', 'bash', 'busybox']) {
    try {
      execFileSync('sh', ['-c', `command -v ${sh}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${sh} is missing: apt-get install ${sh}`);
    }
  }
});

describe.each(['dash', 'bash', 'busybox sh'])('under %s', (shell) => {
  /** Runs the script for f.bin. */
  function run(o: RunOptions = {}): Promise<Ended> {
    const t0 = performance.now();
    const real = deltaScript(root, '', 'f.bin', TEMP, BS, true, o.known, o.kinds);
    let script = real;
    if (o.shm !== false) {
      const to = o.shm ?? shm;
      script = real.replace('mk /dev/shm ||', `mk ${to} ||`).replace('find /dev/shm/ ', `find ${to}/ `);
      expect(script.split(to)).toHaveLength(3); // the script still makes its pipes, and cleans, in /dev/shm
    }
    const [cmd, ...args] = [...(o.prefix ?? []), ...shell.split(' '), '-c', script];
    const c: ChildProcess = spawn(cmd, args, { cwd: dir, env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, TMPDIR: tmp, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    if (o.closeStderr) c.stderr?.destroy();
    else c.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const giveUp = setTimeout(() => c.stdin?.end(), o.stdinMs ?? 5_000);
    const hup = o.hupMs === undefined ? undefined : setTimeout(() => c.kill('SIGHUP'), o.hupMs);
    return new Promise((resolve) => {
      c.on('exit', (code, signal) => {
        clearTimeout(giveUp);
        clearTimeout(hup);
        resolve({ code: code ?? (signal ? -1 : null), out, err, ms: performance.now() - t0 });
      });
    });
  }

  /** What the script left: the root's names, shared memory's and the temporary space's, and the processes still running its tools. */
  async function left(): Promise<{ root: string[]; shm: string[]; tmp: string[]; processes: string[] }> {
    await new Promise((r) => setTimeout(r, 300));
    const processes: string[] = [];
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      let cmd = '';
      try {
        cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        continue; // ended since
      }
      if (cmd.includes(TEMP) || cmd.includes(dir)) processes.push(`${pid}: ${cmd}`);
    }
    return { root: fs.readdirSync(root).sort(), shm: fs.readdirSync(shm), tmp: fs.readdirSync(tmp), processes };
  }
  const clean = { root: ['f.bin'], shm: [], tmp: [], processes: [] };

  /** A hash tool that refuses what is not a pipe in a folder of `where` (its working folder). */
  function pipesIn(where: string): void {
    wrap('xxh128sum', `for p; do case $p in -*) ;; *) [ -p "$p" ] || { echo "not a pipe: $p" >&2; exit 9; }; case $PWD in "${where}"*) ;; *) echo "pipes in $PWD" >&2; exit 9;; esac;; esac; done; exec /usr/bin/xxh128sum "$@"`);
  }

  test('all goes well: every block hashed through its pipe in shared memory, in order, no block file on disk', async () => {
    pipesIn(shm);
    const e = await run({ stdinMs: 500 }); // no changed range: the runner gives up after the hashes
    expect(e.err).toBe('');
    const lines = e.out.split('\n');
    const hashes = lines.filter((l) => /^[0-9a-f]{32} {2}\S+\.\d{6}$/.test(l));
    expect(hashes.map((l) => l.slice(-6))).toEqual(Array.from({ length: 11 }, (_, i) => String(i).padStart(6, '0')));
    expect(lines).toContain('KUBEDEV-DELTA end');
    expect(e.code).toBe(3); // stdin ended without a commit: the copy removed
    expect(await left()).toEqual(clean);
  });

  test('the real /dev/shm: pipes made and removed there', async () => {
    pipesIn('/dev/shm/');
    const before = fs.readdirSync('/dev/shm').filter((n) => n.startsWith(TEMP));
    const e = await run({ stdinMs: 500, shm: false });
    expect(e.err).toBe('');
    expect(e.out.split('\n').filter((l) => /^[0-9a-f]{32} {2}\S+\.\d{6}$/.test(l))).toHaveLength(11);
    expect(e.code).toBe(3);
    expect(await left()).toEqual(clean);
    expect(fs.readdirSync('/dev/shm').filter((n) => n.startsWith(TEMP))).toEqual(before);
  });

  test('no shared memory: the pipes are made in the temporary space', async () => {
    pipesIn(tmp);
    const e = await run({ stdinMs: 500, shm: path.join(dir, 'none') });
    expect(e.err).toBe('');
    expect(e.out.split('\n').filter((l) => /^[0-9a-f]{32} {2}\S+\.\d{6}$/.test(l))).toHaveLength(11);
    expect(e.code).toBe(3);
    expect(await left()).toEqual(clean);
  });

  test('neither shared memory nor temporary space (a read-only root file system): the pipes are made beside the file', async () => {
    pipesIn(root);
    const e = await run({ stdinMs: 500, shm: path.join(dir, 'none'), env: { TMPDIR: path.join(dir, 'none') } });
    expect(e.err).toBe('');
    expect(e.out.split('\n').filter((l) => /^[0-9a-f]{32} {2}\S+\.\d{6}$/.test(l))).toHaveLength(11);
    expect(e.code).toBe(3);
    expect(await left()).toEqual(clean);
  });

  test("a killed script's pipes folder an hour old is removed in passing; a younger one (a live script's) is not", async () => {
    const stale = path.join(shm, '.kubedev-00000000000a.tmp.AbCdEf12');
    const young = path.join(shm, '.kubedev-00000000000b.tmp.AbCdEf12');
    for (const d of [stale, young]) {
      fs.mkdirSync(d);
      execFileSync('mkfifo', [path.join(d, '.kubedev-00000000000a.tmp.000000')]);
    }
    const hourAgo = new Date(Date.now() - 61 * 60_000);
    fs.utimesSync(stale, hourAgo, hourAgo);
    const e = await run({ stdinMs: 500 });
    expect(e.code).toBe(3);
    const l = await left();
    expect(l.shm).toEqual([path.basename(young)]);
    expect(l.root).toEqual(['f.bin']);
  });

  test('the file shrinks while split reads it: split ends short, the hash tool is stopped, exit 65 at once', async () => {
    wrap('split', 'truncate -s 200000 ./f.bin; exec /usr/bin/split "$@"');
    const e = await run();
    expect(e.code).toBe(65);
    expect(e.ms).toBeLessThan(4_000);
    expect(e.err).toMatch(/changed or could not be read while it was cut into blocks/);
    expect(e.out).not.toContain('KUBEDEV-DELTA end');
    expect(await left()).toEqual(clean);
  });

  test('split ends short and the message cannot be written (stderr closed: SIGPIPE): still ends at once, cleaned', async () => {
    wrap('split', 'truncate -s 200000 ./f.bin; exec /usr/bin/split "$@"');
    const e = await run({ closeStderr: true });
    expect([3, 65]).toContain(e.code);
    expect(e.ms).toBeLessThan(4_000);
    expect(e.out).not.toContain('KUBEDEV-DELTA end');
    expect(await left()).toEqual(clean);
  });

  /** The script ends at once with exit 65, saying the file could not be cut, and leaves nothing. */
  async function failsCutting(): Promise<void> {
    const e = await run();
    expect(e.code).toBe(65);
    expect(e.ms).toBeLessThan(4_000);
    expect(e.err).toMatch(/changed or could not be read while it was cut into blocks/);
    expect(await left()).toEqual(clean);
  }

  test('split fails after three blocks, having named a fourth it never opened: the hash tool waiting on it is stopped', async () => {
    wrap('split', `for p; do :; done; head -c ${3 * BS} ./f.bin | /usr/bin/split --verbose -a 6 -d -b ${BS} - "$p"; echo "creating file '\${p}000003'"; exit 1`);
    await failsCutting();
  });

  test('split fails at once, before the hash tool has opened a pipe: the pipes are released and it ends', async () => {
    wrap('split', 'exit 1');
    wrap('xxh128sum', 'sleep 0.3; exec /usr/bin/xxh128sum "$@"'); // starts late
    await failsCutting();
  });

  test('the file grows while split reads it: split stops at block n (a folder there), no block past it reaches shared memory', async () => {
    const plain = path.join(dir, 'plain');
    wrap('split', `head -c 3000000 /dev/zero >> ./f.bin; /usr/bin/split "$@"; s=$?; find ${shm} -type f ! -name v > ${plain}; exit $s`);
    await failsCutting();
    expect(fs.readFileSync(plain, 'utf8')).toBe('');
  });

  test('a hash tool that looked its pipe up before the release and waits on it only after: woken again within a second', async () => {
    wrap('split', 'sleep 0.3; exit 1');
    // The pipes' folder entered before the rename, so that its first pipe stands for one looked up then
    // (the rest by their names, gone with the rename); that first open made after it.
    const entered = path.join(dir, 'entered');
    wrap('xxh128sum', `cd a || exit 9; : > ${entered}; sleep 0.6; n=0; for p; do shift; case $n$p in 0a/*) set -- "$@" "\${p#a/}"; n=1;; *a/*) set -- "$@" "../$p";; *) set -- "$@" "$p";; esac; done; exec /usr/bin/xxh128sum "$@"`);
    await failsCutting();
    expect(fs.existsSync(entered)).toBe(true);
  });

  test('started with TERM ignored (which its children inherit): split ending short still ends it at once', async () => {
    wrap('split', 'truncate -s 200000 ./f.bin; exec /usr/bin/split "$@"');
    const e = await run({ prefix: ['env', '--ignore-signal=TERM'] });
    expect(e.code).toBe(65);
    expect(e.ms).toBeLessThan(4_000);
    expect(await left()).toEqual(clean);
  });

  test("the hash tool's subshells are SIGKILLed: the hash tool goes on, and ends when split ends short", async () => {
    slowSplit();
    // Its parent is xargs; every shell between xargs and the script's own (whose parent is this test's
    // node) is killed.
    const killed = path.join(dir, 'killed');
    wrap(
      'xxh128sum',
      `read -r _ _ _ s _ < /proc/$PPID/stat; while read -r _ _ _ g _ < /proc/$s/stat; ! tr '\\0' ' ' < /proc/$g/cmdline | grep -q node; do kill -9 $s && : >> ${killed}; s=$g; done; exec /usr/bin/xxh128sum "$@"`,
    );
    const e = await run();
    expect(e.code).toBe(65);
    expect(e.ms).toBeLessThan(6_000); // the slow read ends after 3 s
    expect(fs.existsSync(killed)).toBe(true);
    expect(await left()).toEqual(clean);
  });

  test('the hash tool cannot open one pipe (ENFILE) and goes on to the next: split, waiting on the one skipped, is stopped', async () => {
    // As xxh128sum and sha1sum do: a pipe that cannot be opened is named on stderr and skipped.
    wrap('xxh128sum', 'for p; do case $p in -*) ;; *.000003) echo "xxh128sum: $p: Too many open files in system" >&2;; *) /usr/bin/xxh128sum -q "$p";; esac; done; exit 1');
    await failsCutting();
  });

  test('split fails mid-block (a read error): the hash tool already past that pipe is stopped at the next', async () => {
    wrap('split', `for p; do :; done; head -c ${3 * BS + 500} ./f.bin | /usr/bin/split --verbose -a 6 -d -b ${BS} - "$p"; exit 1`);
    const e = await run();
    expect(e.code).toBe(65);
    expect(e.ms).toBeLessThan(4_000);
    expect(await left()).toEqual(clean);
  });

  test('split is SIGKILLed mid-file (its list of blocks, still buffered, is lost): exit 65 at once', async () => {
    slowSplit(500);
    const e = await run();
    expect(e.code).toBe(65);
    expect(e.ms).toBeLessThan(2_500); // before the slow read would have ended by itself
    expect(e.err).toMatch(/changed or could not be read while it was cut into blocks/);
    expect(await left()).toEqual(clean);
  });

  test('SIGHUP while split is still reading: split and the hash tool are stopped, the script ends at once', async () => {
    slowSplit();
    const e = await run({ hupMs: 500 });
    expect(e.code).toBe(3);
    expect(e.ms).toBeLessThan(2_500);
    expect(await left()).toEqual(clean);
  });

  test('the hash tool is killed after its first block: split, waiting for a reader of the next pipe, is stopped', async () => {
    wrap('xxh128sum', 'for p; do :; done; /usr/bin/xxh128sum -q "${p%.*}.000000"; kill -9 $$');
    const e = await run();
    expect(e.code).toBe(65);
    expect(e.ms).toBeLessThan(4_000);
    expect(e.out).not.toContain('KUBEDEV-DELTA end');
    expect(await left()).toEqual(clean);
  });

  test("a cache entry hashed a way the server no longer can (xxh128sum gone) is not taken: the blocks are hashed again", async () => {
    const id = execFileSync('find', ['./f.bin', '-maxdepth', '0', '-printf', '%s %T@ %i %C@'], { cwd: root, encoding: 'utf8' });
    const lost = await run({ stdinMs: 500, known: { id, kind: 'xxh128' }, kinds: ['sha1'] });
    expect(lost.out).not.toContain('cached');
    expect(lost.out.split('\n').filter((l) => /^[0-9a-f]{40} {2}\S+\.\d{6}$/.test(l))).toHaveLength(11);
    // The same entry, hashed the way the server has: taken.
    const kept = await run({ stdinMs: 500, known: { id, kind: 'sha1' }, kinds: ['sha1'] });
    expect(kept.out.split('\n')).toEqual(['KUBEDEV-DELTA', id, 'cached', 'KUBEDEV-DELTA end', '']);
    expect(await left()).toEqual(clean);
  });
});
