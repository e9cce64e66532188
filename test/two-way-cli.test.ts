/**
 * The two-way commands as a user runs them: `kubedev sync --mode two-way --once --json` (pulled and
 * conflict events, the state under XDG_STATE_HOME) and `kubedev conflicts` listing and resolving.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from './support/cli';
import { syncArgs, useArena } from './support/hostile';
import { tempDir, writeTree } from './support/trees';
import { remote } from './support/two-way';

jest.setTimeout(60_000);
const { sshd, arena } = useArena();

function events(stdout: string): Record<string, unknown>[] {
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('sync --mode two-way, then conflicts: listed, --take remote and --take local resolve them', async () => {
  const a = arena();
  const state = tempDir('xdg-state');
  const env = { XDG_STATE_HOME: state };
  const flags = syncArgs(a, sshd()).slice(1); // without 'sync'
  const sync = (): ReturnType<typeof runCli> => runCli(['sync', ...flags, '--mode', 'two-way', '--once', '--json'], 30_000, { env });
  writeTree(a.local, { 'a.txt': 'a1', 'b.txt': 'b1' });
  remote(sshd(), a, 'printf made-in-container > lock.json');
  const first = await sync();
  expect(first.code).toBe(0);
  expect(events(first.stdout).map((e) => e.event)).toEqual(['pulled', 'synced']);
  expect(fs.readFileSync(path.join(a.local, 'lock.json'), 'utf8')).toBe('made-in-container');
  expect(fs.readdirSync(path.join(state, 'kubedev', 'two-way')).sort()).toEqual([expect.stringMatching(/^[0-9a-f]{32}\.json$/), expect.stringMatching(/^[0-9a-f]{32}\.json\.journal$/)]);

  fs.writeFileSync(path.join(a.local, 'a.txt'), 'a local');
  fs.writeFileSync(path.join(a.local, 'b.txt'), 'b local');
  remote(sshd(), a, 'printf "a remote" > a.txt && printf "b remote" > b.txt');
  const second = await sync();
  expect(second.code).toBe(0);
  const conflicts = events(second.stdout).filter((e) => e.event === 'conflict');
  expect(conflicts.map((c) => c.path).sort()).toEqual(['a.txt', 'b.txt']);
  expect(second.stderr).toContain("kubedev: conflict: 'a.txt' changed on both sides; the local file is unchanged, the remote version is in");

  const list = await runCli(['conflicts', ...flags, '--json'], 30_000, { env });
  expect(list.code).toBe(0);
  expect(events(list.stdout).map((e) => e.path)).toEqual(['a.txt', 'b.txt']);

  const unknown = await runCli(['conflicts', ...flags, '--take', 'local', 'nope.txt'], 30_000, { env });
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toContain("kubedev: 'nope.txt' is not in conflict. List the conflicts with 'kubedev conflicts' and pass one of their paths");

  const takeRemote = await runCli(['conflicts', ...flags, '--take', 'remote', 'a.txt'], 30_000, { env });
  expect(takeRemote.stderr).toContain("resolved 'a.txt': took the remote version");
  expect(takeRemote.code).toBe(0);
  expect(fs.readFileSync(path.join(a.local, 'a.txt'), 'utf8')).toBe('a remote');
  const takeLocal = await runCli(['conflicts', ...flags, '--take', 'local', path.join(a.local, 'b.txt')], 30_000, { env });
  expect(takeLocal.code).toBe(0);
  expect(fs.readFileSync(path.join(a.remote, 'b.txt'), 'utf8')).toBe('b local');
  // No conflict copies left, both trees equal, nothing listed.
  expect(fs.readdirSync(a.local).filter((n) => n.includes('conflict-remote'))).toEqual([]);
  expect(a.differences()).toEqual([]);
  const none = await runCli(['conflicts', ...flags], 30_000, { env });
  expect(none.stderr).toContain('kubedev: no conflicts');
});
