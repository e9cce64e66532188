/**
 * renderDevEnvironment(): the Kubernetes objects of one environment, in apply order, as plain JSON.
 * This is the only place their shape is written.
 */
import { ATTACH_ANNOTATION, ATTACH_RECORD_VERSION, AttachRecord } from './attach';
import {
  DEV_CONTAINER, DevEnvironmentSpec, EnvVarSpec, MANAGED_BY_LABEL, OWNER_ANNOTATION,
  ResolvedDevEnvironment, SIDECAR_CONTAINER, resolveDevEnvironment,
} from './dev-environment-spec';
import { validateDevEnvironment } from './dev-environment-validate';
import { CONTROL_DIR, SUPERVISOR_DIR, SUPERVISOR_FILE, hookFile } from './dev-process';
import { KubeObject, plain } from './k8s';
import { SUPERVISOR_SCRIPT } from './supervisor';
import { assertValid } from './problems';
import { TWIN_MODE_ANNOTATION, TWIN_OF_ANNOTATION } from './takeover';
import {
  AUTHORIZED_KEYS_DIR, HOST_KEYS_DIR, HOST_KEY_FILE, HOST_PUBLIC_KEY_FILE, SSHD_CONFIG_DIR, SSHD_CONFIG_FILE, renderSshdConfig,
} from './sshd';

const WORKSPACE_VOLUME = 'kubedev-workspace';
const SSHD_CONFIG_VOLUME = 'kubedev-sshd-config';
const HOST_KEYS_VOLUME = 'kubedev-host-keys';
const AUTHORIZED_KEYS_VOLUME = 'kubedev-authorized-keys';
const SIDECAR_TMP_VOLUME = 'kubedev-sshd-tmp';
const SUPERVISOR_VOLUME = 'kubedev-supervisor';
const CONTROL_VOLUME = 'kubedev-control';

/** The run hooks' ConfigMap keys, by their index in onSync. */
function runHooks(env: ResolvedDevEnvironment): { index: number; file: string; run: string }[] {
  return env.hooks.flatMap((h, index) => (h.run !== undefined ? [{ index, file: hookFile(index), run: h.run }] : []));
}

/**
 * Renders an environment: PersistentVolumeClaims, the sshd ConfigMap, a headless Service and the
 * StatefulSet carrying the attach record. Throws a ValidationError listing every problem.
 */
export function renderDevEnvironment(spec: DevEnvironmentSpec): KubeObject[] {
  assertValid(validateDevEnvironment(spec));
  const env = resolveDevEnvironment(spec);
  return plain([...renderClaims(env), renderSshdConfigMap(env), renderService(env), renderStatefulSet(env)]);
}

/** The attach record the runner reads (also an output of the Pulumi component). Throws a ValidationError like render. */
export function attachRecordOf(spec: DevEnvironmentSpec): AttachRecord {
  assertValid(validateDevEnvironment(spec));
  return attachRecord(resolveDevEnvironment(spec));
}

function metadata(env: ResolvedDevEnvironment, name: string, extraAnnotations: Record<string, string> = {}) {
  const { spec } = env;
  const annotations = { ...spec.annotations, [OWNER_ANNOTATION]: spec.owner, ...extraAnnotations };
  return {
    name,
    namespace: spec.namespace,
    labels: { ...spec.labels, [MANAGED_BY_LABEL]: 'kubedev', ...env.selector },
    annotations,
  };
}

function renderClaims(env: ResolvedDevEnvironment): KubeObject[] {
  const claim = (name: string, size: string, storageClass: string | undefined): KubeObject => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: metadata(env, name),
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: size } },
      storageClassName: storageClass,
    },
  });
  return [
    claim(env.workspaceClaim, env.workspaceSize, env.spec.workspace?.storageClass),
    ...env.caches.map((c) => claim(c.claimName, c.size, c.storageClass)),
  ];
}

function renderSshdConfigMap(env: ResolvedDevEnvironment): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(env, env.sshdConfigMap),
    data: {
      [SSHD_CONFIG_FILE]: renderSshdConfig({ port: env.sshPort, user: env.sshUser, reversePorts: env.reverse.map((r) => r.remote) }),
      [SUPERVISOR_FILE]: SUPERVISOR_SCRIPT,
      ...Object.fromEntries(runHooks(env).map((h) => [h.file, `${h.run}\n`])),
    },
  };
}

function renderService(env: ResolvedDevEnvironment): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(env, env.spec.name),
    spec: {
      // Headless: gives the pod the stable DNS name <name>-0.<name> and governs the StatefulSet.
      clusterIP: 'None',
      selector: { ...env.selector },
      ports: [
        ...env.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.port, protocol: p.protocol })),
        { name: 'ssh', port: env.sshPort, targetPort: env.sshPort, protocol: 'TCP' },
      ],
    },
  };
}

