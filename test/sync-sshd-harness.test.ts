/** The shared sshd harness (test/support/sshd.ts): a real sshd we can log into with the keys it made. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Sshd, startSshd } from './support/sshd';

function sshRun(s: Sshd, command: string): string {
  return execFileSync('ssh', [
    '-p', String(s.port), '-i', s.identity, '-o', `UserKnownHostsFile=${s.knownHosts}`, '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes', '-o', 'GlobalKnownHostsFile=/dev/null', `${s.user}@127.0.0.1`, command,
  ], { encoding: 'utf8', timeout: 15_000 });
}

describe('sshd harness', () => {
  let sshd: Sshd | undefined;
  afterEach(async () => {
    const dir = sshd?.paths.dir;
    await sshd?.close();
    sshd = undefined;
    if (dir) expect(fs.existsSync(dir)).toBe(false);
  });

  test('runs as the current user and checks the host key with OpenSSH known_hosts', async () => {
    sshd = await startSshd();
    expect(sshRun(sshd, 'id -un').trim()).toBe(sshd.user);
    expect(sshd.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const keygen = execFileSync('ssh-keygen', ['-lf', sshd.paths.hostKeyPub], { encoding: 'utf8' });
    expect(keygen).toContain(sshd.hostKeyFingerprint);
  });

  test('runs sshd as a non-root user, as the sidecar does', async () => {
    sshd = await startSshd({ user: 'kubedev-test', asUser: true });
    expect(sshRun(sshd, 'id -un').trim()).toBe('kubedev-test');
    expect(sshd.uid).not.toBe(0);
  });

  test('killSessions drops a live connection', async () => {
    sshd = await startSshd();
    const s = sshd;
    const { spawn } = await import('node:child_process');
    const p = spawn('ssh', ['-p', String(s.port), '-i', s.identity, '-o', `UserKnownHostsFile=${s.knownHosts}`, '-o', 'BatchMode=yes', `${s.user}@127.0.0.1`, 'sleep 30']);
    const code = new Promise<number | null>((r) => p.once('exit', r));
    const deadline = Date.now() + 10_000;
    while (s.sessionPids().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    expect(s.killSessions()).toBeGreaterThan(0);
    expect(await code).not.toBe(0);
  });
});
