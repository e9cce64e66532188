/**
 * Dev mode of an existing workload, as `okteto up` does it: a development twin of a Deployment that
 * keeps its env, config mounts, service account, pull secrets and labels, and swaps the image,
 * command, probes (none) and replicas (one) — plus the sync sidecar, the workspace and the caches.
 * The original is only read, never changed.
 */
import { DevEnvironmentSpec, PortSpec } from './dev-environment-spec';
import { KubeObject, plain } from './k8s';
import { problem } from './problems';
import { isWithin } from './names';

/** What the twin changes; everything else of DevEnvironmentSpec may be set too. */
export interface DevModeOptions extends Partial<Omit<DevEnvironmentSpec, 'inherit'>> {
  /** The developer who owns the twin. */
  readonly owner: string;
  /** The dev image. @default the original container's image */
  readonly image?: string;
  /** Which container of the original to develop. @default its first container */
  readonly container?: string;
  /** @default `<original>-dev` */
  readonly name?: string;
}

interface Container {
  name: string;
  image?: string;
  env?: Record<string, unknown>[];
  envFrom?: Record<string, unknown>[];
  ports?: { containerPort: number; name?: string; protocol?: 'TCP' | 'UDP' | 'SCTP' }[];
  volumeMounts?: { name: string; mountPath: string }[];
  resources?: DevEnvironmentSpec['resources'];
}

interface PodSpecLike {
  containers?: Container[];
  volumes?: { name: string; persistentVolumeClaim?: unknown; [field: string]: unknown }[];
  serviceAccountName?: string;
  imagePullSecrets?: { name: string }[];
  automountServiceAccountToken?: boolean;
}

/**
 * Derives the spec of a Deployment's development twin.
 * @param deployment a plain `apps/v1` Deployment (e.g. `ApiObject.toJson()` of a cdk8s-plus Deployment)
 * @throws Error naming the field at fault when the object is not a usable Deployment
 */
export function devModeOf(deployment: KubeObject, options: DevModeOptions): DevEnvironmentSpec {
  const source = plain(deployment) as KubeObject & { spec?: { template?: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: PodSpecLike } } };
  const original = source?.metadata?.name ?? '<unnamed>';
  if (source?.kind !== 'Deployment') {
    throw new Error(problem('DevMode', original, 'source is not a Deployment', source?.kind, 'Pass an apps/v1 Deployment'));
  }
  const podSpec: PodSpecLike = source.spec?.template?.spec ?? {};
  const containers = podSpec.containers ?? [];
  const container = options.container === undefined ? containers[0] : containers.find((c) => c.name === options.container);
  if (!container) {
    throw new Error(problem('DevMode', original, options.container === undefined ? 'the Deployment has no containers' : 'container not found',
      options.container, `Name one of its containers: ${containers.map((c) => `'${c.name}'`).join(', ') || 'none'}`));
  }

  const { container: _c, ...given } = options;
  // Fields left undefined fall back to the original's, so drop them before spreading.
  const rest = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<DevEnvironmentSpec>;
  const sync = options.sync ?? [{ local: '.', remote: '/workspace' }];
  const taken = [...sync.map((f) => f.remote), ...(options.caches ?? []).map((c) => c.path)];
  // Keep config mounts, but not where the workspace or a cache now goes, and not claims the original holds (ReadWriteOnce).
  const volumes = (podSpec.volumes ?? []).filter((v) => v.persistentVolumeClaim === undefined);
  const kept = new Set(volumes.map((v) => v.name));
  const volumeMounts = (container.volumeMounts ?? []).filter(
    (m) => kept.has(m.name) && !taken.some((t) => isWithin(m.mountPath, t) || isWithin(t, m.mountPath)),
  );
  const mounted = new Set(volumeMounts.map((m) => m.name));
  const ports: PortSpec[] = (container.ports ?? []).map((p) => ({ port: p.containerPort, name: p.name, protocol: p.protocol }));

  return {
    namespace: source.metadata.namespace ?? 'default',
    image: container.image ?? '',
    ports,
    resources: container.resources,
    serviceAccountName: podSpec.serviceAccountName,
    ...rest,
    name: options.name ?? `${original}-dev`,
    owner: options.owner,
    sync,
    inherit: {
      source: { kind: 'Deployment', name: original },
      podLabels: source.spec?.template?.metadata?.labels,
      podAnnotations: source.spec?.template?.metadata?.annotations,
      volumes: volumes.filter((v) => mounted.has(v.name)),
      volumeMounts,
      imagePullSecrets: podSpec.imagePullSecrets,
      automountServiceAccountToken: podSpec.automountServiceAccountToken,
      env: container.env,
      envFrom: container.envFrom,
    },
  };
}
