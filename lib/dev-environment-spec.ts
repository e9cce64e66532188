/**
 * The DevEnvironment model: what a developer's environment is, and every default, resolved once.
 */
import { ResourceRequirements, Toleration } from './k8s';
import { isWithin, normalizePath, slug } from './names';
import { DEFAULT_DEV_MODE, DEFAULT_SCALE_ORIGINAL, DevMode, ScaleOriginal, TakeOverTarget } from './takeover';

/** SSH port the sidecar listens on. */
export const DEFAULT_SSH_PORT = 2222;
/** The one user the sidecar lets in. */
export const DEFAULT_SSH_USER = 'dev';
/** uid (and gid, fsGroup) both containers run as, so files the sidecar writes are the dev process's own. */
export const DEFAULT_RUN_AS_USER = 1000;
/** The sync sidecar image, built from sync/sidecar/Containerfile. */
export const DEFAULT_SIDECAR_IMAGE = 'ghcr.io/kubedev/sync-sidecar:0.1.0';
/** Where the sync folder goes when none is declared. */
export const DEFAULT_REMOTE_PATH = '/workspace';
/** Size of the workspace volume that holds every sync folder. */
export const DEFAULT_WORKSPACE_SIZE = '10Gi';
/** Sidecar resources: sshd and tar need little. */
export const DEFAULT_SIDECAR_RESOURCES: ResourceRequirements = {
  requests: { cpu: '50m', memory: '32Mi' },
  limits: { memory: '256Mi' },
};
/** Container names inside the environment's pod. */
export const DEV_CONTAINER = 'dev';
export const SIDECAR_CONTAINER = 'sync';
/** Labels and annotations kubedev writes. */
export const ENVIRONMENT_LABEL = 'kubedev.io/environment';
export const OWNER_ANNOTATION = 'kubedev.io/owner';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
/** StatefulSet names are limited so that the pod name and its controller-revision-hash label fit in 63 characters. */
export const MAX_NAME_LENGTH = 52;

/** One folder mirrored from the developer's machine. */
export interface SyncFolderSpec {
  /** Local folder, relative to where `kubedev` runs. */
  readonly local: string;
  /** Absolute path in the dev container. */
  readonly remote: string;
  /**
   * gitignore-syntax patterns neither sent nor deleted remotely. Caches inside the folder are added.
   * @default []
   */
  readonly ignore?: readonly string[];
  /**
   * `mirror`: one-way, local wins (remote files that are not local are deleted). `two-way`: changes flow
   * both ways, three-way against the last agreed state; changes on both sides are conflicts that keep
   * both versions.
   * @default 'mirror'
   */
  readonly mode?: SyncMode;
  /**
   * gitignore-syntax patterns that flow only container -> laptop (build output, lock files written by
   * hooks). `two-way` only.
   * @default []
   */
  readonly remoteOwns?: readonly string[];
  /**
   * gitignore-syntax patterns that flow only laptop -> container. `two-way` only.
   * @default []
   */
  readonly localOwns?: readonly string[];
}

/** How a sync folder flows. */
export type SyncMode = 'mirror' | 'two-way';
export const SYNC_MODES: readonly SyncMode[] = ['mirror', 'two-way'];
export const DEFAULT_SYNC_MODE: SyncMode = 'mirror';

/** An environment variable: a value, or a reference. Exactly one source. */
export interface EnvVarSpec {
  readonly name: string;
  readonly value?: string;
  /** @see https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-environment-variables */
  readonly secretKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
  readonly configMapKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
  /** @see https://kubernetes.io/docs/concepts/workloads/pods/downward-api/ */
  readonly fieldRef?: { readonly fieldPath: string };
}

/** All keys of a Secret or ConfigMap as environment variables. Exactly one of secret, configMap. */
export interface EnvFromSpec {
  readonly secret?: string;
  readonly configMap?: string;
  /** @default no prefix */
  readonly prefix?: string;
}

/** A port the dev container serves, forwarded by `kubedev up`. */
export interface PortSpec {
  readonly port: number;
  /** @default `port-<port>` */
  readonly name?: string;
  /** @default 'TCP' */
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
}

/** A persistent cache (package cache, build output) that survives restarts. */
export interface CacheSpec {
  /** Absolute path in the dev container. May lie inside a sync folder; it is then ignored by the mirror. */
  readonly path: string;
  /** @default '5Gi' */
  readonly size?: string;
  /** @default the cluster's default storage class */
  readonly storageClass?: string;
  /** Used in the PVC name `<env>-cache-<name>`. @default a slug of the path */
  readonly name?: string;
}

