/**
 * A real OpenSSH `sshd` on 127.0.0.1 for tests and benchmarks: a free port, a throwaway ed25519 host
 * key and user key, a temporary authorized_keys and an OpenSSH-format known_hosts, and one idempotent
 * `close()`. Nothing is mocked: the sync runner talks to Debian's sshd and sftp-server.
 *
 * Two ways to run it:
 * - default: sshd runs as the current user (root in CI) and accepts that user with a key
 *   (`PermitRootLogin prohibit-password`);
 * - `user: 'kubedev-test'` (any non-root name): when the tests run as root the user is created if
 *   absent (useradd), and with `asUser: true` sshd itself runs as that user, the way the sidecar
 *   runs it (uid 1000, no privilege separation). A config that forbids root (the DevEnvironment's
 *   sshd_config) needs one of these.
 *
 * `config(paths)` returns the sshd_config text to use instead of the default; the harness writes every
 * file the config may name and passes their paths in.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where sshd is expected (Debian's openssh-server). */
export const SSHD_BINARY = '/usr/sbin/sshd';
const INSTALL_HINT = "install it with 'apt-get install -y openssh-server'";

export interface SshdPaths {
  /** The harness folder (mode 0755, owned by the login user when not root). */
  readonly dir: string;
  readonly port: number;
  /** Address sshd listens on: always 127.0.0.1. */
  readonly listenAddress: string;
  readonly hostKey: string;
  readonly hostKeyPub: string;
  /** The authorized_keys file holding the user key's public half. */
  readonly authorizedKeys: string;
  /** Folder holding authorized_keys (for configs that name a folder). */
  readonly authorizedKeysDir: string;
  readonly pidFile: string;
  /** The login user. */
  readonly user: string;
  /** The sftp-server binary. */
  readonly sftpServer: string;
}

export interface SshdOptions {
  /** Login user. @default the current user */
  readonly user?: string;
  /** Run the sshd process itself as `user` (needs root to switch). @default false */
  readonly asUser?: boolean;
  /** sshd_config text; @default a minimal key-only config (see defaultSshdConfig). */
  readonly config?: (paths: SshdPaths) => string;
  /** Extra lines prepended to the config (sshd keeps the first value it reads for a keyword). */
  readonly overrides?: readonly string[];
}

