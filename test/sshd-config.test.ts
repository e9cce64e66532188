/**
 * The sidecar's sshd_config, as lib renders it, checked by the real OpenSSH sshd (Debian's
 * openssh-server): `sshd -t` accepts it, and a running sshd accepts the key and refuses a password.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Client } from 'ssh2';
import { renderSshdConfig } from '../lib';
import { SSHD_BINARY, Sshd, SshdPaths, startSshd } from './support/sshd';

const USER = 'kubedev-test';
const PASSWORD = 'kubedev-test-password';

const libConfig = (p: SshdPaths): string =>
  renderSshdConfig({
    port: p.port, user: p.user, listenAddress: '127.0.0.1', hostKey: p.hostKey, authorizedKeysFile: p.authorizedKeys, pidFile: p.pidFile,
  });

/** Tries one login; resolves 'ok' or the client's error message. */
function login(sshd: Sshd, auth: { privateKey?: Buffer; password?: string }): Promise<string> {
  return new Promise((resolve) => {
    const c = new Client();
    const timer = setTimeout(() => {
      c.end();
      resolve('timeout');
    }, 10_000);
    c.on('ready', () => {
      clearTimeout(timer);
      c.end();
      resolve('ok');
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      resolve(e.message);
    });
    c.connect({ host: '127.0.0.1', port: sshd.port, username: sshd.user, ...auth, tryKeyboard: true, readyTimeout: 10_000 });
  });
}

describe('the sidecar sshd_config', () => {
  let sshd: Sshd | undefined;
  afterEach(async () => {
    await sshd?.close();
    sshd = undefined;
  });

  beforeAll(() => {
    // A password the server must refuse (set as root, as the tests run here).
    execFileSync('sh', ['-c', `id -u ${USER} >/dev/null 2>&1 || useradd -m -s /bin/sh ${USER}; echo '${USER}:${PASSWORD}' | chpasswd`]);
  });

  test('passes `sshd -t`', () => {
    const dir = fs.mkdtempSync('/tmp/kubedev-sshd-t-');
    const key = `${dir}/host`;
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    fs.writeFileSync(`${dir}/sshd_config`, renderSshdConfig({ port: 2222, user: 'dev', hostKey: key, pidFile: `${dir}/pid` }));
    expect(execFileSync(SSHD_BINARY, ['-t', '-f', `${dir}/sshd_config`], { encoding: 'utf8' })).toBe('');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('sshd running as root accepts the key and refuses the password', async () => {
    sshd = await startSshd({ user: USER, config: libConfig });
    expect(await login(sshd, { privateKey: fs.readFileSync(sshd.identity) })).toBe('ok');
    expect(await login(sshd, { password: PASSWORD })).toBe('All configured authentication methods failed');
  });

  test('the same server with passwords allowed lets the password in (the check above can fail)', async () => {
    sshd = await startSshd({ user: USER, config: libConfig, overrides: ['PasswordAuthentication yes', 'AuthenticationMethods any'] });
    expect(await login(sshd, { password: PASSWORD })).toBe('ok');
  });

  test('sshd running as the non-root user, as in the sidecar, accepts the key', async () => {
    sshd = await startSshd({ user: USER, asUser: true, config: libConfig });
    expect(await login(sshd, { privateKey: fs.readFileSync(sshd.identity) })).toBe('ok');
    expect(await login(sshd, { password: PASSWORD })).toBe('All configured authentication methods failed');
  });

  test('root may not log in, even with the right key', async () => {
    sshd = await startSshd({ user: USER, config: (p) => libConfig(p).replace(`AllowUsers ${USER}`, 'AllowUsers root') });
    const c = await new Promise<string>((resolve) => {
      const client = new Client();
      client.on('ready', () => {
        client.end();
        resolve('ok');
      });
      client.on('error', (e) => resolve(e.message));
      client.connect({ host: '127.0.0.1', port: sshd!.port, username: 'root', privateKey: fs.readFileSync(sshd!.identity), readyTimeout: 10_000 });
    });
    expect(c).toBe('All configured authentication methods failed');
  });
});