/** The sync sidecar: a stock OpenSSH server sharing the workspace volume. */
export interface SidecarSpec {
  /** @default DEFAULT_SIDECAR_IMAGE */
  readonly image?: string;
  /** @default 2222 */
  readonly port?: number;
  /** The image's non-root user that owns the workspace. @default 'dev' */
  readonly user?: string;
  /** Secret with key `authorized_keys`. @default `<name>-ssh-authorized-keys` */
  readonly authorizedKeysSecret?: string;
  /** Secret with keys `ssh_host_ed25519_key` and `ssh_host_ed25519_key.pub`. @default `<name>-ssh-host-keys` */
  readonly hostKeySecret?: string;
  /** @default DEFAULT_SIDECAR_RESOURCES */
  readonly resources?: ResourceRequirements;
}

/**
 * Relaxations of Pod Security Standards "restricted" for the dev container. Each must be asked for
 * by name; nothing is relaxed by accident. The sidecar always stays restricted.
 * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
 */
export interface SecurityRelaxations {
  /** Run the dev container as root (runAsUser 0). @default false */
  readonly runAsRoot?: boolean;
  /** @default false */
  readonly allowPrivilegeEscalation?: boolean;
  /** Capabilities to add back (e.g. 'NET_BIND_SERVICE', 'SYS_PTRACE' for debuggers). @default [] */
  readonly addCapabilities?: readonly string[];
}

/**
 * A step the supervisor takes after a sync batch that changed matching paths reached the remote:
 * `run` a shell command in the dev container, or `restart` the dev process. Exactly one of the two.
 */
export interface OnSyncHookSpec {
  /** gitignore-style patterns, matched against paths relative to their sync folder (e.g. 'package.json', 'src/**'). */
  readonly paths: readonly string[];
  /** A shell command (`sh -c`) run in the working directory of the dev container, e.g. 'npm ci'. @default none */
  readonly run?: string;
  /** Restart the dev process (requires `command`). @default false */
  readonly restart?: boolean;
}

/** A port on the developer's machine reachable from inside the pod at 127.0.0.1:<remote> (a debugger, a local service). */
export interface ReversePortSpec {
  /** The port in the pod (on its loopback only), 1024-65535. */
  readonly remote: number;
  /** The port on the developer's machine (127.0.0.1). @default remote */
  readonly local?: number;
  /** @default `reverse-<remote>` */
  readonly name?: string;
}

/** Settings a dev-mode twin inherits from the workload it copies (see devModeOf()). */
export interface InheritedPodSettings {
  /** The workload copied. @default namespace: the environment's */
  readonly source: { readonly kind: string; readonly name: string; readonly namespace?: string };
  /**
   * How the twin and the original share the original's Services (see lib/takeover.ts).
   * @default DEFAULT_DEV_MODE ('replace')
   */
  readonly mode?: DevMode;
  /**
   * In replace mode, who scales the original to 0: 'output' (the same app writes it at 0) or 'up'
   * (`kubedev up` at run time; the attach record names the original as `takeOver`).
   * @default DEFAULT_SCALE_ORIGINAL ('up')
   */
  readonly scaleOriginal?: ScaleOriginal;
  readonly podLabels?: Readonly<Record<string, string>>;
  readonly podAnnotations?: Readonly<Record<string, string>>;
  /** Volumes other than those kubedev adds (config maps, secrets, ...). */
  readonly volumes?: readonly Record<string, unknown>[];
  /** The original container's mounts of those volumes. */
  readonly volumeMounts?: readonly Record<string, unknown>[];
  readonly imagePullSecrets?: readonly { readonly name: string }[];
  /** The original pod's choice, when it made one. */
  readonly automountServiceAccountToken?: boolean;
  /** The original container's env, kept verbatim (may use valueFrom kinds this model does not name). */
  readonly env?: readonly Record<string, unknown>[];
  readonly envFrom?: readonly Record<string, unknown>[];
}

