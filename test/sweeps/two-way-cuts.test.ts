/**
 * The connection lost at every step of a two-way pass, one step at a time: every request the pass
 * makes (each registers for the connection's loss: exec channels, SFTP requests, the tar stream) and
 * every command on its long-lived shell counts as a step; the cut comes just after step N is sent, for
 * N = 1, 2, ... up to the steps the same run takes uncut. After each cut: the run fails as a lost
 * connection (`--once`) or reconnects (watching), no promise rejection is left unhandled (jest fails the
 * test on one; Node 20 ends the process), and the next pass converges with every version kept, no
 * temporary file or guard of the runner's left on either side.
 *
 * To see where a cut lands: CUT_DEBUG=1 (each step, its time and what it is); CUT_FROM=N starts the
 * sweep at step N.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConnectionError, Connection } from '../../sync/engine/transport';
import { RemoteShell } from '../../sync/engine/two-way/remote-shell';
import { arena as freshArena, useArena } from '../support/hostile';
import { eventually, snapshot, writeTree } from '../support/trees';
import { pass, remote, twoWay } from '../support/two-way';

jest.setTimeout(240_000);
const { sshd } = useArena();
type Arena = ReturnType<typeof freshArena>;
/** A new arena for each run of a sweep (useArena's is one per test), closed after the test. */
const arenas: Arena[] = [];
const arena = (): Arena => {
  const a = freshArena(sshd());
  arenas.push(a);
  return a;
};
afterEach(async () => {
  const all = arenas.splice(0);
  const changes = all.flatMap((a) => a.sentinelChanges());
  await Promise.all(all.map((a) => a.close()));
  expect(changes).toEqual([]);
});
const isCopy = (rel: string): boolean => /\.conflict-(remote|container)-/.test(rel);
const BIG = 96 * 1024; // over the size a save is swapped in with the listing: guard + SFTP

/** The connection each long-lived shell runs over (every shell the sessions open, counted or not). */
const shellConn = new WeakMap<RemoteShell, Connection>();
const openShell = RemoteShell.open.bind(RemoteShell);
jest.spyOn(RemoteShell, 'open').mockImplementation(async (conn) => {
  const s = await openShell(conn);
  shellConn.set(s, conn);
  return s;
});

/** Counts the pass's steps; with `cutAt`, destroys the connection once step `cutAt` is under way. */
function stepCounter(cutAt?: number): { steps(): number; cut(): boolean; restore(): void } {
  let n = 0;
  let cut = false;
  const step = (conn: Connection, what: string): void => {
    if (process.env.CUT_DEBUG) console.log(Date.now() % 100000, `step ${n + 1}`, what);
    if (++n !== cutAt) return;
    cut = true;
    setImmediate(() => conn.destroy(`cut by the test at step ${n}`));
  };
  const onDrop = Connection.prototype.onDrop;
  const run = RemoteShell.prototype.run;
  const spies = [
    jest.spyOn(Connection.prototype, 'onDrop').mockImplementation(function (this: Connection, fn: (e: Error) => void) {
      const off = onDrop.call(this, fn);
      step(this, process.env.CUT_DEBUG ? (new Error().stack?.split('\n').filter((l) => !l.includes('node_modules'))[3] ?? '') : '');
      return off;
    }),
    jest.spyOn(RemoteShell.prototype, 'run').mockImplementation(function (this: RemoteShell, script: string) {
      const p = run.call(this, script);
      const conn = shellConn.get(this);
      if (conn) step(conn, process.env.CUT_DEBUG ? `shell: ${script.slice(0, 600)}` : '');
      return p;
    }),
  ];
  return { steps: () => n, cut: () => cut, restore: () => spies.forEach((s) => s.mockRestore()) };
}

/** Every file's content under `root` (the runner's own names left out). */
function contents(root: string): Set<string> {
  const snap = snapshot(root, (rel) => path.posix.basename(rel).startsWith('.kubedev-'));
  return new Set(Object.keys(snap).filter((rel) => snap[rel].startsWith('file')).map((rel) => fs.readFileSync(path.join(root, rel), 'latin1')));
}

