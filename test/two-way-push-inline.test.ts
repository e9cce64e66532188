/**
 * Laptop saves swapped in with the scoped listing (push-inline.ts): one command lists and swaps, and a
 * swap happens only over the very version the ancestor records. The container's writes are injected
 * into that command at exact steps (between the listing and the swap, just before the rename), so each
 * race happens every time; a test whose injection point is not in the command fails.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as apply from '../sync/engine/apply';
import * as classifyModule from '../sync/engine/two-way/classify';
import * as remoteList from '../sync/engine/two-way/remote-list';
import { BYTEWISE_TEXT_MAX, mtimeTests, printfBytes, printfLength } from '../sync/engine/two-way/push-inline';
import { RemoteShell } from '../sync/engine/two-way/remote-shell';
import { TwoWaySession } from '../sync/engine/two-way';
import { ConflictRecord } from '../sync/engine/two-way/state-store';
import { Arena, useArena } from './support/hostile';
import { remote, twoWay } from './support/two-way';
import { writeTree } from './support/trees';

jest.setTimeout(60_000);
/** Called after each local lstatSync (passed through): a test puts the laptop's change at that exact step. */
let mockAfterLstat: ((p: unknown) => void) | undefined;
jest.mock('node:fs', () => {
  const real = jest.requireActual<typeof import('node:fs')>('node:fs');
  return {
    ...real,
    lstatSync: (...args: Parameters<typeof real.lstatSync>) => {
      const st = real.lstatSync(...args);
      mockAfterLstat?.(args[0]);
      return st;
    },
  };
});
const { sshd, arena } = useArena();
/** The swap tests' mode: the session's swap helper (swap-helper.ts), or the sh path (a server without perl). */
let swapHelper = true;
/** Where the container's writes go in a swap's command, on either path. */
const AT = {
  rename: (): RegExp => (swapHelper ? / && \{ printf '%s\\n' 'M / : / && mv -fT -- /),
  lastLook: (): RegExp => (swapHelper ? / \{ printf '%s\\n' 'M / : / \[ ! -L '\.\/f\.txt' \]/),
  guard: (): RegExp => (swapHelper ? /printf '%s\\n' 'C / : /ln -- '\.\/f\.txt'/),
};
afterEach(() => jest.restoreAllMocks());

/** Waits (at most 10 s) until `ok()`. */
async function until(ok: () => boolean, what = 'the condition'): Promise<void> {
  for (const deadline = Date.now() + 10_000; !ok(); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const read = (root: string, rel: string): string | undefined => {
  try {
    return fs.readFileSync(path.join(root, rel), 'utf8');
  } catch {
    return undefined;
  }
};
const internal = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.startsWith('.kubedev-'));

interface Watching {
  readonly s: TwoWaySession;
  readonly warnings: string[];
  readonly conflicts: ConflictRecord[];
  /** applyPlan calls (today's push path) since start. */
  pushes(): number;
  /** The paths today's push path sent. */
  pushed(): string[];
  /** The scoped listings' commands that held a swap, as sent. */
  readonly swaps: string[];
  /** Remote listings (whole or scoped) since start. */
  listings(): number;
  /** Rewrites of the listing commands that swap (the container's writes at exact steps). */
  readonly rewrite: ((cmd: string, scoped: readonly string[]) => string)[];
}

/** The container's `inject` (sh) put into the next listing command that swaps, before what `at` matches. */
function injectOnce(w: Watching, at: RegExp, inject: string): { done: () => boolean } {
  let done = false;
  w.rewrite.push((cmd) => {
    if (done) return cmd;
    const edited = cmd.replace(at, (m) => `${inject}${m}`);
    done = edited !== cmd;
    return edited;
  });
  return { done: () => done };
}

/** A watching session over `a` that has made its first pass; `fn` runs, then it closes. */
async function watching(a: Arena, fn: (w: Watching) => Promise<void>, extra: Parameters<typeof twoWay>[2] = {}): Promise<void> {
  const s = twoWay(sshd(), a, extra);
  const warnings: string[] = [];
  const conflicts: ConflictRecord[] = [];
  s.on('warning', (m) => warnings.push(m));
  s.on('conflict', (c) => conflicts.push(c));
  const swaps: string[] = [];
  const rewrite: Watching['rewrite'] = [];
  const runs = jest.spyOn(RemoteShell.prototype, 'run');
  try {
    await s.start();
    const plans = jest.spyOn(apply, 'applyPlan');
    const real = remoteList.listRemoteExact;
    const spy = jest.spyOn(remoteList, 'listRemoteExact');
    spy.mockImplementation((run, root, ig, scoped, ...rest) => real((cmd) => {
      if (!cmd.includes('\nset -C\n')) return run(cmd);
      for (const r of rewrite) cmd = r(cmd, scoped ?? []);
      swaps.push(cmd);
      return run(cmd);
    }, root, ig, scoped, ...rest));
    await fn({ s, warnings, conflicts, rewrite, listings: () => spy.mock.calls.length, pushes: () => plans.mock.calls.length, pushed: () => plans.mock.calls.flatMap((c) => [...c[1].files, ...c[1].chmods].map((x) => x.rel)), swaps });
    // Each swap took the path the test is for (a helper that failed to start would test the sh path twice).
    expect(swaps.filter((c) => c.includes("' >&8") !== swapHelper)).toEqual([]);
    // And each swapped file's release (its look mark is named there).
    const releases = runs.mock.calls.map((c) => c[0]).filter((c) => c.includes('.kubedev-look-'));
    expect(releases.filter((c) => c.includes("printf '%s\\n' 'L ") !== swapHelper)).toEqual([]);
  } finally {
    await s.close();
  }
}

/**
 * `save` writes 'laptop save' to f.txt while the container writes 'container in place' into the file in
 * place just before the swap's rename: the swap lands (no push of its own) and the container's bytes are
 * kept beside it; the copy's name.
 */
async function savedWhileWrittenInPlace(a: Arena, w: Watching, save: () => void): Promise<string> {
  const race = injectOnce(w, AT.rename(), " && { printf 'container in place' >| ./f.txt; }");
  save();
  await until(() => w.warnings.some((m) => /was written in the container while the laptop's version was sent/.test(m)), 'the kept container write');
  expect(race.done()).toBe(true);
  expect(w.pushes()).toBe(0); // it was the swap
  expect(read(a.remote, 'f.txt')).toBe('laptop save');
  const copy = fs.readdirSync(a.remote).find((n) => n.startsWith('f.conflict-container-')) as string;
  expect(read(a.remote, copy)).toBe('container in place');
  return copy;
}

test('mtimeTests: find matches exactly the nanoseconds the listing reads as the ancestor mtime', () => {
  const dir = fs.mkdtempSync('/tmp/kubedev-mtime-');
  const f = path.join(dir, 'f');
  fs.writeFileSync(f, 'x');
  try {
    for (const at of ['1700000000.000000000', '1700000000.123456789', '1700000001.999999999', '1600000000.000000500']) {
      execFileSync('touch', ['-d', `@${at}`, f]);
      const m = Number(execFileSync('find', [f, '-printf', '%T@'], { encoding: 'utf8' })) * 1000;
      const tests = (mtimeTests(m) as string).split(' ');
      const hit = (): string => execFileSync('find', [f, '-maxdepth', '0', ...tests, '-printf', 'hit'], { encoding: 'utf8' });
      expect(hit()).toBe('hit');
      // A microsecond either way is another version.
      for (const d of [-1000, 1000]) {
        const [s, n] = at.split('.');
        const ns = BigInt(s) * 1_000_000_000n + BigInt(n) + BigInt(d);
        execFileSync('touch', ['-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, f]);
        expect(hit()).toBe('');
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('printfBytes: every byte comes out of the shell\'s built-in printf as itself (dash and bash), a leading dash too', () => {
  const all = Buffer.concat([Buffer.from('-%s%%\\c\\n\'"$x`\n'), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
  for (const sh of ['dash', 'bash']) expect(execFileSync(sh, ['-c', `printf -- ${printfBytes(all)}`])).toEqual(all);
});

test('printfLength is the length of printfBytes', () => {
  for (const b of [Buffer.alloc(0), Buffer.from('plain text'), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]) expect(printfLength(b)).toBe(printfBytes(b).length);
});

/**
 * Every swap test runs twice: with the session's swap helper (swap-helper.ts: perl does the check and
 * the rename) and on the sh path (a server without perl). The container's writes go at the same steps;
 * on the helper path "just before the rename" and "before the last look" are one step (both are the
 * helper's `M`), and "before the guard" is before its `C`.
 */
describe.each([['the swap helper', true], ['the sh path', false]] as const)('with %s', (_mode, helper) => {
  const open = RemoteShell.open.bind(RemoteShell);
  beforeEach(() => {
    swapHelper = helper;
    jest.spyOn(RemoteShell, 'open').mockImplementation((conn, command) => open(conn, command, helper));
  });

  test.each([
    ['exec bash', 'bytewise (bash): goes by SFTP'],
    ['exec sh', 'dash: swapped in'],
  ])('a 64 KiB binary laptop save on a server shell run as `%s`: %s; a small save is swapped in either way (bash reads its commands a byte at a time)', async (shell) => {
    const bin = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7) % 256));
    expect(printfLength(bin)).toBeGreaterThan(BYTEWISE_TEXT_MAX);
    const a = arena();
    writeTree(a.local, { 'big.bin': 'v1', 'small.txt': 'v1' });
    const opened = jest.spyOn(RemoteShell, 'open').mockImplementation((conn) => open(conn, shell, helper));
    try {
      await watching(a, async (w) => {
        fs.writeFileSync(path.join(a.local, 'big.bin'), bin);
        fs.writeFileSync(path.join(a.local, 'small.txt'), 'v2');
        await until(() => fs.existsSync(path.join(a.remote, 'big.bin')) && fs.readFileSync(path.join(a.remote, 'big.bin')).equals(bin) && read(a.remote, 'small.txt') === 'v2', 'both saves in the container');
        expect(w.pushed()).toEqual(shell === 'exec bash' ? ['big.bin'] : []);
        expect(w.swaps.length).toBeGreaterThan(0);
      });
    } finally {
      opened.mockRestore();
    }
  });

  test('laptop saves of small files, odd names and modes, are swapped in with the scoped listing: no push of their own, bytes, mode and mtime as the SFTP push sets them', async () => {
    const a = arena();
    const names = ['sp ace.txt', "qu'o\"te.txt", '-dash', 'new\nline', 'd/ünï $(x).txt', 'run.sh', 'empty'];
    writeTree(a.local, Object.fromEntries(names.map((n) => [n, n === 'run.sh' ? { content: '#!/bin/sh\n', mode: 0o755 } : `v1 ${n}`])));
    await watching(a, async (w) => {
      for (const n of names) fs.writeFileSync(path.join(a.local, n), n === 'empty' ? '' : `v2 of ${n}\n`.repeat(50));
      fs.chmodSync(path.join(a.local, 'run.sh'), 0o750);
      for (const n of names) await until(() => read(a.remote, n) === read(a.local, n) && (fs.statSync(path.join(a.remote, n)).mode & 0o777) === (fs.statSync(path.join(a.local, n)).mode & 0o777), `'${n}' in the container`);
      expect(w.swaps.length).toBeGreaterThan(0);
      expect(w.pushed()).toEqual([]);
      for (const n of names) expect(fs.statSync(path.join(a.remote, n)).mtimeMs).toBe(Math.floor(fs.statSync(path.join(a.local, n)).mtimeMs / 1000) * 1000);
      await until(() => internal(a.remote).length === 0 && internal(path.join(a.remote, 'd')).length === 0, 'the guards released');
      expect(w.conflicts).toEqual([]);
      expect(w.warnings).toEqual([]);
    });
    expect(a.differences()).toEqual([]);
  });

  test('a laptop save that puts the size and mtime back (an editor that keeps the mtime) is still sent', async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1 laptop' });
    fs.utimesSync(path.join(a.local, 'f.txt'), 1_700_000_000, 1_700_000_000);
    await watching(a, async (w) => {
      await new Promise((r) => setTimeout(r, 300)); // the first pass's own echo goes by
      fs.writeFileSync(path.join(a.local, 'f.txt'), 'v2 laptop');
      fs.utimesSync(path.join(a.local, 'f.txt'), 1_700_000_000, 1_700_000_000);
      await until(() => read(a.remote, 'f.txt') === 'v2 laptop', 'the save in the container');
      await until(() => internal(a.remote).length === 0, 'the guard released');
      expect(w.conflicts).toEqual([]);
    });
    expect(a.differences()).toEqual([]);
  });

  test("a pulled file whose ctime alone moved (a chmod to the same mode) sends nothing: its bytes are the ancestor's", async () => {
    const a = arena();
    remote(sshd(), a, 'printf "container v1" > f.txt');
    await watching(a, async (w) => {
      await until(() => read(a.local, 'f.txt') === 'container v1', 'the pull');
      await new Promise((r) => setTimeout(r, 300));
      const listed = w.listings();
      fs.chmodSync(path.join(a.local, 'f.txt'), fs.statSync(path.join(a.local, 'f.txt')).mode & 0o7777);
      await until(() => w.listings() > listed, 'the pass the change makes');
      await new Promise((r) => setTimeout(r, 300));
      expect([w.swaps.length, w.pushes(), w.conflicts]).toEqual([0, 0, []]);
    });
  });

  test('a pass that fails after its listing swapped a file in still releases the guard (nothing left to be removed as a leftover later)', async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1' });
    await watching(a, async (w) => {
      const errors: Error[] = [];
      w.s.on('error', (e) => errors.push(e));
      jest.spyOn(classifyModule, 'classify').mockImplementationOnce(() => {
        throw new Error('injected after the listing');
      });
      fs.writeFileSync(path.join(a.local, 'f.txt'), 'laptop save');
      await until(() => errors.length > 0, 'the failed pass');
      expect(errors[0].message).toMatch(/injected after the listing/);
      expect(w.swaps.length).toBe(1);
      expect(read(a.remote, 'f.txt')).toBe('laptop save');
      expect(internal(a.remote)).toEqual([]);
    });
  });

  test("a swap's own rename, reported by the server's watcher, runs no pass of its own (its echo is held until the release shows nothing else wrote the file)", async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1', 'g.txt': 'g1' });
    await watching(a, async (w) => {
      await new Promise((r) => setTimeout(r, 500)); // the first pass's own echo (it sent both files) goes by
      for (const [i, rel] of ['f.txt', 'g.txt', 'f.txt'].entries()) {
        const before = w.listings();
        fs.writeFileSync(path.join(a.local, rel), `save ${i}`);
        await until(() => read(a.remote, rel) === `save ${i}`, `save ${i} in the container`);
        await until(() => internal(a.remote).length === 0, 'the guard released');
        await new Promise((r) => setTimeout(r, 400));
        expect([i, w.listings() - before]).toEqual([i, 1]);
      }
      expect(w.swaps.length).toBe(3);
      expect(w.pushed()).toEqual([]);
    });
    expect(a.differences()).toEqual([]);
  });

  test('a container write just after the swap (before the release looks) is not taken for the echo: it comes to the laptop', async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1' });
    await watching(a, async (w) => {
      const race = injectOnce(w, /if \[ "\$k" \]; then printf 'P/, "printf 'container after the swap' >| ./f.txt\n");
      fs.writeFileSync(path.join(a.local, 'f.txt'), 'laptop save');
      await until(() => read(a.local, 'f.txt') === 'container after the swap', "the container's write on the laptop");
      expect(race.done()).toBe(true);
      expect(read(a.remote, 'f.txt')).toBe('container after the swap');
      expect(w.conflicts).toEqual([]);
    });
  });

  test('a container save by rename just before the swap is kept (the swap skips; the listing after it shows the change): a conflict, both versions kept', async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1', 'g.txt': 'g1' });
    await watching(a, async (w) => {
      // The same size and mode as the version it replaces: only its mtime (nanoseconds) tells. (The
      // swap opens the command: the container's write is made in the root, from a subshell.)
      const race = injectOnce(w, /\nset -C\n/, `\n(cd '${a.remote}' && printf 'c1' > f.txt.new && mv -f f.txt.new f.txt)`);
      fs.writeFileSync(path.join(a.local, 'f.txt'), 'laptop save');
      await until(() => w.conflicts.length > 0, 'the conflict');
      expect(race.done()).toBe(true);
      expect(read(a.remote, 'f.txt')).toBe('c1');
      expect(read(a.local, 'f.txt')).toBe('laptop save');
      expect(read(a.local, w.conflicts[0].copy as string)).toBe('c1');
      await until(() => internal(a.remote).length === 0, 'no temporary file or guard left');
    });
  });

  test('a container write in place during the swap (just before the rename) is kept beside the file as a conflict-container copy', async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1' });
    await watching(a, async (w) => {
      const copy = await savedWhileWrittenInPlace(a, w, () => fs.writeFileSync(path.join(a.local, 'f.txt'), 'laptop save'));
      await until(() => read(a.local, copy) === 'container in place', 'the copy on the laptop');
      await until(() => internal(a.remote).length === 0, 'the guard released');
    });
  });

  test('a laptop save with an mtime before 1970 is a swap like any other: recorded, and a container write in place during it kept', async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1' });
    await watching(a, async (w) => {
      await savedWhileWrittenInPlace(a, w, () => {
        // Saved by rename with its mtime already set (an editor that keeps it, an archive unpacked): 1969.
        fs.writeFileSync(path.join(a.base, 'f.new'), 'laptop save');
        execFileSync('touch', ['-d', '@-31536000', path.join(a.base, 'f.new')]); // fs.utimesSync takes a negative time for now
        fs.renameSync(path.join(a.base, 'f.new'), path.join(a.local, 'f.txt'));
      });
      expect(fs.statSync(path.join(a.remote, 'f.txt')).mtimeMs).toBe(-31_536_000_000);
      await until(() => internal(a.remote).length === 0, 'the guard released');
      expect(w.conflicts).toEqual([]);
    });
  });

  test('a laptop file replaced by a FIFO between the look and the read is not opened for a writer: the runner does not freeze', async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1' });
    const f = path.join(a.local, 'f.txt');
    await watching(a, async () => {
      let swapped = false;
      // The file's look by the swap's read (push-inline.ts readWhole), then a FIFO in its place.
      mockAfterLstat = (p) => {
        if (swapped || p !== f || !new Error().stack?.includes('readWhole')) return;
        swapped = true;
        fs.unlinkSync(f);
        execFileSync('mkfifo', [f]);
      };
      // Should the runner wait on the FIFO, a writer opened after 4 s releases it (the test then fails on time).
      const writer = spawn('timeout', ['10', 'sh', '-c', 'sleep 4; [ -p "$1" ] && : > "$1"', 'sh', f], { stdio: 'ignore' });
      let gap = 0;
      let last = Date.now();
      const tick = setInterval(() => {
        gap = Math.max(gap, Date.now() - last);
        last = Date.now();
      }, 20);
      try {
        fs.writeFileSync(f, 'laptop save');
        await until(() => swapped, 'the read');
        await new Promise((r) => setTimeout(r, 1000));
        expect(gap).toBeLessThan(1000);
      } finally {
        mockAfterLstat = undefined;
        clearInterval(tick);
        writer.kill();
      }
    });
  });

  test.each([
    ['a folder (just before the rename)', 'rename', ' && { rm ./f.txt && mkdir ./f.txt && printf in > ./f.txt/in; }'],
    ['a symlink leading out (before the last look)', 'lastLook', ' { rm ./f.txt && ln -s "$S" ./f.txt; } &&'],
    ['a symlink leading out (before the guard)', 'guard', '{ rm ./f.txt && ln -s "$S" ./f.txt; } && '],
  ] as const)('a target the container replaced by %s during the swap is not written through or replaced', async (_, point, inject) => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1' });
    const sentinel = path.join(a.base, 'sentinel', 'keep.txt');
    await watching(a, async (w) => {
      const race = injectOnce(w, AT[point](), inject.replaceAll('"$S"', `'${sentinel}'`));
      fs.writeFileSync(path.join(a.local, 'f.txt'), 'laptop save');
      await until(() => race.done(), 'the injection');
      await new Promise((r) => setTimeout(r, 500)); // the pass and what follows it
      expect(fs.lstatSync(path.join(a.remote, 'f.txt')).isFile()).toBe(false); // the container's change stands
      expect(read(a.local, 'f.txt')).toBe('laptop save');
      await until(() => internal(a.remote).length === 0, 'no temporary file or guard left');
    });
  });

  test("the swap's temporary file replaced by a symlink to outside before its mode and mtime are set: the link's target keeps both, nothing is swapped", async () => {
    const a = arena();
    writeTree(a.local, { 'run.sh': { content: '#!/bin/sh\n', mode: 0o755 } });
    const sentinel = path.join(a.base, 'sentinel', 'keep.txt');
    const before = fs.statSync(sentinel);
    await watching(a, async (w) => {
      let done = false;
      w.rewrite.push((cmd) => {
        const tmp = /\.kubedev-[0-9a-f]{12}\.tmp/.exec(cmd)?.[0];
        const at = swapHelper ? /printf '%s\\n' 'C / : /touch -h -d /;
        if (done || !tmp || !at.test(cmd)) return cmd;
        done = true;
        return cmd.replace(at, (m) => `{ rm ./${tmp} && ln -s '${sentinel}' ./${tmp}; } && ${m}`);
      });
      fs.writeFileSync(path.join(a.local, 'run.sh'), '#!/bin/sh\necho laptop save\n');
      await until(() => done, 'the injection');
      await new Promise((r) => setTimeout(r, 500)); // the pass and what follows it
      const after = fs.statSync(sentinel);
      expect([after.mode & 0o7777, after.mtimeMs]).toEqual([before.mode & 0o7777, before.mtimeMs]);
      await until(() => read(a.remote, 'run.sh') === '#!/bin/sh\necho laptop save\n', 'the save, by the pass'); // the swap skipped: the SFTP path sends it
      await until(() => internal(a.remote).length === 0, 'no temporary file or guard left');
    });
  });

  test('a folder on the way the container replaced by a symlink to outside is not entered (nothing swapped there)', async () => {
    const a = arena();
    const sentinel = path.join(a.base, 'sentinel');
    const keep = fs.statSync(path.join(sentinel, 'keep.txt'));
    writeTree(a.local, { 'd/keep.txt': { content: fs.readFileSync(path.join(sentinel, 'keep.txt')), mode: keep.mode & 0o7777 } });
    fs.utimesSync(path.join(a.local, 'd/keep.txt'), 1_700_000_000, 1_700_000_000);
    fs.utimesSync(path.join(sentinel, 'keep.txt'), 1_700_000_000, 1_700_000_000); // the same stat as the ancestor's remote side
    await watching(a, async (w) => {
      const race = injectOnce(w, /\nset -C\n/, `\n(cd '${a.remote}' && mv d d.old && ln -s '${sentinel}' d)`);
      fs.writeFileSync(path.join(a.local, 'd/keep.txt'), 'laptop save');
      await until(() => race.done(), 'the injection');
      await new Promise((r) => setTimeout(r, 500));
      expect(fs.readlinkSync(path.join(a.remote, 'd'))).toBe(sentinel); // the container's swap took place
      expect(internal(sentinel)).toEqual([]);
      expect(read(a.local, 'd/keep.txt')).toBe('laptop save');
    });
  });

  test('a laptop save again while the swap runs: the newer save is pushed over the swapped one, no conflict', async () => {
    const a = arena();
    writeTree(a.local, { 'f.txt': 'v1' });
    await watching(a, async (w) => {
      let raced = false;
      w.rewrite.push((cmd) => {
        if (!raced) fs.writeFileSync(path.join(a.local, 'f.txt'), 'second laptop save, longer'); // after the bytes were read, before the command goes
        raced = true;
        return cmd;
      });
      fs.writeFileSync(path.join(a.local, 'f.txt'), 'first laptop save');
      await until(() => read(a.remote, 'f.txt') === 'second laptop save, longer', 'the second save');
      expect(raced).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      expect(w.conflicts).toEqual([]);
      expect(read(a.remote, 'f.txt')).toBe('second laptop save, longer');
      await until(() => internal(a.remote).length === 0, 'the guards released');
    });
    expect(a.differences()).toEqual([]);
  });

  test('a full container disk: the swap leaves nothing behind and the old file whole; the save goes once there is room', async () => {
    const a = arena();
    writeTree(a.local, { 'full/f.txt': 'v1' });
    const full = path.join(a.remote, 'full');
    fs.mkdirSync(full, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', full]);
    try {
      execFileSync('chown', [`${sshd().uid}:${sshd().gid}`, a.remote, full]);
      await watching(a, async (w) => {
        remote(sshd(), a, 'head -c 1000000 /dev/zero > full/filler 2>/dev/null || true');
        await new Promise((r) => setTimeout(r, 500)); // the pass the container's write makes is over (the save's pass is scoped)
        const big = 'laptop save '.repeat(3000); // 36 KB: more than is left
        fs.writeFileSync(path.join(a.local, 'full/f.txt'), big);
        await until(() => w.swaps.length > 0, 'the swap');
        await until(() => w.warnings.length > 0, 'a warning');
        expect(read(a.remote, 'full/f.txt')).toBe('v1');
        expect(internal(full)).toEqual([]);
        remote(sshd(), a, 'rm full/filler');
        fs.writeFileSync(path.join(a.local, 'full/f.txt'), `${big}!`);
        await until(() => read(a.remote, 'full/f.txt') === `${big}!`, 'the save once there is room');
        await until(() => internal(full).length === 0, 'the guards released');
      }, { ignore: ['filler'] });
    } finally {
      execFileSync('umount', [full]);
    }
  });
});