export interface DevEnvironmentSpec {
  /** DNS-1123 label, at most 52 characters; the pod is `<name>-0`. */
  readonly name: string;
  readonly namespace: string;
  /** The developer who owns it, as the cluster authenticates them (user name or e-mail). */
  readonly owner: string;
  /** The dev container image. */
  readonly image: string;
  /**
   * The dev process, run (and restarted) by the supervisor that is the dev container's entrypoint.
   * Left out, or a bare shell (`['sh']`, `['bash']`): interactive — `kubedev up` opens a shell instead.
   * @default none (interactive)
   */
  readonly command?: readonly string[];
  /** Appended to command. @default none */
  readonly args?: readonly string[];
  /** The dev process's (and hooks') working directory: the issue's `workdir`. @default the first sync folder's remote path */
  readonly workingDir?: string;
  /** Steps after a sync batch (run a command, restart the process), in declared order, once per batch. @default [] */
  readonly onSync?: readonly OnSyncHookSpec[];
  /** Reverse forwards: developer's machine -> pod loopback. @default [] */
  readonly reverse?: readonly ReversePortSpec[];
  /** @default [{ local: '.', remote: '/workspace' }] */
  readonly sync?: readonly SyncFolderSpec[];
  /** @default [] */
  readonly env?: readonly EnvVarSpec[];
  /** @default [] */
  readonly envFrom?: readonly EnvFromSpec[];
  /** @default [] */
  readonly ports?: readonly PortSpec[];
  /** @default [] */
  readonly caches?: readonly CacheSpec[];
  /** @default none */
  readonly resources?: ResourceRequirements;
  /** @default none */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** @default none */
  readonly tolerations?: readonly Toleration[];
  /** @default none: the pod runs without an API token */
  readonly serviceAccountName?: string;
  /** Extra labels on every object. @default {} */
  readonly labels?: Readonly<Record<string, string>>;
  /** Extra annotations on every object. @default {} */
  readonly annotations?: Readonly<Record<string, string>>;
  /** The volume that holds the sync folders. @default { size: '10Gi' } */
  readonly workspace?: { readonly size?: string; readonly storageClass?: string };
  /** @default DEFAULT_RUN_AS_USER */
  readonly runAsUser?: number;
  /** @default all defaults */
  readonly sidecar?: SidecarSpec;
  /** @default none: "restricted" */
  readonly security?: SecurityRelaxations;
  /** @default none */
  readonly inherit?: InheritedPodSettings;
}

export const DEFAULT_CACHE_SIZE = '5Gi';

/** A sync folder with its defaults resolved, the workspace sub-path and the full ignore list. */
export interface ResolvedFolder {
  readonly local: string;
  readonly remote: string;
  readonly subPath: string;
  readonly ignore: readonly string[];
  readonly mode: SyncMode;
  readonly remoteOwns: readonly string[];
  readonly localOwns: readonly string[];
}

export interface ResolvedCache {
  readonly path: string;
  readonly size: string;
  readonly storageClass?: string;
  readonly claimName: string;
  readonly volumeName: string;
}

/** Every default applied; what render() reads. */
export interface ResolvedDevEnvironment {
  readonly spec: DevEnvironmentSpec;
  readonly folders: readonly ResolvedFolder[];
  readonly caches: readonly ResolvedCache[];
  readonly ports: readonly { readonly name: string; readonly port: number; readonly protocol: string }[];
  readonly workingDir: string;
  /** The dev process (command + args); empty when interactive. */
  readonly process: readonly string[];
  readonly hooks: readonly { readonly paths: readonly string[]; readonly run?: string; readonly restart: boolean }[];
  readonly reverse: readonly { readonly name: string; readonly remote: number; readonly local: number }[];
  /** uid of the sidecar, group and fsGroup of the pod. */
  readonly runAsUser: number;
  /** uid of the dev container: runAsUser, or 0 where security.runAsRoot asks for it. */
  readonly devRunAsUser: number;
  readonly sshPort: number;
  readonly sshUser: string;
  readonly sidecarImage: string;
  readonly sidecarResources: ResourceRequirements;
  readonly authorizedKeysSecret: string;
  readonly hostKeySecret: string;
  readonly workspaceClaim: string;
  readonly workspaceSize: string;
  readonly sshdConfigMap: string;
  readonly selector: Readonly<Record<string, string>>;
  /** A twin's mode; undefined for an environment that copies nothing. */
  readonly mode?: DevMode;
  /** What `kubedev up` scales to 0 (a replace-mode twin whose original the output does not scale). */
  readonly takeOver?: TakeOverTarget;
}

/** Shells that, given alone, mean "interactive": `up` opens a TTY session instead of running a process. */
const SHELLS = new Set(['sh', 'bash', 'zsh', 'ash', 'dash', 'fish']);

/** Whether a command means "no dev process, open a shell": none, or a bare shell without arguments. */
export function isInteractive(command: readonly string[] | undefined, args?: readonly string[]): boolean {
  if (command === undefined || command.length === 0) return (args ?? []).length === 0;
  return command.length === 1 && (args ?? []).length === 0 && SHELLS.has(command[0].split('/').pop() ?? '');
}

