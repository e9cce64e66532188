/**
 * A watching `kubedev sync`, run as a non-root developer (root reads every folder), while folders are
 * made unreadable and readable again, with each watch backend this machine runs: it goes on (no
 * error, no exit), keeps the remote copies of what it cannot read and mirrors the rest. Node's
 * recursive watcher reports a folder it cannot list as an error, which once ended the session
 * ("watching ... failed: EACCES").
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startCli } from '../support/cli';
import { localUser, LocalUser, syncArgs, useArena } from '../support/hostile';
import { eventually, writeTree } from '../support/trees';

jest.setTimeout(90_000);

const h = useArena();
let dev: LocalUser;
beforeAll(() => {
  dev = localUser();
});

interface Event {
  event: string;
  message?: string;
}

function events(stdout: string): Event[] {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Event);
}

for (const backend of ['recursive', 'per-folder', 'parcel', 'poll'] as const) {
  test(`--watch ${backend}: folders made unreadable while watching keep their remote copies, the rest is mirrored, the session goes on`, async () => {
    const a = h.arena();
    writeTree(a.local, { 'a/f.txt': 'a', 'b/g.txt': 'b', 'c/h.txt': 'c' });
    execFileSync('chown', ['-R', `${dev.uid}:${dev.gid}`, a.local]);
    const run = startCli([...syncArgs(a, h.sshd(), dev), '--json', '--watch', backend], { env: { HOME: `/home/${dev.name}` }, as: dev });
    const remote = (rel: string): string | undefined => (fs.existsSync(path.join(a.remote, rel)) ? fs.readFileSync(path.join(a.remote, rel), 'utf8') : undefined);
    const alive = (): string[] => (run.child.exitCode === null ? [] : [`exited ${run.child.exitCode}: ${run.stderr()}`]);
    try {
      await eventually(() => [...alive(), ...(events(run.stdout()).some((e) => e.event === 'ready') ? [] : ['not ready'])], 30_000, 'ready');
      fs.chmodSync(path.join(a.local, 'a'), 0o000);
      fs.writeFileSync(path.join(a.local, 'c', 'one.txt'), 'one');
      await eventually(() => [...alive(), ...(remote('c/one.txt') === 'one' ? [] : ['c/one.txt not there'])], 20_000, 'c/one.txt mirrored');
      fs.chmodSync(path.join(a.local, 'b'), 0o311); // enterable, not listable
      fs.writeFileSync(path.join(a.local, 'c', 'two.txt'), 'two');
      await eventually(() => [...alive(), ...(remote('c/two.txt') === 'two' ? [] : ['c/two.txt not there'])], 20_000, 'c/two.txt mirrored');
      await new Promise((r) => setTimeout(r, 1_500)); // the rescans the errors asked for
      expect(alive()).toEqual([]);
      expect(remote('a/f.txt')).toBe('a'); // kept: could not be read
      expect(remote('b/g.txt')).toBe('b');
      const ev = events(run.stdout());
      expect(ev.filter((e) => e.event === 'error')).toEqual([]);
      expect(ev.some((e) => e.event === 'warning' && /^'a' cannot be listed \(EACCES\)/.test(e.message ?? ''))).toBe(true);
      // Each rescan tries to watch them again: the warning that it cannot is told once a folder.
      expect(ev.filter((e) => e.event === 'warning' && /^cannot watch '.*\/a' /.test(e.message ?? '')).length).toBeLessThanOrEqual(1);
      expect(run.stderr()).not.toMatch(/at .*\.(ts|js):\d+/); // no stack trace
    } finally {
      for (const d of ['a', 'b']) fs.chmodSync(path.join(a.local, d), 0o755);
      run.child.kill('SIGTERM');
      await run.exit(20_000).catch(() => undefined);
    }
    expect(run.child.exitCode).toBe(0);
  });
}

test('per-folder: a folder it cannot watch is told once, however many rescans try it again; once watched again, a new refusal is told again', () => {
  const a = h.arena();
  writeTree(a.local, { 'p/f.txt': 'p' });
  execFileSync('chown', ['-R', `${dev.uid}:${dev.gid}`, a.local]);
  fs.chmodSync(path.join(a.local, 'p'), 0o000);
  // Run as the developer (root may watch any folder): add('p') as three rescans would, then again once readable.
  const script = `
    const fs = require('node:fs');
    const { TreeWatcher } = require(${JSON.stringify(path.resolve(__dirname, '../../sync/engine/watch/per-folder.ts'))});
    const w = new TreeWatcher(${JSON.stringify(a.local)});
    const told = [];
    w.on('warning', (m) => told.push(m));
    w.on('error', (e) => told.push('error: ' + e.message));
    for (let i = 0; i < 3; i++) w.add('p');
    const first = told.length;
    fs.chmodSync(${JSON.stringify(path.join(a.local, 'p'))}, 0o755);
    w.add('p');
    const watched = w.watches('p');
    w.removeTree('p');
    fs.chmodSync(${JSON.stringify(path.join(a.local, 'p'))}, 0o000);
    w.add('p');
    console.log(JSON.stringify({ first, watched, told }));
    void w.close();
  `;
  const r = spawnSync('setpriv', [`--reuid=${dev.uid}`, `--regid=${dev.gid}`, '--clear-groups', '--', process.execPath, '-r', require.resolve('tsx/cjs'), '-e', script], { encoding: 'utf8' });
  fs.chmodSync(path.join(a.local, 'p'), 0o755);
  expect(r.stderr).toBe('');
  const out = JSON.parse(r.stdout) as { first: number; watched: boolean; told: string[] };
  expect(out.first).toBe(1);
  expect(out.watched).toBe(true);
  expect(out.told).toHaveLength(2);
  for (const m of out.told) expect(m).toMatch(/^cannot watch '.*\/p' \(EACCES\)/);
});
