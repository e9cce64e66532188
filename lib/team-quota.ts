/**
 * Quota arithmetic: what a team's environments will claim once admitted (with the LimitRange
 * defaults applied), and whether the ResourceQuota can hold it.
 */
import { KubeObject } from './k8s';
import { parseQuantity } from './names';
import {
  DEFAULT_CONTAINER_LIMIT, DEFAULT_CONTAINER_REQUEST, DEFAULT_PERSONAL_QUOTA, DEFAULT_QUOTA, TeamNamespaceSpec, TeamQuotaSpec,
} from './team-namespace-spec';

/** What the environments ask of the quota: the sums admission will add up. */
export interface Demand {
  readonly requestsCpu: number;
  readonly requestsMemory: number;
  readonly limitsCpu: number;
  readonly limitsMemory: number;
  /** True if some container ends up without a CPU / memory limit (a limits.* quota then rejects the pod). */
  readonly unlimitedCpu: boolean;
  readonly unlimitedMemory: boolean;
  readonly storage: number;
  readonly pods: number;
  readonly claims: number;
  /** Containers whose request would exceed their (defaulted) limit: `<workload>/<container> <resource>`. */
  readonly requestOverLimit: readonly string[];
}

/** The LimitRange defaults a container gets. */
export interface Defaults {
  readonly request: { readonly cpu?: string; readonly memory?: string };
  readonly limit: { readonly cpu?: string; readonly memory?: string };
}

/** The LimitRange defaults, resolved. */
export function containerDefaultsOf(spec: TeamNamespaceSpec): Defaults {
  return {
    request: spec.containerDefaults?.request ?? DEFAULT_CONTAINER_REQUEST,
    limit: spec.containerDefaults?.limit ?? DEFAULT_CONTAINER_LIMIT,
  };
}

type Res = { cpu?: string; memory?: string; storage?: string };
interface ContainerLike {
  readonly name?: string;
  readonly resources?: { readonly requests?: Res; readonly limits?: Res };
}

/**
 * The resources rendered objects will claim once admitted in a namespace with these container
 * defaults. A container's request is its own, else its limit (API defaulting), else the LimitRange
 * default; its limit is its own, else the LimitRange default. A pod counts
 * max(sum of containers, largest init container). Storage counts every PVC and claim template.
 */
export function environmentDemand(objects: readonly KubeObject[], defaults: Defaults): Demand {
  let requestsCpu = 0, requestsMemory = 0, limitsCpu = 0, limitsMemory = 0, storage = 0, pods = 0, claims = 0;
  let unlimitedCpu = false, unlimitedMemory = false;
  const over: string[] = [];
  const q = (v: string | undefined) => (v === undefined ? undefined : parseQuantity(v));
  const effective = (owner: string, c: ContainerLike) => {
    const r = c.resources ?? {};
    const out = { rc: 0, rm: 0, lc: undefined as number | undefined, lm: undefined as number | undefined };
    for (const [res, key] of [['cpu', 'c'], ['memory', 'm']] as const) {
      const limit = q(r.limits?.[res]) ?? q(defaults.limit[res]);
      const request = q(r.requests?.[res]) ?? q(r.limits?.[res]) ?? q(defaults.request[res]) ?? 0;
      if (limit !== undefined && request > limit) over.push(`${owner}/${c.name} ${res}`);
      if (key === 'c') { out.rc = request; out.lc = limit; } else { out.rm = request; out.lm = limit; }
    }
    return out;
  };
  for (const o of objects) {
    const spec = o.spec as Record<string, unknown> | undefined;
    let podSpec: Record<string, unknown> | undefined;
    let replicas = 1;
    if (o.kind === 'Pod') podSpec = spec;
    else if (spec && typeof spec.template === 'object' && spec.template !== null) {
      podSpec = (spec.template as { spec?: Record<string, unknown> }).spec;
      replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
    }
    if (o.kind === 'PersistentVolumeClaim') {
      claims += 1;
      storage += q((spec?.resources as { requests?: Res } | undefined)?.requests?.storage) ?? 0;
    }
    for (const t of (spec?.volumeClaimTemplates as { spec?: { resources?: { requests?: Res } } }[] | undefined) ?? []) {
      claims += replicas;
      storage += replicas * (q(t.spec?.resources?.requests?.storage) ?? 0);
    }
    if (!podSpec) continue;
    const owner = `${o.kind}/${o.metadata.name}`;
    const main = ((podSpec.containers as ContainerLike[] | undefined) ?? []).map((c) => effective(owner, c));
    const init = ((podSpec.initContainers as ContainerLike[] | undefined) ?? []).map((c) => effective(owner, c));
    const sum = (xs: (number | undefined)[]) => xs.reduce<number>((a, b) => a + (b ?? 0), 0);
    const max = (xs: (number | undefined)[]) => xs.reduce<number>((a, b) => Math.max(a, b ?? 0), 0);
    const all = [...main, ...init];
    if (all.some((c) => c.lc === undefined)) unlimitedCpu = true;
    if (all.some((c) => c.lm === undefined)) unlimitedMemory = true;
    pods += replicas;
    requestsCpu += replicas * Math.max(sum(main.map((c) => c.rc)), max(init.map((c) => c.rc)));
    requestsMemory += replicas * Math.max(sum(main.map((c) => c.rm)), max(init.map((c) => c.rm)));
    limitsCpu += replicas * Math.max(sum(main.map((c) => c.lc)), max(init.map((c) => c.lc)));
    limitsMemory += replicas * Math.max(sum(main.map((c) => c.lm)), max(init.map((c) => c.lm)));
  }
  return { requestsCpu, requestsMemory, limitsCpu, limitsMemory, unlimitedCpu, unlimitedMemory, storage, pods, claims, requestOverLimit: over };
}

