/**
 * Two-sided torture: random edits and deletes on both sides at once, a runner restart before every
 * pass (each pass is a fresh session reading the ancestor back), conflicts checked and resolved with
 * `--take` as a user would, then a watching phase with the connection cut half-way. After every pass:
 * a path changed on one side only holds that side's version on both; a path changed on both holds
 * both versions (the local file and the conflict copy) or their agreement. Nothing is lost.
 * A second mix adds folder<->file flips and mode changes on both sides (restarts, then watching
 * through a cut): every version written is in a tree or a conflict copy, and once the conflicts are
 * taken the trees are equal, modes included.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Connection } from '../sync/engine/transport';
import { listConflicts, takeSide, TwoWayOptions } from '../sync/engine/two-way';
import { RemoteShell } from '../sync/engine/two-way/remote-shell';
import { useArena } from './support/hostile';
import { eventually, snapshot, writeTree } from './support/trees';
import { pass, remote, stateFileOf, twoWay } from './support/two-way';

jest.setTimeout(120_000);
const { sshd, arena } = useArena();
const PATHS = ['a', 'b', 'c', 'd/e', 'd/f', 'g/h/i'];
const isCopy = (rel: string): boolean => /\.conflict-remote-/.test(rel);

/** A seeded random number generator (the run is repeatable). */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}

type State = Map<string, string | null>; // path -> content, or null for deleted

function readSide(root: string, rel: string): string | null {
  try {
    return fs.readFileSync(path.join(root, rel), 'utf8');
  } catch {
    return null;
  }
}

function copiesOf(root: string, rel: string): string[] {
  const dir = path.join(root, path.dirname(rel));
  const base = path.basename(rel);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((n) => n.startsWith(`${base}.conflict-remote-`)).map((n) => fs.readFileSync(path.join(dir, n), 'utf8'));
}

test('random two-sided changes with a restart before every pass: nothing lost, one-sided changes everywhere', async () => {
  const a = arena();
  const rand = rng(12);
  const opts = (): Partial<TwoWayOptions> => ({});
  let version = 0;
  let conflictsSeen = 0;
  for (let round = 0; round < 24; round++) {
    const local: State = new Map();
    const remoteOps: string[] = [];
    const remoteState: State = new Map();
    for (const side of ['local', 'remote'] as const) {
      for (let k = 0; k < 3; k++) {
        const rel = PATHS[Math.floor(rand() * PATHS.length)];
        const write = rand() < 0.65;
        const content = write ? `${side}-${round}-${version++}` : null;
        if (side === 'local') {
          if (write) {
            fs.mkdirSync(path.dirname(path.join(a.local, rel)), { recursive: true });
            fs.writeFileSync(path.join(a.local, rel), content as string);
          } else fs.rmSync(path.join(a.local, rel), { force: true });
          local.set(rel, content);
        } else {
          remoteOps.push(write ? `mkdir -p '${path.dirname(rel)}' && printf %s '${content}' > '${rel}'` : `rm -f '${rel}'`);
          remoteState.set(rel, content);
        }
      }
    }
    remote(sshd(), a, remoteOps.join(' && '));
    const r = await pass(sshd(), a, opts());
    conflictsSeen += r.conflicts.length;
    const inConflict = new Set(r.conflicts.map((c) => c.rel));
    for (const rel of PATHS) {
      const l = local.has(rel) ? local.get(rel) : undefined;
      const rm = remoteState.has(rel) ? remoteState.get(rel) : undefined;
      const what = `round ${round} '${rel}' (local ${String(l)}, remote ${String(rm)})`;
      if (l === undefined && rm === undefined) continue;
      if (l !== undefined && rm !== undefined && l !== null && rm !== null && l !== rm) {
        // Both wrote: a conflict; the local file keeps the local version, the copy holds the remote one.
        expect([what, inConflict.has(rel)]).toEqual([what, true]);
        expect([what, readSide(a.local, rel)]).toEqual([what, l]);
        expect([what, copiesOf(a.local, rel)]).toEqual([what, expect.arrayContaining([rm])]);
        continue;
      }
      // One side only, or a delete against a write (the write wins), or both alike.
      const want = l === undefined ? rm : rm === undefined ? l : l ?? rm;
      expect([what, readSide(a.local, rel), readSide(a.remote, rel)]).toEqual([what, want, want]);
    }
    // Resolve what is open, alternating sides, as `kubedev conflicts --take` does.
    const o = { localRoot: a.local, remoteRoot: a.remote, host: sshd().host, port: sshd().port, user: sshd().user, identity: sshd().identity, knownHosts: sshd().knownHosts, stateFile: stateFileOf(a) };
    const open = listConflicts(o).map((c) => c.rel);
    if (open.length > 0) {
      const side = round % 2 === 0 ? 'local' : 'remote';
      const expected = new Map(open.map((rel) => [rel, readSide(side === 'local' ? a.local : a.remote, rel)]));
      await takeSide(o, side, open);
      for (const rel of open) expect([rel, readSide(a.local, rel), readSide(a.remote, rel)]).toEqual([rel, expected.get(rel), expected.get(rel)]);
    }
    expect(listConflicts(o)).toEqual([]);
    expect(a.differences(isCopy)).toEqual([]);
  }
  expect(conflictsSeen).toBeGreaterThan(0);
});

