/**
 * The sidecar's sshd_config, as lib renders it, checked by the real OpenSSH sshd (Debian's
 * openssh-server): `sshd -t` accepts it, and a running sshd accepts the key and refuses a password.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Client } from 'ssh2';
import { ValidationError, renderSshdConfig } from '../lib';
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

describe('renderSshdConfig checks its own inputs: nothing it is given can add a line', () => {
  const ok = { port: 2222, user: 'dev' };
  const refused = (options: object): string[] => {
    try {
      renderSshdConfig(options as never);
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      return [...(e as ValidationError).problems];
    }
    return [];
  };

  test('a user with a line break, a space, or root', () => {
    const fix = "Use lowercase letters, digits, '_' and '-', e.g. 'dev'.";
    expect(refused({ ...ok, user: 'dev\nPermitRootLogin yes' })).toEqual([`renderSshdConfig 'user': user is not a non-root POSIX user name (got 'dev\nPermitRootLogin yes'). ${fix}`]);
    expect(refused({ ...ok, user: 'dev root' })).toEqual([`renderSshdConfig 'user': user is not a non-root POSIX user name (got 'dev root'). ${fix}`]);
    expect(refused({ ...ok, user: 'root' })).toEqual([`renderSshdConfig 'user': user is not a non-root POSIX user name (got 'root'). ${fix}`]);
    expect(refused({ ...ok, user: '*' })).toEqual([`renderSshdConfig 'user': user is not a non-root POSIX user name (got '*'). ${fix}`]);
  });

  test('ports that are not one integer from 1 to 65535', () => {
    for (const port of [0, 65536, 22.5, '2222\nPort 22', NaN]) {
      expect(refused({ ...ok, port })).toEqual([
        `renderSshdConfig 'port': port is not a TCP port number from 1 to 65535 (got ${typeof port === 'string' ? `'${port}'` : JSON.stringify(port)}). Pass an integer port, e.g. 2222.`,
      ]);
    }
  });

  test('paths and the listen address: one token each, every problem at once', () => {
    const fix = "Use an absolute path of letters, digits and '._+@:=,-' without '..', e.g. '/etc/kubedev/host-keys/key'.";
    expect(refused({
      ...ok,
      hostKey: '/k\nHostKey /etc/ssh/ssh_host_rsa_key',
      authorizedKeysFile: '/a b',
      pidFile: 'relative/pid',
      listenAddress: '0.0.0.0\nPermitRootLogin yes',
    })).toEqual([
      `renderSshdConfig 'hostKey': hostKey is not a plain absolute path (got '/k\nHostKey /etc/ssh/ssh_host_rsa_key'). ${fix}`,
      `renderSshdConfig 'authorizedKeysFile': authorizedKeysFile is not a plain absolute path (got '/a b'). ${fix}`,
      `renderSshdConfig 'pidFile': pidFile is not a plain absolute path (got 'relative/pid'). ${fix}`,
      "renderSshdConfig 'listenAddress': listenAddress is not an IP address or host name (got '0.0.0.0\nPermitRootLogin yes'). Use an address such as '0.0.0.0' or '127.0.0.1'.",
    ]);
    expect(refused({ ...ok, authorizedKeysFile: '/etc/%u/keys' })).toHaveLength(1); // sshd expands %-tokens
    expect(refused({ ...ok, hostKey: '/etc/../root/key' })).toHaveLength(1);
  });

  test('what the sidecar and the test harness pass is accepted, line for line', () => {
    const text = renderSshdConfig({ port: 2222, user: 'kubedev-test', listenAddress: '::1', hostKey: '/dev/shm/kubedev-x/host_key', pidFile: '/tmp/kubedev-sshd.pid' });
    expect(text.split('\n')).toContain('AllowUsers kubedev-test');
    expect(text.split('\n')).toContain('ListenAddress ::1');
  });
});