/** The securityContext of a container under "restricted", with the dev container's explicit relaxations. */
function containerSecurity(env: ResolvedDevEnvironment, dev: boolean) {
  const relax = dev ? env.spec.security : undefined;
  const add = relax?.addCapabilities ?? [];
  return {
    runAsNonRoot: !(relax?.runAsRoot ?? false),
    runAsUser: dev ? env.devRunAsUser : env.runAsUser,
    allowPrivilegeEscalation: relax?.allowPrivilegeEscalation ?? false,
    capabilities: { drop: ['ALL'], add: add.length > 0 ? [...add] : undefined },
    seccompProfile: { type: 'RuntimeDefault' },
    readOnlyRootFilesystem: dev ? undefined : true,
  };
}

function envVar(e: EnvVarSpec): Record<string, unknown> {
  if (e.value !== undefined) return { name: e.name, value: e.value };
  if (e.secretKeyRef) return { name: e.name, valueFrom: { secretKeyRef: { ...e.secretKeyRef } } };
  if (e.configMapKeyRef) return { name: e.name, valueFrom: { configMapKeyRef: { ...e.configMapKeyRef } } };
  return { name: e.name, valueFrom: { fieldRef: { ...e.fieldRef } } };
}

function renderStatefulSet(env: ResolvedDevEnvironment): KubeObject {
  const { spec } = env;
  const inherit = spec.inherit;
  const workspaceMounts = env.folders.map((f) => ({ name: WORKSPACE_VOLUME, mountPath: f.remote, subPath: f.subPath }));
  // Later definitions of a name win in Kubernetes; keep one per name, the spec's over the inherited.
  const ownEnv = (spec.env ?? []).map(envVar);
  const ownNames = new Set(ownEnv.map((e) => e.name));
  const env_ = [...(inherit?.env ?? []).filter((e) => !ownNames.has(e.name as string)), ...ownEnv];
  const envFrom = [
    ...(inherit?.envFrom ?? []),
    ...(spec.envFrom ?? []).map((f) => (f.secret !== undefined
      ? { prefix: f.prefix, secretRef: { name: f.secret } }
      : { prefix: f.prefix, configMapRef: { name: f.configMap } })),
  ];

  const dev = {
    name: DEV_CONTAINER,
    image: spec.image,
    // The supervisor runs the dev process (its arguments); without one it waits for `up` to open a shell.
    command: ['/bin/sh', `${SUPERVISOR_DIR}/${SUPERVISOR_FILE}`],
    args: env.process.length > 0 ? [...env.process] : undefined,
    workingDir: env.workingDir,
    env: env_.length > 0 ? env_ : undefined,
    envFrom: envFrom.length > 0 ? envFrom : undefined,
    ports: env.ports.length > 0 ? env.ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: p.protocol })) : undefined,
    resources: spec.resources,
    volumeMounts: [
      ...workspaceMounts,
      ...env.caches.map((c) => ({ name: c.volumeName, mountPath: c.path })),
      ...(inherit?.volumeMounts ?? []),
      { name: SUPERVISOR_VOLUME, mountPath: SUPERVISOR_DIR, readOnly: true },
      { name: CONTROL_VOLUME, mountPath: CONTROL_DIR },
    ],
    securityContext: containerSecurity(env, true),
  };

  const sidecar = {
    name: SIDECAR_CONTAINER,
    image: env.sidecarImage,
    command: ['/usr/sbin/sshd', '-D', '-e', '-f', `${SSHD_CONFIG_DIR}/${SSHD_CONFIG_FILE}`],
    ports: [{ name: 'ssh', containerPort: env.sshPort, protocol: 'TCP' }],
    readinessProbe: { tcpSocket: { port: env.sshPort }, periodSeconds: 2 },
    resources: env.sidecarResources,
    volumeMounts: [
      ...workspaceMounts,
      { name: SSHD_CONFIG_VOLUME, mountPath: SSHD_CONFIG_DIR, readOnly: true },
      { name: HOST_KEYS_VOLUME, mountPath: HOST_KEYS_DIR, readOnly: true },
      { name: AUTHORIZED_KEYS_VOLUME, mountPath: AUTHORIZED_KEYS_DIR, readOnly: true },
      { name: SIDECAR_TMP_VOLUME, mountPath: '/tmp' },
      { name: CONTROL_VOLUME, mountPath: CONTROL_DIR },
    ],
    securityContext: containerSecurity(env, false),
  };

  const volumes = [
    { name: WORKSPACE_VOLUME, persistentVolumeClaim: { claimName: env.workspaceClaim } },
    ...env.caches.map((c) => ({ name: c.volumeName, persistentVolumeClaim: { claimName: c.claimName } })),
    { name: SSHD_CONFIG_VOLUME, configMap: { name: env.sshdConfigMap, defaultMode: 0o444 } },
    {
      name: HOST_KEYS_VOLUME,
      secret: {
        secretName: env.hostKeySecret,
        // Readable by the pod's group (fsGroup) only: sshd runs as the non-root user.
        defaultMode: 0o440,
        items: [{ key: HOST_KEY_FILE, path: HOST_KEY_FILE }, { key: HOST_PUBLIC_KEY_FILE, path: HOST_PUBLIC_KEY_FILE }],
      },
    },
    { name: AUTHORIZED_KEYS_VOLUME, secret: { secretName: env.authorizedKeysSecret, defaultMode: 0o444 } },
    { name: SIDECAR_TMP_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
    {
      name: SUPERVISOR_VOLUME,
      configMap: {
        name: env.sshdConfigMap,
        defaultMode: 0o444,
        items: [SUPERVISOR_FILE, ...runHooks(env).map((h) => h.file)].map((key) => ({ key, path: key })),
      },
    },
    // The control FIFO and hook logs: shared by the supervisor (dev) and the runner's SSH commands (sidecar).
    { name: CONTROL_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
    ...(inherit?.volumes ?? []),
  ];

  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: metadata(env, spec.name, { ...twinAnnotations(env), [ATTACH_ANNOTATION]: JSON.stringify(attachRecord(env)) }),
    spec: {
      // A twin that `kubedev up` swaps in is parked at 0: it runs only while the original is at 0.
      replicas: env.takeOver ? 0 : 1,
      serviceName: spec.name,
      selector: { matchLabels: { ...env.selector } },
      template: {
        metadata: {
          labels: { ...inherit?.podLabels, ...spec.labels, ...env.selector },
          annotations: { ...inherit?.podAnnotations, [OWNER_ANNOTATION]: spec.owner },
        },
        spec: {
          serviceAccountName: spec.serviceAccountName,
          // No API token unless the environment names a ServiceAccount to act as.
          automountServiceAccountToken: inherit?.automountServiceAccountToken ?? spec.serviceAccountName !== undefined,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 10,
          imagePullSecrets: inherit?.imagePullSecrets ? inherit.imagePullSecrets.map((s) => ({ name: s.name })) : undefined,
          securityContext: {
            runAsNonRoot: !(spec.security?.runAsRoot ?? false),
            runAsUser: env.runAsUser,
            runAsGroup: env.runAsUser,
            fsGroup: env.runAsUser,
            fsGroupChangePolicy: 'OnRootMismatch',
            seccompProfile: { type: 'RuntimeDefault' },
          },
          nodeSelector: spec.nodeSelector ? { ...spec.nodeSelector } : undefined,
          tolerations: spec.tolerations ? spec.tolerations.map((t) => ({ ...t })) : undefined,
          containers: [dev, sidecar],
          volumes,
        },
      },
    },
  };
}