/**
 * A watching session (quick reconnects), the conflicts it reports (path -> copy) and the differences
 * between the trees, led by any error that ended the session (a session that stopped never converges:
 * the failure names why).
 */
async function watching(a: ReturnType<typeof arena>): Promise<{ s: ReturnType<typeof twoWay>; conflicts: Map<string, string | undefined>; differences(skip: (rel: string) => boolean): string[] }> {
  const s = twoWay(sshd(), a, { maxBackoffMs: 200 });
  const conflicts = new Map<string, string | undefined>();
  const errors: string[] = [];
  s.on('conflict', (c) => conflicts.set(c.rel, c.copy));
  s.on('error', (e) => errors.push(`the session ended: ${e.message}`));
  await s.start();
  return { s, conflicts, differences: (skip) => [...errors, ...a.differences(skip)] };
}

test('watching through a cut connection: both sides converge, every conflict keeps both versions', async () => {
  const a = arena();
  const rand = rng(7);
  const { s, conflicts, differences } = await watching(a);
  try {
    for (let i = 0; i < 30; i++) {
      const rel = PATHS[Math.floor(rand() * PATHS.length)];
      const content = `w-${i}`;
      if (rand() < 0.5) {
        fs.mkdirSync(path.dirname(path.join(a.local, rel)), { recursive: true });
        fs.writeFileSync(path.join(a.local, rel), content);
      } else remote(sshd(), a, `mkdir -p '${path.dirname(rel)}' && printf %s '${content}' > '${rel}'`);
      if (i === 15) (s as unknown as { conn: Connection }).conn.destroy('cut by the test');
      await new Promise((r) => setTimeout(r, 15));
    }
    const skip = (rel: string): boolean => isCopy(rel) || conflicts.has(rel);
    await eventually(() => differences(skip), 10_000, 'convergence after the cut');
    for (const copy of conflicts.values()) if (copy) expect(fs.existsSync(path.join(a.local, copy))).toBe(true);
  } finally {
    await s.close();
  }
});

test('the connection lost while a push\'s guards are released and a pull follows: the pass fails as a lost connection, no rejection left unhandled, the next run converges', async () => {
  const a = arena();
  await pass(sshd(), a); // the ancestor: empty on both sides
  writeTree(a.local, { 'up.txt': 'v1' });
  remote(sshd(), a, 'printf v1 > down.txt');
  await pass(sshd(), a);
  fs.writeFileSync(path.join(a.local, 'up.txt'), 'laptop v2');
  remote(sshd(), a, "printf 'container v2' > down.txt");
  // The release of the push's guards is sent on the shell and the connection goes just after: the
  // release fails while the pass goes on to its pull. Before, the release's rejection was nobody's (an
  // unhandled rejection ends a Node 20 process: a watching session lost to a dropped connection).
  const conns: Connection[] = [];
  const open = RemoteShell.open.bind(RemoteShell);
  const opened = jest.spyOn(RemoteShell, 'open').mockImplementation(async (conn) => {
    conns.push(conn);
    return open(conn);
  });
  const run = RemoteShell.prototype.run;
  let cut = false;
  const ran = jest.spyOn(RemoteShell.prototype, 'run').mockImplementation(function (this: RemoteShell, script: string) {
    const p = run.call(this, script);
    if (script.includes('.conflict-container-') && !cut) {
      cut = true;
      conns[conns.length - 1].destroy('cut by the test');
    }
    return p;
  });
  try {
    // `--once` does not reconnect: the run fails as a lost connection, and is run again.
    await expect(pass(sshd(), a)).rejects.toThrow(/cut by the test/);
  } finally {
    opened.mockRestore();
    ran.mockRestore();
  }
  expect(cut).toBe(true);
  await new Promise((r) => setTimeout(r, 50)); // a rejection left unhandled is reported by now
  await pass(sshd(), a);
  expect([fs.readFileSync(path.join(a.local, 'down.txt'), 'utf8'), remote(sshd(), a, 'cat up.txt')]).toEqual(['container v2', 'laptop v2']);
});

/** Paths for the flip mix: 'c' and 'd' are files or folders by turns ('c/x', 'd/e' inside them). */
const FLIP_PATHS = ['a', 'b', 'c', 'c/x', 'd', 'd/e', 'd/f', 'g/h/i'];
const MODES = ['755', '644', '600', '750'];
/** More paths while watching, so that more versions stay untouched to the end. */
const WATCH_PATHS = [...FLIP_PATHS, 'k', 'l/m', 'n', 'o/p/q', 'r', 's/t'];

/**
 * One random operation as a shell script (the same for either side): write, delete, chmod or flip. A
 * folder above the path that is a file ('c', 'd') is made a folder first; `rel` is the path it touches.
 */