const big = (tag: string): string => tag.padEnd(BIG, '.');

/** The errors that ended `s` (a session that stopped never converges: the failure names why). */
function endings(s: { on(event: 'error', fn: (e: Error) => void): unknown }): string[] {
  const errors: string[] = [];
  s.on('error', (e) => errors.push(`the session ended: ${e.message}`));
  return errors;
}

/** An agreed start, then changes on both sides: every kind of work a pass does. Returns the versions written. */
async function scene(a: Arena, agreed: () => Promise<void>, armed = (): unknown => undefined): Promise<string[]> {
  writeTree(a.local, { 'small.txt': 's0', 'big.bin': big('b0'), 'both.txt': 'both0', 'gone-local.txt': 'gl', 'gone-remote.txt': 'gr', 'r.txt': 'r0', 'keep/k.txt': 'k' });
  await agreed();
  armed();
  const local = ['laptop small', big('laptop big'), 'laptop new', 'laptop both'];
  const remoteSide = ['container r', 'container new', big('container big new'), 'container both'];
  writeTree(a.local, { 'small.txt': local[0], 'big.bin': local[1], 'new/l.txt': local[2], 'both.txt': local[3] });
  fs.rmSync(path.join(a.local, 'gone-local.txt'));
  remote(sshd(), a, `printf '${remoteSide[0]}' > r.txt && mkdir -p rdir && printf '${remoteSide[1]}' > rdir/r2.txt && printf '${remoteSide[2]}' > rbig.bin && printf '${remoteSide[3]}' > both.txt && rm gone-remote.txt`);
  return [...local, ...remoteSide];
}

/** The scene's end: each one-sided change on both sides, both versions of the conflict kept, nothing lost. */
function checkConverged(a: Arena, written: string[], cutAt?: number): void {
  expect([cutAt, a.differences((rel) => isCopy(rel) || rel === 'both.txt')]).toEqual([cutAt, []]);
  const all = new Set([...contents(a.local), ...contents(a.remote)]);
  expect(written.filter((w) => !all.has(w)).map((w) => w.slice(0, 20))).toEqual([]);
  expect(fs.existsSync(path.join(a.local, 'gone-local.txt')) || fs.existsSync(path.join(a.local, 'gone-remote.txt'))).toBe(false);
}

/**
 * Runs `once(cutAt)` with no cut first (its step count bounds the sweep), then cutting at each step in
 * turn. A run may take fewer steps than the dry run (the watchers batch changes differently): a cut
 * that never came is no failure, but most must have come.
 */
async function sweep(once: (cutAt?: number) => Promise<ReturnType<typeof stepCounter>>, least: number): Promise<void> {
  const total = (await once()).steps();
  expect(total).toBeGreaterThanOrEqual(least);
  const from = Number(process.env.CUT_FROM ?? 1);
  let cuts = 0;
  for (let cutAt = from; cutAt <= total; cutAt++) if ((await once(cutAt)).cut()) cuts++;
  expect(cuts).toBeGreaterThanOrEqual((total - from + 1) / 2);
}

test('--once: the connection cut at each step of a pass in turn fails the run as a lost connection; the next run converges, nothing lost', async () => {
  await sweep(async (cutAt) => {
    const a = arena();
    const written = await scene(a, () => pass(sshd(), a).then(() => undefined));
    const c = stepCounter(cutAt);
    let failed: unknown;
    try {
      await pass(sshd(), a);
    } catch (e) {
      failed = e;
    } finally {
      c.restore();
    }
    // A cut while connecting is retried (the run then succeeds); one later fails the run.
    if (failed !== undefined) expect([cutAt, failed instanceof ConnectionError ? 'lost connection' : String(failed)]).toEqual([cutAt, 'lost connection']);
    await new Promise((r) => setTimeout(r, 30)); // a rejection left unhandled is reported by now
    await pass(sshd(), a);
    checkConverged(a, written, cutAt);
    return c;
  }, 10);
});