export interface Sshd {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** Private user key (OpenSSH format) accepted by this server. */
  readonly identity: string;
  /** known_hosts file with this server's host key as `[127.0.0.1]:port ssh-ed25519 ...`. */
  readonly knownHosts: string;
  /** The host key's public line (`ssh-ed25519 AAAA...`). */
  readonly hostPublicKey: string;
  /** `SHA256:...` fingerprint of the host key. */
  readonly hostKeyFingerprint: string;
  readonly paths: SshdPaths;
  /** Process id of the listening sshd. */
  readonly pid: number;
  /** Everything sshd printed on stderr so far (-e). */
  log(): string;
  /** Pids of sshd's per-connection children (the processes serving sessions). */
  sessionPids(): number[];
  /** SIGKILLs every per-connection child: the connection drops as on a network failure. */
  killSessions(): number;
  /** Sends `signal` to every per-connection process and all below it (SIGSTOP: a server that hangs); returns the connections. */
  signalSessions(signal: NodeJS.Signals): number;
  close(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` now. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The harness's default sshd_config: public keys only, the one user, SFTP, nothing else. */
export function defaultSshdConfig(p: SshdPaths): string {
  return [
    `Port ${p.port}`,
    `ListenAddress ${p.listenAddress}`,
    `HostKey ${p.hostKey}`,
    `PidFile ${p.pidFile}`,
    `AuthorizedKeysFile ${p.authorizedKeys}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    `AllowUsers ${p.user}`,
    'UsePAM no',
    'StrictModes no',
    'PrintMotd no',
    'PermitUserEnvironment no',
    'AllowTcpForwarding no',
    'X11Forwarding no',
    'LogLevel ERROR',
    `Subsystem sftp ${p.sftpServer}`,
    '',
  ].join('\n');
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function ensureUser(name: string): { uid: number; gid: number; home: string } {
  const lookup = (): string | undefined => {
    try {
      return run('getent', ['passwd', name]).trim();
    } catch {
      return undefined;
    }
  };
  let line = lookup();
  if (!line) {
    if (process.getuid?.() !== 0) throw new Error(`test user '${name}' does not exist and only root can create it. Run the tests as root, or create it with 'useradd -m -s /bin/sh ${name}'.`);
    try {
      run('useradd', ['-m', '-s', '/bin/sh', name]);
    } catch (e) {
      if (!lookup()) throw new Error(`could not create test user '${name}' (${(e as Error).message.trim()}). Create it with 'useradd -m -s /bin/sh ${name}'.`);
    }
    line = lookup();
  }
  const f = (line ?? '').split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

/** `SHA256:<base64 without padding>` of an OpenSSH public key line. */
export function fingerprintOf(publicLine: string): string {
  const blob = Buffer.from(publicLine.trim().split(/\s+/)[1], 'base64');
  return 'SHA256:' + crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${ent}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(ent));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

/** Starts sshd; resolves once it accepts TCP connections. */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  if (!fs.existsSync(SSHD_BINARY)) throw new Error(`sshd not found: ${INSTALL_HINT}`);
  try {
    run('ssh-keygen', ['-?']);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error("ssh-keygen not found: install it with 'apt-get install -y openssh-client'");
  }
  const me = os.userInfo();
  const user = options.user ?? me.username;
  const account = user === me.username ? { uid: me.uid, gid: me.gid, home: me.homedir } : ensureUser(user);
  if (options.asUser && user !== me.username && me.uid !== 0) throw new Error(`running sshd as '${user}' needs root`);

  // sshd running as root wants its privilege-separation folder (systemd makes it on a booted host).
  if (!options.asUser && me.uid === 0) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-sshd-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const akDir = path.join(dir, 'authorized-keys');
  fs.mkdirSync(akDir, { mode: 0o755 });
  const paths: SshdPaths = {
    dir,
    port,
    listenAddress: '127.0.0.1',
    hostKey: path.join(dir, 'ssh_host_ed25519_key'),
    hostKeyPub: path.join(dir, 'ssh_host_ed25519_key.pub'),
    authorizedKeys: path.join(akDir, 'authorized_keys'),
    authorizedKeysDir: akDir,
    pidFile: path.join(dir, 'sshd.pid'),
    user,
    sftpServer: '/usr/lib/openssh/sftp-server',
  };
  const identity = path.join(dir, 'id_ed25519');
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kubedev-test-host', '-f', paths.hostKey]);
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kubedev-test-user', '-f', identity]);
  fs.copyFileSync(`${identity}.pub`, paths.authorizedKeys);
  fs.chmodSync(paths.authorizedKeys, 0o644);
  const hostPublicKey = fs.readFileSync(paths.hostKeyPub, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  const knownHosts = path.join(dir, 'known_hosts');
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPublicKey}\n`);
  const configText = [...(options.overrides ?? []), (options.config ?? defaultSshdConfig)(paths)].join('\n');
  const configFile = path.join(dir, 'sshd_config');
  fs.writeFileSync(configFile, configText);
  if (options.asUser) {
    for (const f of [dir, akDir, paths.hostKey, paths.hostKeyPub, paths.authorizedKeys, configFile]) fs.chownSync(f, account.uid, account.gid);
  }

  // Check the config before starting, so a bad one fails with sshd's own words.
  try {
    execFileSync(SSHD_BINARY, ['-t', '-f', configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.asUser ? { uid: account.uid, gid: account.gid } : {}),
    });
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`sshd rejects the test config ${configFile}: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`);
  }

  let log = '';
  const child: ChildProcess = spawn(SSHD_BINARY, ['-D', '-e', '-f', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(options.asUser ? { uid: account.uid, gid: account.gid, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: account.home } } : {}),
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    log += s;
  });
  let exited = false;
  const exitedP = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));

  // Wait until it accepts connections (10 s bound).
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`sshd exited at start: ${log.trim()}`);
    }
    if (await accepts(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`sshd did not listen on 127.0.0.1:${port} within 10 s: ${log.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }

  let closing: Promise<void> | undefined;
  const sessionPids = (): number[] => (exited || child.pid === undefined ? [] : childrenOf(child.pid));
  const signalSessions = (signal: NodeJS.Signals): number => {
    const pids = sessionPids();
    const all = [...pids];
    for (let i = 0; i < all.length; i++) all.push(...childrenOf(all[i]));
    for (const p of all) {
      try {
        process.kill(p, signal);
      } catch {
        // already gone
      }
    }
    return pids.length;
  };
  return {
    host: '127.0.0.1',
    port,
    user,
    uid: account.uid,
    gid: account.gid,
    identity,
    knownHosts,
    hostPublicKey,
    hostKeyFingerprint: fingerprintOf(hostPublicKey),
    paths,
    pid: child.pid ?? -1,
    log: () => log,
    sessionPids,
    killSessions() {
      return signalSessions('SIGKILL');
    },
    signalSessions,
    close() {
      closing ??= (async () => {
        for (const p of sessionPids()) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        if (!exited) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exitedP;
          clearTimeout(t);
        }
        fs.rmSync(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
