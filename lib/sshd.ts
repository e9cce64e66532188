/**
 * The sync sidecar's sshd_config: public-key authentication for one non-root user, nothing else.
 * sshd runs as that user (no root in the pod), so it needs no privilege separation user, and keeps
 * its pid file in /tmp.
 */
import { ValidationError, problem } from './problems';

/** Where the sidecar mounts what it needs. */
export const SSHD_CONFIG_DIR = '/etc/kubedev/sshd';
export const SSHD_CONFIG_FILE = 'sshd_config';
export const HOST_KEYS_DIR = '/etc/kubedev/host-keys';
export const AUTHORIZED_KEYS_DIR = '/etc/kubedev/authorized-keys';
/** Keys inside the host-key Secret. */
export const HOST_KEY_FILE = 'ssh_host_ed25519_key';
export const HOST_PUBLIC_KEY_FILE = 'ssh_host_ed25519_key.pub';
/** Key inside the authorized-keys Secret. */
export const AUTHORIZED_KEYS_FILE = 'authorized_keys';

export interface SshdConfigOptions {
  /** Port sshd listens on. */
  readonly port: number;
  /** The one user allowed to log in. */
  readonly user: string;
  /** @default `${HOST_KEYS_DIR}/${HOST_KEY_FILE}` */
  readonly hostKey?: string;
  /** @default `${AUTHORIZED_KEYS_DIR}/${AUTHORIZED_KEYS_FILE}` */
  readonly authorizedKeysFile?: string;
  /** @default '/tmp/kubedev-sshd.pid' */
  readonly pidFile?: string;
  /** @default '0.0.0.0' (inside the pod; reached through a port-forward) */
  readonly listenAddress?: string;
  /**
   * Ports the client may listen on with reverse forwards (`ssh -R`), on the pod's loopback only.
   * @default [] (no forwarding of any kind)
   */
  readonly reversePorts?: readonly number[];
}

const KIND = 'renderSshdConfig';
const USER = /^[a-z_][a-z0-9_-]*$/;
/** A path sshd reads as one token: absolute, no whitespace, quotes, '#', '%' tokens or control characters. */
const PATH = /^\/[A-Za-z0-9._+@:=,/-]*$/;
/** An IPv4 or IPv6 address, or a host name. */
const ADDRESS = /^([0-9A-Za-z.-]+|\[?[0-9A-Fa-f:.]+\]?)$/;

/** Every problem of the options, in lib's message shape; the text goes into a config file verbatim. */
export function validateSshdConfigOptions(options: SshdConfigOptions): string[] {
  const out: string[] = [];
  const o = options ?? ({} as SshdConfigOptions);
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
    out.push(problem(KIND, 'port', 'port is not a TCP port number from 1 to 65535', o.port, 'Pass an integer port, e.g. 2222'));
  }
  if (typeof o.user !== 'string' || !USER.test(o.user) || o.user.length > 32 || o.user === 'root') {
    out.push(problem(KIND, 'user', 'user is not a non-root POSIX user name', o.user, "Use lowercase letters, digits, '_' and '-', e.g. 'dev'"));
  }
  for (const field of ['hostKey', 'authorizedKeysFile', 'pidFile'] as const) {
    const v = o[field];
    if (v !== undefined && (typeof v !== 'string' || !PATH.test(v) || v.split('/').some((seg) => seg === '..'))) {
      out.push(problem(KIND, field, `${field} is not a plain absolute path`, v,
        "Use an absolute path of letters, digits and '._+@:=,-' without '..', e.g. '/etc/kubedev/host-keys/key'"));
    }
  }
  const addr = o.listenAddress;
  if (addr !== undefined && (typeof addr !== 'string' || !ADDRESS.test(addr))) {
    out.push(problem(KIND, 'listenAddress', 'listenAddress is not an IP address or host name', addr, "Use an address such as '0.0.0.0' or '127.0.0.1'"));
  }
  const rev = o.reversePorts;
  if (rev !== undefined && (!Array.isArray(rev) || rev.some((p) => !Number.isInteger(p) || p < 1024 || p > 65535))) {
    out.push(problem(KIND, 'reversePorts', 'reversePorts is not a list of ports from 1024 to 65535', rev, 'Pass unprivileged port numbers, e.g. [9229]'));
  }
  return out;
}

/**
 * The forwarding lines. Without reverse ports: none at all. With them: remote (reverse) forwarding
 * only, listening only on the declared ports, and only on loopback (GatewayPorts no makes sshd bind
 * 127.0.0.1 whatever address the client asks for), so only the pod's own containers reach them.
 */
function forwardingLines(reversePorts: readonly number[]): string[] {
  if (reversePorts.length === 0) return ['AllowTcpForwarding no', 'PermitListen none'];
  return [
    'AllowTcpForwarding remote',
    'GatewayPorts no',
    `PermitListen ${reversePorts.join(' ')}`,
    'PermitOpen none',
  ];
}

/**
 * Renders sshd_config text. Every line is an explicit decision; nothing is left to the image's defaults.
 * Throws a ValidationError when an option would not be one token of its line (a line break, a space).
 */
export function renderSshdConfig(options: SshdConfigOptions): string {
  const problems = validateSshdConfigOptions(options);
  if (problems.length > 0) throw new ValidationError(problems);
  const lines = [
    '# kubedev sync sidecar: public-key login for one non-root user; SFTP and a shell for tar.',
    `Port ${options.port}`,
    `ListenAddress ${options.listenAddress ?? '0.0.0.0'}`,
    `HostKey ${options.hostKey ?? `${HOST_KEYS_DIR}/${HOST_KEY_FILE}`}`,
    `PidFile ${options.pidFile ?? '/tmp/kubedev-sshd.pid'}`,
    `AuthorizedKeysFile ${options.authorizedKeysFile ?? `${AUTHORIZED_KEYS_DIR}/${AUTHORIZED_KEYS_FILE}`}`,
    `AllowUsers ${options.user}`,
    'PermitRootLogin no',
    'PubkeyAuthentication yes',
    'AuthenticationMethods publickey',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'HostbasedAuthentication no',
    'PermitEmptyPasswords no',
    'UsePAM no',
    // Kubernetes mounts Secret files through symlinks owned by root; their modes are set by the volume.
    'StrictModes no',
    ...forwardingLines(options.reversePorts ?? []),
    'AllowStreamLocalForwarding no',
    'AllowAgentForwarding no',
    'X11Forwarding no',
    'PermitTunnel no',
    'PermitUserEnvironment no',
    'PrintMotd no',
    'ClientAliveInterval 15',
    'ClientAliveCountMax 4',
    'MaxStartups 10:30:60',
    'Subsystem sftp internal-sftp',
    'LogLevel INFO',
  ];
  return `${lines.join('\n')}\n`;
}