function randomOp(rand: () => number, content: string, paths = FLIP_PATHS): { rel: string; script: string } {
  const rel = paths[Math.floor(rand() * paths.length)];
  const x = rand();
  const parent = `d=$(dirname '${rel}'); [ "$d" = . ] || { [ -d "$d" ] || rm -f "$d"; mkdir -p "$d"; }`;
  if (x < 0.45) return { rel, script: `${parent}; rm -rf '${rel}'; printf %s '${content}' > '${rel}'` };
  if (x < 0.6) return { rel, script: `rm -rf '${rel}'` };
  if (x < 0.85) return { rel, script: `[ ! -f '${rel}' ] || chmod ${MODES[Math.floor(rand() * MODES.length)]} '${rel}'` };
  // A flip: a file becomes a folder holding one file, a folder becomes a file.
  return { rel, script: `${parent}; if [ -d '${rel}' ]; then rm -rf '${rel}' && printf %s '${content}' > '${rel}'; else rm -f '${rel}' && mkdir -p '${rel}' && printf %s '${content}' > '${rel}/flipped'; fi` };
}

/** Two paths touch when one is the other or below it. */
const touch = (x: string, y: string): boolean => x === y || x.startsWith(`${y}/`) || y.startsWith(`${x}/`);

/**
 * Every file's content under `root` (conflict copies included; the runner's own temporaries and guards
 * left out). While a session runs, a file may go between the walk and its read: the walk is made again.
 */
function contents(root: string): Set<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      const snap = snapshot(root, (rel) => path.posix.basename(rel).startsWith('.kubedev-'));
      return new Set(Object.keys(snap).filter((rel) => snap[rel].startsWith('file')).map((rel) => fs.readFileSync(path.join(root, rel), 'utf8')));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw e;
    }
  }
}

function localScript(root: string, script: string): void {
  execFileSync('sh', ['-c', script], { cwd: root });
}

test('random flips (folder <-> file) and mode changes on both sides: every version kept, equal after the conflicts are taken', async () => {
  const a = arena();
  const rand = rng(31);
  const o = { localRoot: a.local, remoteRoot: a.remote, host: sshd().host, port: sshd().port, user: sshd().user, identity: sshd().identity, knownHosts: sshd().knownHosts, stateFile: stateFileOf(a) };
  let version = 0;
  let conflictsSeen = 0;
  for (let round = 0; round < 10; round++) {
    const ops = { local: [] as string[], remote: [] as string[] };
    for (const side of ['local', 'remote'] as const) for (let k = 0; k < 3; k++) ops[side].push(randomOp(rand, `${side}-${round}-${version++}`).script);
    localScript(a.local, ops.local.join('; '));
    remote(sshd(), a, ops.remote.join('; '));
    // The versions this round left on each side: each must survive the pass somewhere.
    const written = [...contents(a.local), ...contents(a.remote)].filter((c) => c.includes(`-${round}-`));
    const r = await pass(sshd(), a);
    conflictsSeen += r.conflicts.length;
    const after = new Set([...contents(a.local), ...contents(a.remote)]);
    expect([round, written.filter((c) => !after.has(c))]).toEqual([round, []]);
    const open = listConflicts(o).map((c) => c.rel);
    if (open.length > 0) await takeSide(o, 'local', open);
    expect([round, listConflicts(o)]).toEqual([round, []]);
    expect([round, a.differences(isCopy)]).toEqual([round, []]);
  }
  expect(conflictsSeen).toBeGreaterThan(0);
});

test('flips and mode changes while watching, through a cut connection: converges, every version kept', async () => {
  const a = arena();
  const rand = rng(5);
  const { s, conflicts, differences } = await watching(a);
  const ops: { side: string; rel: string; content: string; made: boolean }[] = [];
  try {
    for (let i = 0; i < 40; i++) {
      const side = rand() < 0.5 ? 'local' : 'remote';
      const content = `${side}-w-${i}`;
      const op = randomOp(rand, content, WATCH_PATHS);
      if (side === 'local') localScript(a.local, op.script);
      else remote(sshd(), a, op.script);
      ops.push({ side, rel: op.rel, content, made: contents(side === 'local' ? a.local : a.remote).has(content) });
      if (i === 20) (s as unknown as { conn: Connection }).conn.destroy('cut by the test');
      await new Promise((r) => setTimeout(r, 15));
    }
    const under = (rel: string): boolean => [...conflicts.keys()].some((c) => rel === c || rel.startsWith(`${c}/`));
    await eventually(() => differences((rel) => isCopy(rel) || under(rel)), 10_000, 'convergence after the cut');
    for (const copy of conflicts.values()) if (copy) expect(fs.existsSync(path.join(a.local, copy))).toBe(true);
    // A version no later operation (either side) touched is still somewhere: a tree or a copy (a
    // container write in place while the runner uploads the laptop's version is kept by the guard link).
    const after = new Set([...contents(a.local), ...contents(a.remote)]);
    const untouched = ops.filter((o, i) => o.made && !ops.slice(i + 1).some((later) => touch(later.rel, o.rel)));
    expect(untouched.length).toBeGreaterThanOrEqual(3);
    expect(untouched.map((o) => o.content).filter((c) => !after.has(c))).toEqual([]);
  } finally {
    await s.close();
  }
});