/** A twin says what it copies and how, for readers and for trafficSplits(). */
function twinAnnotations(env: ResolvedDevEnvironment): Record<string, string> {
  const source = env.spec.inherit?.source;
  if (!source || !env.mode) return {};
  return { [TWIN_OF_ANNOTATION]: `${source.kind}/${source.name}`, [TWIN_MODE_ANNOTATION]: env.mode };
}

function attachRecord(env: ResolvedDevEnvironment): AttachRecord {
  const { spec } = env;
  return {
    version: ATTACH_RECORD_VERSION,
    name: spec.name,
    namespace: spec.namespace,
    workload: { kind: 'StatefulSet', name: spec.name },
    pod: `${spec.name}-0`,
    selector: { ...env.selector },
    container: DEV_CONTAINER,
    sidecar: SIDECAR_CONTAINER,
    ssh: {
      port: env.sshPort,
      user: env.sshUser,
      hostKeySecret: env.hostKeySecret,
      hostKeyPublicKey: HOST_PUBLIC_KEY_FILE,
      authorizedKeysSecret: env.authorizedKeysSecret,
    },
    workspace: env.workingDir,
    folders: env.folders.map((f) => ({
      local: f.local, remote: f.remote, ignore: [...f.ignore],
      // Written only when not the default, so mirror-only records stay as they were.
      ...(f.mode !== 'mirror' ? { mode: f.mode } : {}),
      ...(f.remoteOwns.length > 0 ? { remoteOwns: [...f.remoteOwns] } : {}),
      ...(f.localOwns.length > 0 ? { localOwns: [...f.localOwns] } : {}),
    })),
    ports: env.ports.map((p) => ({ ...p })),
    process: { command: [...env.process], control: CONTROL_DIR },
    hooks: env.hooks.map((h) => (h.run !== undefined ? { paths: [...h.paths], run: h.run } : { paths: [...h.paths], restart: true as const })),
    reverse: env.reverse.map((r) => ({ ...r })),
    ...(env.takeOver ? { takeOver: { ...env.takeOver } } : {}),
  };
}