/** A cache's name: given, or a slug of its path. */
export function cacheName(cache: CacheSpec): string {
  return cache.name ?? slug(cache.path, 30);
}

/** The PersistentVolumeClaim that holds a cache: `<env>-cache-<cache name>`. */
export function cacheClaimName(environment: string, cache: CacheSpec): string {
  return `${environment}-cache-${cacheName(cache)}`;
}

/** Resolves every default. Assumes validateDevEnvironment() found nothing. */
export function resolveDevEnvironment(spec: DevEnvironmentSpec): ResolvedDevEnvironment {
  const name = spec.name;
  const sync = spec.sync && spec.sync.length > 0 ? spec.sync : [{ local: '.', remote: DEFAULT_REMOTE_PATH }];
  const caches: ResolvedCache[] = (spec.caches ?? []).map((c) => ({
    path: normalizePath(c.path),
    size: c.size ?? DEFAULT_CACHE_SIZE,
    storageClass: c.storageClass,
    claimName: cacheClaimName(name, c),
    volumeName: `kubedev-cache-${cacheName(c)}`,
  }));
  const usedSubPaths = new Set<string>();
  const folders = sync.map((f, i) => {
    const remote = normalizePath(f.remote);
    // Slugs may collide ('/a.b' and '/a-b'); no two folders may ever share a sub-path of the volume.
    const base = slug(remote);
    let subPath = base;
    for (let k = i; usedSubPaths.has(subPath); k++) subPath = `${base}-${k}`;
    usedSubPaths.add(subPath);
    // A cache inside the folder lives in the container only: the mirror must neither send nor delete it.
    const cacheIgnores = caches
      .filter((c) => c.path !== remote && isWithin(c.path, remote))
      .map((c) => `/${c.path.slice(remote.length + 1)}/`);
    const ignore = [...(f.ignore ?? [])];
    for (const extra of cacheIgnores) if (!ignore.includes(extra)) ignore.push(extra);
    return { local: f.local, remote, subPath, ignore, mode: f.mode ?? DEFAULT_SYNC_MODE, remoteOwns: [...(f.remoteOwns ?? [])], localOwns: [...(f.localOwns ?? [])] };
  });
  return {
    spec,
    folders,
    caches,
    ports: (spec.ports ?? []).map((p) => ({ name: p.name ?? `port-${p.port}`, port: p.port, protocol: p.protocol ?? 'TCP' })),
    workingDir: spec.workingDir ?? folders[0].remote,
    process: isInteractive(spec.command, spec.args) ? [] : [...(spec.command ?? []), ...(spec.args ?? [])],
    hooks: (spec.onSync ?? []).map((h) => ({ paths: [...h.paths], run: h.run, restart: h.restart === true })),
    reverse: (spec.reverse ?? []).map((r) => ({ name: r.name ?? `reverse-${r.remote}`, remote: r.remote, local: r.local ?? r.remote })),
    runAsUser: spec.runAsUser ?? DEFAULT_RUN_AS_USER,
    devRunAsUser: spec.security?.runAsRoot ? 0 : (spec.runAsUser ?? DEFAULT_RUN_AS_USER),
    sshPort: spec.sidecar?.port ?? DEFAULT_SSH_PORT,
    sshUser: spec.sidecar?.user ?? DEFAULT_SSH_USER,
    sidecarImage: spec.sidecar?.image ?? DEFAULT_SIDECAR_IMAGE,
    sidecarResources: spec.sidecar?.resources ?? DEFAULT_SIDECAR_RESOURCES,
    authorizedKeysSecret: spec.sidecar?.authorizedKeysSecret ?? `${name}-ssh-authorized-keys`,
    hostKeySecret: spec.sidecar?.hostKeySecret ?? `${name}-ssh-host-keys`,
    workspaceClaim: `${name}-workspace`,
    workspaceSize: spec.workspace?.size ?? DEFAULT_WORKSPACE_SIZE,
    sshdConfigMap: `${name}-sshd`,
    selector: { [ENVIRONMENT_LABEL]: name },
    ...twinOf(spec),
  };
}

function twinOf(spec: DevEnvironmentSpec): Pick<ResolvedDevEnvironment, 'mode' | 'takeOver'> {
  const inherit = spec.inherit;
  if (!inherit) return {};
  const mode = inherit.mode ?? DEFAULT_DEV_MODE;
  if (mode !== 'replace' || (inherit.scaleOriginal ?? DEFAULT_SCALE_ORIGINAL) !== 'up') return { mode };
  return { mode, takeOver: { kind: 'Deployment', name: inherit.source.name, namespace: inherit.source.namespace ?? spec.namespace } };
}
