/**
 * The sync sidecar's sshd_config: public-key authentication for one non-root user, nothing else.
 * sshd runs as that user (no root in the pod), so it needs no privilege separation user, and keeps
 * its pid file in /tmp.
 */

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
}

/** Renders sshd_config text. Every line is an explicit decision; nothing is left to the image's defaults. */
export function renderSshdConfig(options: SshdConfigOptions): string {
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
    'AllowTcpForwarding no',
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
