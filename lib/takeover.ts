/**
 * Take-over without splitting traffic: how a dev twin and the Deployment it copies share the
 * original's Services. Two explicit modes (see DevModeOptions.mode):
 * - `replace`: the twin keeps the original's pod labels, so the original's Services reach it, and the
 *   original runs no pod while the twin exists — scaled to 0 in the synthesized output when the same
 *   app writes it (`scaleOriginal: 'output'`), else by `kubedev up` at run time, which keeps the count
 *   in the annotation REPLICAS_ANNOTATION and `kubedev down` restores it (`scaleOriginal: 'up'`); such a
 *   twin is written parked (replicas 0), and `up` swaps it in, `down` swaps it out: the two never run
 *   together, not between `kubectl apply` and `up`, nor after `down`;
 * - `side-by-side`: the twin carries none of the original's selector labels and is reached through its
 *   own Service; the original keeps running untouched.
 * trafficProblems() is the rule both must meet: no Service selects a running workload and a twin.
 */
import { KubeObject, plain } from './k8s';
import { problem } from './problems';

export const DEV_MODES = ['replace', 'side-by-side'] as const;
export type DevMode = (typeof DEV_MODES)[number];
/** Okteto and DevSpace replace too; it is also the one mode whose default can never split traffic. */
export const DEFAULT_DEV_MODE: DevMode = 'replace';

/** Who scales the original to 0 in replace mode. */
export const SCALE_ORIGINAL = ['output', 'up'] as const;
export type ScaleOriginal = (typeof SCALE_ORIGINAL)[number];
export const DEFAULT_SCALE_ORIGINAL: ScaleOriginal = 'up';

/** On the original, while `kubedev up` holds it at 0: its replica count before (restored by `down`). */
export const REPLICAS_ANNOTATION = 'kubedev.io/replicas';
/** On an original scaled to 0 in the synthesized output: the twin that replaces it. */
export const REPLACED_BY_ANNOTATION = 'kubedev.io/replaced-by';
/** On a twin's StatefulSet: `<Kind>/<name>` of the workload it copies. */
export const TWIN_OF_ANNOTATION = 'kubedev.io/twin-of';
/** On a twin's StatefulSet: its mode. */
export const TWIN_MODE_ANNOTATION = 'kubedev.io/twin-mode';

/** What `kubedev up` scales to 0 and `kubedev down` restores (the attach record's `takeOver`). */
export interface TakeOverTarget {
  readonly kind: 'Deployment';
  readonly name: string;
  readonly namespace: string;
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator?: string; values?: string[] }[];
}

/**
 * The label keys a Deployment's selector reads: matchLabels and every matchExpressions key, whatever
 * its operator. `undefined` when the selector names none (a malformed Deployment).
 */
export function selectorKeys(deployment: KubeObject): string[] | undefined {
  const selector = (deployment as { spec?: { selector?: LabelSelector } }).spec?.selector;
  const keys = [...Object.keys(selector?.matchLabels ?? {}), ...(selector?.matchExpressions ?? []).map((e) => e?.key)]
    .filter((k): k is string => typeof k === 'string' && k !== '');
  return keys.length > 0 ? [...new Set(keys)] : undefined;
}

/**
 * The original Deployment as the synthesized output must hold it while its replace-mode twin exists:
 * replicas 0 and REPLACED_BY_ANNOTATION naming the twin. Both adapters apply exactly this.
 */
export function scaledDownOriginal(deployment: KubeObject, twin: string): KubeObject {
  const copy = plain(deployment) as KubeObject & { spec?: Record<string, unknown> };
  return {
    ...copy,
    metadata: { ...copy.metadata, annotations: { ...copy.metadata.annotations, [REPLACED_BY_ANNOTATION]: twin } },
    spec: { ...copy.spec, replicas: 0 },
  };
}

/** A Service that sends one selector's traffic to more than one place. */
export interface TrafficSplit {
  readonly service: { readonly name: string; readonly namespace: string };
  /** `<Kind>/<name>` of the twins it selects. */
  readonly twins: readonly string[];
  /** `<Kind>/<name>` of the running workloads (replicas > 0) it selects, twins left out. */
  readonly running: readonly string[];
  readonly message: string;
}

const RUNS_PODS = ['Deployment', 'StatefulSet', 'ReplicaSet', 'DaemonSet', 'Pod'];

function podLabels(o: KubeObject): Record<string, string> | undefined {
  if (o.kind === 'Pod') return o.metadata.labels;
  return (o as { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } }).spec?.template?.metadata?.labels;
}

/** Replicas a workload asks for; Kubernetes defaults a missing count to 1, a DaemonSet or Pod runs. */
function replicasOf(o: KubeObject): number {
  const r = (o as { spec?: { replicas?: unknown } }).spec?.replicas;
  return typeof r === 'number' ? r : 1;
}

