/**
 * The `kubedev` command run as a non-root developer (setpriv), where root would read what the developer
 * cannot (issue 8, rows 4, 8, 12): unreadable files and folders are warnings that keep their remote
 * copies; a `.kubedevignore` that is a folder is a configuration error; a login shell that prints at
 * start cannot corrupt the listing.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../support/cli';
import { Arena, arena, localUser, LocalUser, runCliAs, startSidecarSshd, syncArgs, useArena } from '../support/hostile';
import { Sshd } from '../support/sshd';
import { writeTree } from '../support/trees';

jest.setTimeout(90_000);

const h = useArena();
let dev: LocalUser;
let sshd: Sshd;
let a: Arena;
beforeAll(() => {
  dev = localUser();
});
beforeEach(() => {
  sshd = h.sshd();
  a = h.arena();
});

function events(stdout: string): { event: string; message?: string; files?: number; deleted?: number }[] {
  return stdout.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

for (const [method, count] of [['sftp', 3], ['tar', 450]] as const) {
  test(`row 4: a file and a folder the developer cannot read keep their remote copies; warnings name them (${method})`, async () => {
    writeTree(a.local, Object.fromEntries(Array.from({ length: count }, (_, i) => [`src/f${i}.txt`, `file ${i}`])));
    writeTree(a.local, { 'secret.txt': 'root only, new content', 'private/inside.txt': 'root only' });
    execFileSync('chown', ['-R', `${dev.uid}:${dev.gid}`, a.local]);
    execFileSync('chown', ['-R', 'root:root', path.join(a.local, 'secret.txt'), path.join(a.local, 'private')]);
    fs.chmodSync(path.join(a.local, 'secret.txt'), 0o600);
    fs.chmodSync(path.join(a.local, 'private'), 0o700);
    // The remote holds older copies of both: they must stay exactly as they are.
    writeTree(a.remote, { 'secret.txt': 'the old remote copy', 'private/inside.txt': 'old inside', 'private/remote-only.txt': 'kept' });
    execFileSync('chown', ['-R', `${sshd.uid}:${sshd.gid}`, a.remote]);
    const r = await runCliAs(dev, [...syncArgs(a, sshd, dev), '--once', '--json']);
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    expect(r.code).toBe(0);
    const ev = events(r.stdout);
    const warnings = ev.filter((e) => e.event === 'warning').map((e) => e.message);
    expect(warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^'secret.txt' cannot be read \(EACCES\); it is not sent and its remote copy is left as it is/), expect.stringMatching(/^'private' cannot be listed \(EACCES\); it is skipped and its remote copy left as it is/)]));
    expect(fs.readFileSync(path.join(a.remote, 'secret.txt'), 'utf8')).toBe('the old remote copy');
    expect(fs.readFileSync(path.join(a.remote, 'private/remote-only.txt'), 'utf8')).toBe('kept');
    expect(fs.readFileSync(path.join(a.remote, `src/f${count - 1}.txt`), 'utf8')).toBe(`file ${count - 1}`);
    const synced = ev.find((e) => e.event === 'synced');
    expect(synced?.deleted).toBe(0);
    expect(synced?.files).toBe(count + 1); // src/ and its files; not secret.txt
  });
}

test('row 8: a .kubedevignore that is a folder: exit 2 naming it, nothing written', async () => {
  writeTree(a.local, { 'a.txt': 'a', '.kubedevignore/x': 'oops' });
  const r = await runCli([...syncArgs(a, sshd), '--once']);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`kubedev: ignore file '${path.join(a.local, '.kubedevignore')}' is a folder, not a file. Make it a readable text file of gitignore patterns, or remove it\n`);
  expect(fs.existsSync(a.remote)).toBe(false);
});

describe('row 12: a login shell that prints at start', () => {
  let chatty: Sshd;
  beforeAll(async () => {
    chatty = await startSidecarSshd('kubedev-chatty');
    execFileSync('usermod', ['-s', '/bin/bash', 'kubedev-chatty']);
    const home = `/home/kubedev-chatty`;
    fs.writeFileSync(path.join(home, '.bashrc'), 'echo "Welcome to the sidecar"\nprintf "f\\0999\\0001\\0644\\0junk\\0\\0"\n');
  });
  afterAll(async () => {
    await chatty?.close();
  });

  test('the listing is read after its marker: mirrored, and a second pass sends nothing', async () => {
    const c = arena(chatty);
    try {
      writeTree(c.local, { 'a.txt': 'a', 'dir/b.txt': 'b' });
      const first = await runCli([...syncArgs(c, chatty), '--once', '--json']);
      expect(first.code).toBe(0);
      expect(c.differences()).toEqual([]);
      const second = await runCli([...syncArgs(c, chatty), '--once', '--json']);
      expect(second.code).toBe(0);
      const synced = events(second.stdout).find((e) => e.event === 'synced');
      expect([synced?.files, synced?.deleted]).toEqual([0, 0]);
      expect(c.sentinelChanges()).toEqual([]);
    } finally {
      await c.close();
    }
  });
});
