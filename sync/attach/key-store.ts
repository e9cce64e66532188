/**
 * The developer's keys for one environment, outside any repository:
 * `${XDG_CONFIG_HOME:-~/.config}/kubedev/keys/<namespace>/<name>/` (folder 0700, files 0600):
 *
 *   id_ed25519, id_ed25519.pub                       the client key kubedev logs in with
 *   ssh_host_ed25519_key, ssh_host_ed25519_key.pub   the sidecar's host key (goes into a Secret)
 *   known_hosts                                      that host key, for the port-forward on 127.0.0.1
 *
 * Keys are made once and kept (idempotent); `rotate` makes new ones. Private keys are written to a
 * temporary name beside the target and renamed, so a file is never seen half-written.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateKeyPairSync, parseKey } from '../engine/ssh2-lite';
import { AttachRecord } from '../../lib/attach';
import { KubeObject } from '../../lib/k8s';
import { isDnsLabel } from '../../lib/names';
import { AUTHORIZED_KEYS_FILE, HOST_KEY_FILE, HOST_PUBLIC_KEY_FILE } from '../../lib/sshd';

export const CLIENT_KEY_FILE = 'id_ed25519';
export const KNOWN_HOSTS_FILE = 'known_hosts';

export interface KeyPaths {
  readonly dir: string;
  readonly clientKey: string;
  readonly clientPublicKey: string;
  readonly hostKey: string;
  readonly hostPublicKey: string;
  readonly knownHosts: string;
}

export interface EnsureKeysResult {
  readonly paths: KeyPaths;
  /** Files written by this call (empty when everything was already there). */
  readonly written: readonly string[];
}

/** kubedev's configuration folder: `$XDG_CONFIG_HOME/kubedev`, or `~/.config/kubedev`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'kubedev');
}

/** Where the keys of `namespace/name` live. Both must be DNS labels (they become folder names). */
export function keyPaths(namespace: string, name: string, env: NodeJS.ProcessEnv = process.env): KeyPaths {
  for (const [what, v] of [['namespace', namespace], ['name', name]] as const) {
    if (!isDnsLabel(v)) throw new Error(`environment ${what} '${v}' is not a DNS label; it cannot name a key folder. Fix the environment's ${what}.`);
  }
  const dir = path.join(configDir(env), 'keys', namespace, name);
  return {
    dir,
    clientKey: path.join(dir, CLIENT_KEY_FILE),
    clientPublicKey: path.join(dir, `${CLIENT_KEY_FILE}.pub`),
    hostKey: path.join(dir, HOST_KEY_FILE),
    hostPublicKey: path.join(dir, HOST_PUBLIC_KEY_FILE),
    knownHosts: path.join(dir, KNOWN_HOSTS_FILE),
  };
}