const isTwin = (o: KubeObject): boolean => o.metadata.annotations?.[TWIN_OF_ANNOTATION] !== undefined;
const id = (o: KubeObject): string => `${o.kind}/${o.metadata.name}`;

/**
 * Every Service among `objects` that selects a running dev twin together with a running workload, or
 * two running twins at once (two developers' breakpoints would share the requests). Services without a selector
 * select nothing. Namespaces left out count as 'default'.
 */
export function trafficSplits(objects: readonly KubeObject[]): TrafficSplit[] {
  const ns = (o: KubeObject) => o.metadata.namespace ?? 'default';
  const workloads = objects.filter((o) => RUNS_PODS.includes(o.kind) && podLabels(o) !== undefined);
  const out: TrafficSplit[] = [];
  for (const service of objects.filter((o) => o.kind === 'Service')) {
    const selector = (service as { spec?: { selector?: Record<string, string> } }).spec?.selector ?? {};
    const wanted = Object.entries(selector);
    if (wanted.length === 0) continue;
    const selected = workloads.filter((w) => ns(w) === ns(service) && wanted.every(([k, v]) => podLabels(w)![k] === v));
    const twins = selected.filter((w) => isTwin(w) && replicasOf(w) > 0).map(id);
    const running = selected.filter((w) => !isTwin(w) && replicasOf(w) > 0).map(id);
    if (twins.length === 0 || (running.length === 0 && twins.length < 2)) continue;
    const message = running.length > 0
      ? problem('Service', service.metadata.name, `selects the dev twin ${twins.join(', ')} and the running ${running.join(', ')}, so it splits their traffic`,
        selector, "Write the original with replicas 0 while the twin exists (mode 'replace' with scaleOriginal 'output', the default for an original in the same app) or give the twin mode 'side-by-side' (its own Service)")
      : problem('Service', service.metadata.name, `selects ${twins.length} dev twins (${twins.join(', ')}), so it splits their traffic`,
        selector, "Let one developer replace the original and give the other twins mode 'side-by-side'");
    out.push({ service: { name: service.metadata.name, namespace: ns(service) }, twins, running, message });
  }
  return out;
}

/**
 * An HorizontalPodAutoscaler keeps its hands off a target scaled to 0 (condition ScalingActive=False,
 * reason ScalingDisabled) unless its minReplicas is 0 (the HPAScaleToZero feature): then it may scale
 * a replaced original back up. Returns a problem for each such HPA among `objects`.
 */
export function autoscalerProblems(objects: readonly KubeObject[]): { readonly twin: string; readonly namespace: string; readonly message: string }[] {
  const replaced = new Map<string, string>();
  for (const o of objects) {
    const twin = o.metadata.annotations?.[REPLACED_BY_ANNOTATION];
    if (o.kind === 'Deployment' && twin !== undefined) replaced.set(`${o.metadata.namespace ?? 'default'}/${o.metadata.name}`, twin);
  }
  const out: { twin: string; namespace: string; message: string }[] = [];
  for (const hpa of objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
    const spec = (hpa as { spec?: { minReplicas?: number; scaleTargetRef?: { kind?: string; name?: string } } }).spec;
    const target = spec?.scaleTargetRef;
    const twin = target?.kind === 'Deployment' ? replaced.get(`${hpa.metadata.namespace ?? 'default'}/${target.name}`) : undefined;
    if (twin !== undefined && spec?.minReplicas === 0) {
      out.push({ twin, namespace: hpa.metadata.namespace ?? 'default', message: problem('HorizontalPodAutoscaler', hpa.metadata.name, `has minReplicas 0, so it may scale Deployment '${target!.name}' back up while the twin '${twin}' replaces it`,
        0, "Set minReplicas to 1 or more (an HPA leaves a target at 0 alone then), or give the twin mode 'side-by-side'") });
    }
  }
  return out;
}

/**
 * Every take-over problem among `objects` (a chart, an app, a program's resources): traffic splits
 * and autoscalers that would undo a replace. With `twin`, only those that concern that twin.
 */
export function takeOverProblems(objects: readonly KubeObject[], twin?: { readonly name: string; readonly namespace: string }): string[] {
  const splits = trafficSplits(objects).filter((s) => !twin || (s.service.namespace === twin.namespace && s.twins.includes(`StatefulSet/${twin.name}`)));
  const hpas = autoscalerProblems(objects).filter((h) => !twin || (h.namespace === twin.namespace && h.twin === twin.name));
  return [...splits.map((s) => s.message), ...hpas.map((h) => h.message)];
}
