/**
 * Dev mode of an existing workload, as `okteto up` does it: a development twin of a Deployment that
 * keeps its env, config mounts, service account, pull secrets and labels, and swaps the image,
 * command, probes (none) and replicas (one) — plus the sync sidecar, the workspace and the caches.
 * The twin never shares the original's Services with a running original (lib/takeover.ts): in
 * `replace` mode the original is scaled to 0 while the twin exists, in `side-by-side` mode the twin
 * drops the original's selector labels. devModeOf() only reads the original.
 */
import { DevEnvironmentSpec, PortSpec } from './dev-environment-spec';
import { KubeObject, plain } from './k8s';
import { problem } from './problems';
import { isWithin } from './names';
import { DEFAULT_DEV_MODE, DevMode, ScaleOriginal, selectorKeys } from './takeover';

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
  /**
   * 'replace': the twin keeps the original's pod labels and receives its Services' traffic while the
   * original runs no pod. 'side-by-side': the twin carries none of the labels the original's selector
   * reads (all of the original's pod labels when its selector names none) and is reached through
   * its own Service `<name>`; the original keeps serving.
   * @default 'replace'
   */
  readonly mode?: DevMode;
  /**
   * In replace mode, who scales the original to 0: 'output' when the same app or program writes the
   * original (it is written with replicas 0), 'up' when it is deployed elsewhere (`kubedev up` scales
   * it at run time and `kubedev down` restores it). The cdk8s adapter picks 'output' by itself for an
   * original in the same app.
   * @default 'up'
   */
  readonly scaleOriginal?: ScaleOriginal;
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

  const { container: _c, mode: _m, scaleOriginal: _s, ...given } = options;
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
      source: { kind: 'Deployment', name: original, namespace: source.metadata.namespace },
      mode: options.mode,
      scaleOriginal: options.scaleOriginal,
      podLabels: twinLabels(source, options.mode ?? DEFAULT_DEV_MODE),
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

/**
 * The pod labels the twin keeps: all of them in replace mode; in side-by-side mode none that the
 * original's selector reads (its Services select a subset of those), or none at all when the
 * selector names no label and kubedev cannot tell which ones its Services use.
 */
function twinLabels(deployment: KubeObject, mode: DevMode): Record<string, string> | undefined {
  const labels = (deployment as { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } }).spec?.template?.metadata?.labels;
  if (mode !== 'side-by-side' || labels === undefined) return labels;
  const keys = selectorKeys(deployment);
  if (keys === undefined) return undefined;
  return Object.fromEntries(Object.entries(labels).filter(([k]) => !keys.includes(k)));
}