test('watching: the connection cut at each step of the passes changes cause, in turn; the session reconnects and converges, nothing lost, no error', async () => {
  await sweep(async (cutAt) => {
    const a = arena();
    const s = twoWay(sshd(), a, { maxBackoffMs: 100, recheckMs: 1_000 });
    const errors = endings(s);
    let reconnects = 0;
    s.on('reconnecting', () => reconnects++);
    if (process.env.CUT_DEBUG) for (const ev of ['reconnecting', 'connected', 'synced', 'pulled']) s.on(ev as 'synced', (x: unknown) => console.log(Date.now() % 100000, ev, JSON.stringify(x).slice(0, 300)));
    let c: ReturnType<typeof stepCounter> | undefined;
    try {
      // The steps counted are those of the passes the changes cause (the session's start is not cut).
      const written = await scene(a, () => s.start().then(() => undefined), () => (c = stepCounter(cutAt)));
      // The end state: the trees agree and the conflict's copy is kept (the pass that fetches it runs
      // after the pulls: equal trees alone may be seen while a copy's temporary file is on its way).
      const copyKept = (): string[] => (fs.readdirSync(a.local).some((n) => n.startsWith('both.conflict-remote-')) ? [] : ["both.txt's conflict copy not kept yet"]);
      await eventually(() => [...errors, ...copyKept(), ...a.differences((rel) => isCopy(rel) || rel === 'both.txt')], 15_000, `convergence after a cut at step ${cutAt}`);
      c?.restore();
      // The follow-up pass after a reconnect removes what the old connection's server processes wrote late.
      if (reconnects > 0) await eventually(() => (s.rechecks > 0 ? [] : ['no follow-up pass yet']), 15_000, `the follow-up pass after a cut at step ${cutAt}`);
      await new Promise((r) => setTimeout(r, 30));
      checkConverged(a, written, cutAt);
      expect(errors).toEqual([]);
    } finally {
      c?.restore();
      await s.close();
    }
    return c as ReturnType<typeof stepCounter>;
  }, 5);
});

test('one-way, watching: the connection cut at each step of the passes changes cause, in turn; the mirror reconnects and converges, nothing left behind, no error', async () => {
  await sweep(async (cutAt) => {
    const a = arena();
    writeTree(a.local, { 'small.txt': 's0', 'big.bin': big('b0'), 'gone.txt': 'g', 'keep/k.txt': 'k', 'd/e/f.txt': 'f' });
    const s = a.session({ maxBackoffMs: 100, recheckMs: 1_000 });
    const errors = endings(s);
    let reconnects = 0;
    s.on('reconnecting', () => reconnects++);
    let c: ReturnType<typeof stepCounter> | undefined;
    try {
      await s.start();
      c = stepCounter(cutAt);
      // Every kind of change the mirror sends: small and large files, a new folder, a delete, a folder removed, a mode.
      writeTree(a.local, { 'small.txt': `laptop small ${cutAt ?? 0}`, 'big.bin': big(`laptop big ${cutAt ?? 0}`), 'new/l.txt': 'new' });
      fs.rmSync(path.join(a.local, 'gone.txt'));
      fs.rmSync(path.join(a.local, 'd'), { recursive: true });
      fs.chmodSync(path.join(a.local, 'keep/k.txt'), 0o600);
      await eventually(() => [...errors, ...a.differences()], 15_000, `convergence after a cut at step ${cutAt}`);
      c.restore();
      // After a reconnect, the old connection's sftp-server can still finish a write it read before the
      // cut once the new pass has listed the remote: the follow-up pass removes its temporary file.
      if (reconnects > 0) await eventually(() => (s.rechecks > 0 ? [] : ['no follow-up pass yet']), 15_000, `the follow-up pass after a cut at step ${cutAt}`);
      await new Promise((r) => setTimeout(r, 30));
      expect([cutAt, a.differences()]).toEqual([cutAt, []]);
      expect(errors).toEqual([]);
    } finally {
      c?.restore();
      await s.close();
    }
    return c as ReturnType<typeof stepCounter>;
  }, 4);
});
