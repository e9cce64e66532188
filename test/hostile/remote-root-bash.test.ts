/**
 * The remote root's place (remote-place.ts) under a bash login shell. bash keeps a leading `//` in
 * `$PWD` after `cd -P` through a link whose target starts with `//` (`ln -s "$PREFIX/ws-real"` with
 * PREFIX=/); dash, busybox and SFTP's realpath give one `/`, and a session's scripts run under both (the
 * first listing under `sh -s`, later ones, the deleter and tar under the login shell). Places are
 * compared with one leading `//` made `/`: before, such a root halted every session at its first
 * bulk write or delete. Real sshd as a non-root user whose login shell is bash.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { arena, Arena, startSidecarSshd } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { eventually, nextEvent, writeTree } from '../support/trees';

jest.setTimeout(60_000);

let sshd: Sshd;
let a: Arena;
beforeAll(async () => {
  sshd = await startSidecarSshd('kubedev-bashlogin');
  execFileSync('usermod', ['-s', '/bin/bash', sshd.user]);
});
afterAll(async () => {
  await sshd?.close();
});
beforeEach(() => {
  a = arena(sshd);
});
afterEach(async () => {
  const changes = a.sentinelChanges();
  await a.close();
  expect(changes).toEqual([]);
});

/** The root made a symlink to `//<base>/ws-real`. */
function doubleSlashRoot(): string {
  const real = path.join(a.base, 'ws-real');
  fs.mkdirSync(real);
  fs.chownSync(real, sshd.uid, sshd.gid);
  fs.symlinkSync(`/${real}`, a.remote);
  return real;
}

test.each(['sftp', 'tar', 'helper'] as const)('method %s: a root behind a link to //folder mirrors, saves and deletes without a halt', async (method) => {
  const real = doubleSlashRoot();
  writeTree(a.local, { 'a.txt': 'a', 'sub/b.txt': 'b', 'c.txt': 'c' });
  const s = a.session({ method });
  const errors: Error[] = [];
  s.on('error', (e) => errors.push(e));
  await s.start();
  fs.writeFileSync(path.join(a.local, 'a.txt'), 'saved');
  fs.rmSync(path.join(a.local, 'c.txt'));
  await eventually(() => (errors.length > 0 ? [errors[0].message] : a.differences()), 20_000, method);
  expect(fs.readFileSync(path.join(real, 'a.txt'), 'utf8')).toBe('saved');
  await s.close();
  expect(errors).toEqual([]);
});

test.each(['sftp', 'tar', 'helper'] as const)('method %s: that root replaced by a symlink to another folder halts the session, nothing written there', async (method) => {
  doubleSlashRoot();
  writeTree(a.local, { 'keep.txt': 'mine', 'sub/deep.txt': 'mine too' });
  const s = a.session({ method });
  const failed = nextEvent<Error>(s, 'error', 30_000);
  await s.start();
  fs.renameSync(a.remote, `${a.remote}-old`);
  fs.symlinkSync(path.join(a.base, 'sentinel'), a.remote);
  fs.writeFileSync(path.join(a.local, 'keep.txt'), 'changed after the swap');
  fs.rmSync(path.join(a.local, 'sub', 'deep.txt'));
  expect((await failed).message).toMatch(/now leads (to '.*\/sentinel'|elsewhere) on the server, not to '\/[^/].*\/ws-real'/);
});