/** Writes `data` to `file` with `mode` through a temporary name and a rename. */
function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
    fs.chmodSync(tmp, mode); // the umask may have narrowed it; never widened
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** The OpenSSH public line of a private key file's key, or undefined if the file is not a usable key. */
function publicLineOf(privateKeyPem: string, comment: string): string | undefined {
  const parsed = parseKey(privateKeyPem);
  if (parsed instanceof Error || Array.isArray(parsed) || !parsed.isPrivateKey()) return undefined;
  return `${parsed.type} ${parsed.getPublicSSH().toString('base64')} ${comment}`;
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Makes sure one key pair exists: keeps a usable private key (re-deriving a missing or stale public
 * half), makes a new pair when there is none or `rotate` is set. Returns the files written.
 */
function ensurePair(privateFile: string, publicFile: string, comment: string, rotate: boolean): string[] {
  const existing = rotate ? undefined : readIfExists(privateFile);
  if (existing !== undefined) {
    const pub = publicLineOf(existing, comment);
    if (pub === undefined) {
      throw new Error(`${privateFile} is not an unencrypted OpenSSH private key. Move it away, or make new keys with --rotate.`);
    }
    fs.chmodSync(privateFile, 0o600);
    const onDisk = readIfExists(publicFile);
    // Compare type and key only: the comment is the user's to change.
    if (onDisk === undefined || onDisk.trim().split(/\s+/).slice(0, 2).join(' ') !== pub.split(' ').slice(0, 2).join(' ')) {
      writeAtomic(publicFile, `${pub}\n`, 0o600);
      return [publicFile];
    }
    fs.chmodSync(publicFile, 0o600);
    return [];
  }
  const pair = generateEd25519(comment);
  writeAtomic(privateFile, pair.private.endsWith('\n') ? pair.private : `${pair.private}\n`, 0o600);
  writeAtomic(publicFile, `${pair.public.trim()}\n`, 0o600);
  return [privateFile, publicFile];
}

/**
 * An ed25519 pair in OpenSSH format. ssh2 1.17 drops a leading zero byte of the public key when it
 * writes one (about 1 key in 256), which OpenSSH then refuses ("error in libcrypto"); such a pair is
 * drawn again.
 */
export function generateEd25519(comment: string): { private: string; public: string } {
  for (;;) {
    const pair = generateKeyPairSync('ed25519', { comment });
    const blob = Buffer.from(pair.public.trim().split(/\s+/)[1] ?? '', 'base64');
    // string "ssh-ed25519" (4 + 11 bytes), then the key as a string: 4 bytes of length, 32 of key.
    if (blob.length === 4 + 11 + 4 + 32 && blob.readUInt32BE(15) === 32) return pair;
  }
}

/** The known_hosts patterns the port-forward is reached by: any local port on the loopback. */
export const KNOWN_HOSTS_PATTERNS = '[127.0.0.1]:*,[localhost]:*';

/** kubedev's own known_hosts line for the environment's host key. */
export function knownHostsLine(hostPublicLine: string, namespace: string, name: string): string {
  const [type, key] = hostPublicLine.trim().split(/\s+/);
  return `${KNOWN_HOSTS_PATTERNS} ${type} ${key} kubedev:${namespace}/${name}`;
}

/**
 * Creates (or keeps) the environment's client and host keys and its known_hosts. The folder is made
 * 0700 (and kept so); every file is 0600.
 */
export function ensureKeys(record: Pick<AttachRecord, 'namespace' | 'name'>, options: { rotate?: boolean; env?: NodeJS.ProcessEnv } = {}): EnsureKeysResult {
  const paths = keyPaths(record.namespace, record.name, options.env);
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(paths.dir, 0o700);
  const id = `${record.namespace}/${record.name}`;
  const rotate = options.rotate ?? false;
  const written = [
    ...ensurePair(paths.clientKey, paths.clientPublicKey, `kubedev-client:${id}@${os.hostname()}`, rotate),
    ...ensurePair(paths.hostKey, paths.hostPublicKey, `kubedev-host:${id}`, rotate),
  ];
  const line = `${knownHostsLine(fs.readFileSync(paths.hostPublicKey, 'utf8'), record.namespace, record.name)}\n`;
  if (readIfExists(paths.knownHosts) !== line) {
    writeAtomic(paths.knownHosts, line, 0o600);
    written.push(paths.knownHosts);
  } else {
    fs.chmodSync(paths.knownHosts, 0o600);
  }
  return { paths, written };
}

/** What is missing for `up`/`sync` to log in, or [] when the keys are all there. */
export function missingKeys(paths: KeyPaths): string[] {
  return [paths.clientKey, paths.knownHosts].filter((f) => !fs.existsSync(f));
}

/**
 * The authorized_keys line for the client key: `restrict` turns off forwarding, agent, X11 and pty
 * for this key (sync needs only SFTP and a command), whatever the server's config says. With reverse
 * forwards declared, remote forwarding comes back for this key on exactly those ports
 * (`permitlisten`), as the server's PermitListen also says: both must allow it.
 */
export function authorizedKeysLine(clientPublicLine: string, reversePorts: readonly number[] = []): string {
  const ports = reversePorts.filter((p) => Number.isInteger(p) && p >= 1024 && p <= 65535);
  const options = ports.length === 0 ? 'restrict' : ['restrict', 'port-forwarding', ...ports.map((p) => `permitlisten="${p}"`)].join(',');
  return `${options} ${clientPublicLine.trim()}\n`;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/**
 * The two Secrets the environment mounts: the host key pair, and authorized_keys holding the client's
 * public key. They carry private key material: print or apply them, never write them to a repository.
 */
export function renderKeySecrets(record: AttachRecord, paths: KeyPaths): KubeObject[] {
  const labels = { 'app.kubernetes.io/managed-by': 'kubedev', ...record.selector };
  const secret = (name: string, data: Record<string, string>): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: record.namespace, labels: { ...labels } },
    type: 'Opaque',
    data,
  });
  return [
    secret(record.ssh.hostKeySecret, {
      [HOST_KEY_FILE]: b64(fs.readFileSync(paths.hostKey, 'utf8')),
      [HOST_PUBLIC_KEY_FILE]: b64(fs.readFileSync(paths.hostPublicKey, 'utf8')),
    }),
    secret(record.ssh.authorizedKeysSecret, { [AUTHORIZED_KEYS_FILE]: b64(authorizedKeysLine(fs.readFileSync(paths.clientPublicKey, 'utf8'), (record.reverse ?? []).map((r) => r.remote))) }),
  ];
}