/** A quantity for messages: cpu in millicores, bytes in Gi when whole, else Mi (rounded up). */
export function formatQuantity(value: number, resource: 'cpu' | 'bytes'): string {
  if (resource === 'cpu') {
    const milli = Math.ceil(Math.round(value * 1e6) / 1e3);
    return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
  }
  const gi = value / 2 ** 30;
  if (Number.isInteger(gi)) return `${gi}Gi`;
  return `${Math.ceil(value / 2 ** 20)}Mi`;
}

/** Which quota checkQuota() checks: its spec field (for paths and messages), values, and whose environments. */
export interface QuotaTarget {
  readonly field: 'quota' | 'personalQuota';
  readonly quota: ResolvedQuota;
  /** Appended to each problem, e.g. ` in the personal namespace of 'alice'`. */
  readonly where: string;
}

/** Adds a problem for each quota the environments' demands do not fit (the team's quota unless told). */
export function checkQuota(spec: TeamNamespaceSpec, demands: readonly Demand[], add: (path: string, what: string, got: unknown, fix: string) => void, target?: QuotaTarget): void {
  const total = demands.reduce(
    (a, d) => ({
      requestsCpu: a.requestsCpu + d.requestsCpu,
      requestsMemory: a.requestsMemory + d.requestsMemory,
      limitsCpu: a.limitsCpu + d.limitsCpu,
      limitsMemory: a.limitsMemory + d.limitsMemory,
      storage: a.storage + d.storage,
      pods: a.pods + d.pods,
      claims: a.claims + d.claims,
      unlimitedCpu: a.unlimitedCpu || d.unlimitedCpu,
      unlimitedMemory: a.unlimitedMemory || d.unlimitedMemory,
      requestOverLimit: [...a.requestOverLimit, ...d.requestOverLimit],
    }),
    { requestsCpu: 0, requestsMemory: 0, limitsCpu: 0, limitsMemory: 0, storage: 0, pods: 0, claims: 0, unlimitedCpu: false, unlimitedMemory: false, requestOverLimit: [] as string[] },
  );
  const { field: f, quota, where: w } = target ?? { field: 'quota', quota: resolvedQuota(spec), where: '' };
  const eps = 1e-9;
  const fits = (have: string, need: number) => parseQuantity(have) + eps >= need;
  if (!fits(quota.cpu, total.requestsCpu)) {
    add(`${f}.cpu`, `${f}.cpu (requests.cpu) cannot fit the environments' requests${w}`, quota.cpu, `The environments request ${formatQuantity(total.requestsCpu, 'cpu')} CPU: raise ${f}.cpu to at least '${formatQuantity(total.requestsCpu, 'cpu')}', or lower their requests`);
  }
  if (!fits(quota.memory, total.requestsMemory)) {
    add(`${f}.memory`, `${f}.memory (requests.memory) cannot fit the environments' requests${w}`, quota.memory, `The environments request ${formatQuantity(total.requestsMemory, 'bytes')} of memory: raise ${f}.memory to at least '${formatQuantity(total.requestsMemory, 'bytes')}', or lower their requests`);
  }
  if (quota.limitsCpu !== undefined) {
    if (total.unlimitedCpu) add(`${f}.limitsCpu`, `${f}.limitsCpu is set but some environment container${w} has no CPU limit, so its pod would be rejected`, quota.limitsCpu, 'Set containerDefaults.limit.cpu, or give every container a CPU limit');
    else if (!fits(quota.limitsCpu, total.limitsCpu)) add(`${f}.limitsCpu`, `${f}.limitsCpu (limits.cpu) cannot fit the environments' limits${w}`, quota.limitsCpu, `Raise ${f}.limitsCpu to at least '${formatQuantity(total.limitsCpu, 'cpu')}', or lower their limits`);
  }
  if (quota.limitsMemory !== undefined) {
    if (total.unlimitedMemory) add(`${f}.limitsMemory`, `${f}.limitsMemory is set but some environment container${w} has no memory limit, so its pod would be rejected`, quota.limitsMemory, 'Set containerDefaults.limit.memory, or give every container a memory limit');
    else if (!fits(quota.limitsMemory, total.limitsMemory)) add(`${f}.limitsMemory`, `${f}.limitsMemory (limits.memory) cannot fit the environments' limits${w}`, quota.limitsMemory, `Raise ${f}.limitsMemory to at least '${formatQuantity(total.limitsMemory, 'bytes')}', or lower their limits`);
  }
  if (!fits(quota.storage, total.storage)) {
    add(`${f}.storage`, `${f}.storage (requests.storage) cannot fit the environments' volumes${w}`, quota.storage, `The environments claim ${formatQuantity(total.storage, 'bytes')}: raise ${f}.storage to at least '${formatQuantity(total.storage, 'bytes')}', or shrink their workspaces and caches`);
  }
  if (quota.pods < total.pods) {
    add(`${f}.pods`, `${f}.pods cannot fit the environments${w}`, quota.pods, `The environments run ${total.pods} pods: raise ${f}.pods to at least ${total.pods}`);
  }
  if (quota.persistentVolumeClaims < total.claims) {
    add(`${f}.persistentVolumeClaims`, `${f}.persistentVolumeClaims cannot fit the environments' volumes${w}`, quota.persistentVolumeClaims, `The environments claim ${total.claims} volumes: raise ${f}.persistentVolumeClaims to at least ${total.claims}`);
  }
  for (const c of total.requestOverLimit) {
    add('containerDefaults.limit', `container ${c} requests more than the default limit it would get`, containerDefaultsOf(spec).limit, 'Give the container its own limit, or raise containerDefaults.limit');
  }
}

/** A quota with its defaults resolved. */
export interface ResolvedQuota {
  readonly cpu: string;
  readonly memory: string;
  readonly limitsCpu?: string;
  readonly limitsMemory?: string;
  readonly storage: string;
  readonly pods: number;
  readonly persistentVolumeClaims: number;
}

/** The team's quota with its defaults. */
export function resolvedQuota(spec: TeamNamespaceSpec): ResolvedQuota {
  return withDefaults(spec.quota ?? {}, DEFAULT_QUOTA);
}

/** A quota spec over the given defaults (no limit quotas unless set). */
export function withDefaults(q: TeamQuotaSpec, d: typeof DEFAULT_QUOTA | typeof DEFAULT_PERSONAL_QUOTA): ResolvedQuota {
  return {
    cpu: q.cpu ?? d.cpu,
    memory: q.memory ?? d.memory,
    limitsCpu: q.limitsCpu,
    limitsMemory: q.limitsMemory,
    storage: q.storage ?? d.storage,
    pods: q.pods ?? d.pods,
    persistentVolumeClaims: q.persistentVolumeClaims ?? d.persistentVolumeClaims,
  };
}
