/**
 * The TeamNamespace model: a team's namespace with Pod Security labels, quota, default container
 * limits, network isolation and least-privilege RBAC for its members, CI and the dev environments
 * it hosts. validateTeamNamespace() collects every problem; renderTeamNamespace() writes the objects,
 * in apply order. The environments themselves are rendered by renderDevEnvironment(); this model
 * only reads them (owners for exec/port-forward, requests for the quota).
 */
import { DevEnvironmentSpec, MANAGED_BY_LABEL, attachRecordOf, renderDevEnvironment, validateDevEnvironment } from './dev-environment';
import { KubeObject, plain } from './k8s';
import { isDnsLabel, isDnsSubdomain, isQuantity, parseQuantity, slug } from './names';
import { ValidationError, problem } from './problems';
import { PolicyRule, TEAM_ROLES, TeamRole, adminRules, attachRules, ciRules, developerRules, viewerRules } from './rbac';

export { TEAM_ROLES, type TeamRole } from './rbac';

/** Labels every team object carries. */
export const TEAM_LABEL = 'kubedev.io/team';
export const MANAGED_BY = 'kubedev';
/** Pod Security Standards level enforced, audited and warned about by default. */
export const DEFAULT_POD_SECURITY: PodSecurityLevel = 'restricted';
/** @see https://kubernetes.io/docs/concepts/security/pod-security-admission/#pod-security-admission-labels-for-namespaces */
export const POD_SECURITY_LABEL = 'pod-security.kubernetes.io';
/** Quota defaults: room for a handful of environments. */
export const DEFAULT_QUOTA = {
  cpu: '8',
  memory: '16Gi',
  storage: '200Gi',
  pods: 20,
  persistentVolumeClaims: 30,
} as const;
/** What a container gets when it declares nothing. No CPU limit by default: dev tools burst. */
export const DEFAULT_CONTAINER_REQUEST = { cpu: '100m', memory: '256Mi' } as const;
export const DEFAULT_CONTAINER_LIMIT = { memory: '4Gi' } as const;
/** Where cluster DNS runs (kube-dns and CoreDNS both carry this label). */
export const DEFAULT_DNS = { namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } } as const;
/** The objects CI applies when the team hosts no environment yet: what renderDevEnvironment() emits. */
export const DEFAULT_CI_KINDS: readonly string[] = ['ConfigMap', 'PersistentVolumeClaim', 'Service', 'StatefulSet'];

const RBAC_GROUP = 'rbac.authorization.k8s.io';
const KIND = 'TeamNamespace';

export type PodSecurityLevel = 'privileged' | 'baseline' | 'restricted';

/**
 * One member of the team: exactly one of `user`, `group`, `serviceAccount`, with a role.
 * @see https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-subjects
 */
export interface TeamMemberSpec {
  /** A user name as the cluster authenticates it (often an e-mail). */
  readonly user?: string;
  /** A group as the OIDC provider names it. */
  readonly group?: string;
  /** A ServiceAccount's name. */
  readonly serviceAccount?: string;
  /** The ServiceAccount's namespace. @default the team namespace */
  readonly serviceAccountNamespace?: string;
  readonly role: TeamRole;
}

/** A ServiceAccount a CI pipeline uses to apply synthesized YAML into the namespace. */
export interface CiServiceAccountSpec {
  readonly name: string;
  /** e.g. workload-identity annotations. @default {} */
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Namespace-wide totals. @see https://kubernetes.io/docs/concepts/policy/resource-quotas/ */
export interface TeamQuotaSpec {
  /** `requests.cpu`. @default '8' */
  readonly cpu?: string;
  /** `requests.memory`. @default '16Gi' */
  readonly memory?: string;
  /** `limits.cpu`. @default no limit quota */
  readonly limitsCpu?: string;
  /** `limits.memory`. @default no limit quota */
  readonly limitsMemory?: string;
  /** `requests.storage` (all PVCs). @default '200Gi' */
  readonly storage?: string;
  /** `pods`. @default 20 */
  readonly pods?: number;
  /** `persistentvolumeclaims`. @default 30 */
  readonly persistentVolumeClaims?: number;
}

/** Default requests and limits for containers that declare none. @see https://kubernetes.io/docs/concepts/policy/limit-range/ */
export interface ContainerDefaultsSpec {
  /** @default { cpu: '100m', memory: '256Mi' } */
  readonly request?: { readonly cpu?: string; readonly memory?: string };
  /** @default { memory: '4Gi' } (no CPU limit) */
  readonly limit?: { readonly cpu?: string; readonly memory?: string };
}

/** A NetworkPolicy peer, as Kubernetes takes it. @see https://kubernetes.io/docs/concepts/services-networking/network-policies/ */
export interface NetworkPeerSpec {
  readonly podSelector?: { readonly matchLabels?: Readonly<Record<string, string>> };
  readonly namespaceSelector?: { readonly matchLabels?: Readonly<Record<string, string>> };
  readonly ipBlock?: { readonly cidr: string; readonly except?: readonly string[] };
}

export interface NetworkPortSpec {
  readonly port: number;
  /** @default 'TCP' */
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
}

/** Traffic allowed beyond the default isolation; rendered as NetworkPolicy `<team>-allow-<name>`. */
export interface NetworkAllowanceSpec {
  /** DNS-1123 label. */
  readonly name: string;
  /** Which of the team's pods it applies to. @default all */
  readonly podLabels?: Readonly<Record<string, string>>;
  /** Peers that may connect in. @default none */
  readonly ingressFrom?: readonly NetworkPeerSpec[];
  /** Peers the pods may connect to. @default none */
  readonly egressTo?: readonly NetworkPeerSpec[];
  /** Ports the allowance is limited to. @default all ports */
  readonly ports?: readonly NetworkPortSpec[];
}

export interface TeamNetworkSpec {
  /** Ingress only from the namespace, egress only to it and to DNS. @default true */
  readonly isolate?: boolean;
  /** Where DNS runs. @default { namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } } */
  readonly dns?: { readonly namespace: string; readonly podLabels: Readonly<Record<string, string>> };
  /** @default [] */
  readonly allow?: readonly NetworkAllowanceSpec[];
}

/** @see https://kubernetes.io/docs/concepts/security/pod-security-admission/ */
export interface PodSecuritySpec {
  /** @default 'restricted' */
  readonly enforce?: PodSecurityLevel;
  /** @default 'restricted' */
  readonly audit?: PodSecurityLevel;
  /** @default 'restricted' */
  readonly warn?: PodSecurityLevel;
  /** @default 'latest' */
  readonly version?: string;
}

/** A dev environment the namespace hosts; `namespace` may be left out (it is the team's). */
export type TeamEnvironmentSpec = Omit<DevEnvironmentSpec, 'namespace'> & { readonly namespace?: string };

export interface TeamNamespaceSpec {
  /** DNS-1123 label; prefixes the names of the team's objects. */
  readonly team: string;
  /** DNS-1123 label. @default the team name */
  readonly namespace?: string;
  /** @default [] */
  readonly members?: readonly TeamMemberSpec[];
  /** @default [] */
  readonly ci?: readonly CiServiceAccountSpec[];
  /** @default DEFAULT_QUOTA */
  readonly quota?: TeamQuotaSpec;
  /** @default DEFAULT_CONTAINER_REQUEST, DEFAULT_CONTAINER_LIMIT */
  readonly containerDefaults?: ContainerDefaultsSpec;
  /** @default isolated */
  readonly network?: TeamNetworkSpec;
  /** @default enforce, audit and warn 'restricted' */
  readonly podSecurity?: PodSecuritySpec;
  /** @default [] */
  readonly environments?: readonly TeamEnvironmentSpec[];
  /** Extra labels on every object. @default {} */
  readonly labels?: Readonly<Record<string, string>>;
}

/** A problem with the property path it concerns (for pulumi.InputPropertiesError). */
export interface TeamProblem {
  readonly path: string;
  readonly message: string;
}

/** An RBAC subject. */
export interface Subject {
  readonly kind: 'User' | 'Group' | 'ServiceAccount';
  readonly name: string;
  readonly apiGroup?: string;
  readonly namespace?: string;
}

/** The namespace name: `namespace` or the team name. */
export function teamNamespaceName(spec: TeamNamespaceSpec): string {
  return spec.namespace ?? spec.team;
}

/** The environments with their namespace filled in. */
export function teamEnvironments(spec: TeamNamespaceSpec): DevEnvironmentSpec[] {
  const ns = teamNamespaceName(spec);
  return (spec.environments ?? []).map((e) => ({ ...e, namespace: e.namespace ?? ns }));
}

/** The RBAC subject a member names (assumes exactly one of user/group/serviceAccount). */
export function memberSubject(spec: TeamNamespaceSpec, m: TeamMemberSpec): Subject {
  if (m.user !== undefined) return { kind: 'User', apiGroup: RBAC_GROUP, name: m.user };
  if (m.group !== undefined) return { kind: 'Group', apiGroup: RBAC_GROUP, name: m.group };
  return { kind: 'ServiceAccount', name: m.serviceAccount ?? '', namespace: m.serviceAccountNamespace ?? teamNamespaceName(spec) };
}

const subjectKey = (s: Subject): string => `${s.kind}:${s.namespace ?? ''}/${s.name}`;
const describeSubject = (s: Subject): string =>
  s.kind === 'ServiceAccount' ? `ServiceAccount '${s.namespace}/${s.name}'` : `${s.kind} '${s.name}'`;

/** The member an environment's owner names: a user, group or ServiceAccount of that name (first match). */
export function findOwner(spec: TeamNamespaceSpec, owner: string): TeamMemberSpec | undefined {
  const members = spec.members ?? [];
  return (
    members.find((m) => m.user === owner) ??
    members.find((m) => m.group === owner) ??
    members.find((m) => m.serviceAccount !== undefined && (m.serviceAccount === owner || `system:serviceaccount:${memberSubject(spec, m).namespace}:${m.serviceAccount}` === owner))
  );
}

/** Names of the team's objects. */
export const teamObjectNames = {
  quota: (team: string) => `${team}-quota`,
  limits: (team: string) => `${team}-limits`,
  isolate: (team: string) => `${team}-isolate`,
  allow: (team: string, name: string) => `${team}-allow-${name}`,
  role: (team: string, role: TeamRole | 'ci') => `${team}-${role}`,
  attach: (team: string, owner: string) => `${team}-attach-${slug(owner, 40)}`,
};

/** The pod a dev environment runs in: StatefulSet pod names are stable. */
export function environmentPod(envName: string): string {
  return `${envName}-0`;
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/** Every problem, each with the property path it concerns. */
export function validateTeamNamespaceAt(spec: TeamNamespaceSpec): TeamProblem[] {
  const out: TeamProblem[] = [];
  const team = typeof spec?.team === 'string' && spec.team !== '' ? spec.team : '?';
  const add = (path: string, what: string, got: unknown, fix: string) => out.push({ path, message: problem(KIND, team, what, got, fix) });

  if (spec === null || typeof spec !== 'object') {
    return [{ path: '', message: problem(KIND, team, 'the spec is not an object', spec, 'Pass { team, members, ... }') }];
  }
  // Role and object names are `<team>-attach-<owner>`: keep the team short enough for them.
  if (!isDnsLabel(spec.team, 40)) {
    add('team', 'team name is not a DNS-1123 label of at most 40 characters', spec.team, "Use lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. 'payments'");
  }
  if (spec.namespace !== undefined && !isDnsLabel(spec.namespace)) {
    add('namespace', 'namespace is not a DNS-1123 label', spec.namespace, "Use at most 63 lowercase letters, digits and '-', e.g. 'team-payments'");
  }
  // Shapes first (stack config arrives as untyped YAML): deeper checks assume them.
  const beforeShapes = out.length;
  const isObject = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const examples: Record<string, string> = {
    members: "[{ user: 'alice@example.com', role: 'developer' }]",
    ci: "[{ name: 'deployer' }]",
    environments: "[{ name: 'api', owner: 'alice@example.com', image: 'node:20' }]",
  };
  for (const f of ['members', 'ci', 'environments'] as const) {
    const v: unknown = spec[f];
    if (v === undefined) continue;
    if (!Array.isArray(v)) add(f, `${f} is not a list`, v, `Write ${f} as a list, e.g. ${examples[f]}`);
    else v.forEach((item, i) => { if (!isObject(item)) add(`${f}[${i}]`, `${f}[${i}] is not an object`, item, `Write it as e.g. ${examples[f].slice(1, -1)}`); });
  }
  for (const f of ['quota', 'containerDefaults', 'network', 'podSecurity', 'labels'] as const) {
    if (spec[f] !== undefined && !isObject(spec[f])) add(f, `${f} is not an object`, spec[f], `Write ${f} as a mapping of its fields`);
  }
  if (isObject(spec.network) && spec.network!.allow !== undefined && !Array.isArray(spec.network!.allow)) {
    add('network.allow', 'network.allow is not a list', spec.network!.allow, "Write it as a list, e.g. [{ name: 'https-out', egressTo: [...] }]");
  }
  if (isObject(spec.labels)) {
    for (const [k, v] of Object.entries(spec.labels!)) {
      if (typeof v !== 'string') add(`labels.${k}`, `label '${k}' is not a string`, v, 'Quote the value in YAML, e.g. "true"');
    }
  }
  if (out.length > beforeShapes) return out;
  const ns = teamNamespaceName(spec);

  // Members.
  const seen = new Map<string, { index: number; role: unknown }>();
  (spec.members ?? []).forEach((m, i) => {
    const path = `members[${i}]`;
    const given = (['user', 'group', 'serviceAccount'] as const).filter((k) => m?.[k] !== undefined);
    if (given.length !== 1) {
      add(path, `member ${i} must name exactly one of user, group or serviceAccount`, given, "Write e.g. { user: 'alice@example.com', role: 'developer' }");
      return;
    }
    const field = given[0];
    const value = m[field];
    if (typeof value !== 'string' || value.trim() === '') {
      add(`${path}.${field}`, `member ${i} has an empty ${field}`, value, `Give the ${field} name as the cluster knows it`);
      return;
    }
    if (field === 'serviceAccount' && !isDnsSubdomain(value)) {
      add(`${path}.serviceAccount`, `member ${i} names an invalid ServiceAccount`, value, 'ServiceAccount names are DNS-1123 subdomains, e.g. \'deployer\'');
    }
    if (m.serviceAccountNamespace !== undefined && (field !== 'serviceAccount' || !isDnsLabel(m.serviceAccountNamespace))) {
      add(`${path}.serviceAccountNamespace`, `member ${i} has a serviceAccountNamespace that is not a namespace name of a ServiceAccount member`, m.serviceAccountNamespace, 'Use it only with serviceAccount, as a DNS-1123 label');
    }
    if (!(TEAM_ROLES as readonly string[]).includes(m.role as string)) {
      const guess = typeof m.role === 'string' ? TEAM_ROLES.find((r) => r.startsWith(m.role.toLowerCase().slice(0, 3))) : undefined;
      add(`${path}.role`, `member ${i} has an unknown role`, m.role, `${guess ? `Did you mean '${guess}'? ` : ''}Use one of 'developer', 'viewer', 'admin'`);
    }
    const key = subjectKey(memberSubject(spec, m));
    const before = seen.get(key);
    if (before) {
      add(path, `${describeSubject(memberSubject(spec, m))} is listed twice, as members ${before.index} and ${i}`, [before.role, m.role], 'Give each user, group or service account one entry with one role');
    } else {
      seen.set(key, { index: i, role: m.role });
    }
  });

  // CI service accounts.
  const ciNames = new Set<string>();
  (spec.ci ?? []).forEach((c, i) => {
    if (!isDnsSubdomain(c?.name)) {
      add(`ci[${i}].name`, `CI service account ${i} has an invalid name`, c?.name, "ServiceAccount names are DNS-1123 subdomains, e.g. 'deployer'");
    } else if (ciNames.has(c.name)) {
      add(`ci[${i}].name`, `CI service account '${c.name}' is declared twice`, c.name, 'Declare each CI service account once');
    }
    if (typeof c?.name === 'string') ciNames.add(c.name);
  });

  // Quota and container defaults: quantities first.
  const quota = spec.quota ?? {};
  for (const key of ['cpu', 'memory', 'limitsCpu', 'limitsMemory', 'storage'] as const) {
    if (quota[key] !== undefined && !isQuantity(quota[key])) {
      add(`quota.${key}`, `quota.${key} is not a Kubernetes quantity`, quota[key], "Write e.g. '4', '500m', '16Gi'");
    }
  }
  for (const key of ['pods', 'persistentVolumeClaims'] as const) {
    const v = quota[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) add(`quota.${key}`, `quota.${key} is not a whole number`, v, 'Write a count, e.g. 20');
  }
  const cd = spec.containerDefaults ?? {};
  for (const part of ['request', 'limit'] as const) {
    for (const res of ['cpu', 'memory'] as const) {
      const v = cd[part]?.[res];
      if (v !== undefined && !isQuantity(v)) add(`containerDefaults.${part}.${res}`, `containerDefaults.${part}.${res} is not a Kubernetes quantity`, v, "Write e.g. '500m' or '1Gi'");
    }
  }

  // Pod Security.
  const levels: readonly string[] = ['privileged', 'baseline', 'restricted'];
  for (const mode of ['enforce', 'audit', 'warn'] as const) {
    const v = spec.podSecurity?.[mode];
    if (v !== undefined && !levels.includes(v)) add(`podSecurity.${mode}`, `podSecurity.${mode} is not a Pod Security level`, v, "Use 'restricted', 'baseline' or 'privileged'");
  }

  // Network allowances.
  const allowNames = new Set<string>();
  (spec.network?.allow ?? []).forEach((a, i) => {
    const path = `network.allow[${i}]`;
    if (!isDnsLabel(a?.name, 40)) add(`${path}.name`, `network allowance ${i} has an invalid name`, a?.name, "Use a DNS-1123 label of at most 40 characters, e.g. 'https-out'");
    else if (allowNames.has(a.name)) add(`${path}.name`, `network allowance '${a.name}' is declared twice`, a.name, 'Give each allowance its own name');
    if (typeof a?.name === 'string') allowNames.add(a.name);
    if ((a?.ingressFrom ?? []).length === 0 && (a?.egressTo ?? []).length === 0) {
      add(path, `network allowance '${a?.name}' allows nothing`, a, 'Give it ingressFrom or egressTo peers');
    }
    (a?.ports ?? []).forEach((p, j) => {
      if (!Number.isInteger(p?.port) || p.port < 1 || p.port > 65535) add(`${path}.ports[${j}].port`, `network allowance '${a.name}' has an invalid port`, p?.port, 'Use a port number from 1 to 65535');
    });
  });

  // Environments: their own problems, namespace, owners, and whether the quota can hold them.
  const envNames = new Set<string>();
  const attachNames = new Map<string, string>();
  const demands: Demand[] = [];
  (spec.environments ?? []).forEach((e, i) => {
    const path = `environments[${i}]`;
    const env: DevEnvironmentSpec = { ...e, namespace: e?.namespace ?? ns };
    if (e?.namespace !== undefined && e.namespace !== ns) {
      add(`${path}.namespace`, `environment '${e.name}' is in another namespace`, e.namespace, `Leave namespace out, or set it to '${ns}'`);
    }
    if (envNames.has(e?.name)) add(`${path}.name`, `environment '${e.name}' is declared twice`, e.name, 'Give each environment its own name');
    envNames.add(e?.name);
    const envProblems = validateDevEnvironment(env);
    for (const p of envProblems) out.push({ path, message: p });
    if (typeof e?.owner === 'string' && e.owner !== '') {
      const owner = findOwner(spec, e.owner);
      if (!owner) {
        add(`${path}.owner`, `environment '${e.name}' is owned by a subject with no role in the team`, e.owner, `Add a member { user: '${e.owner}', role: 'developer' }, or change the owner`);
      } else if (owner.role === 'viewer') {
        add(`${path}.owner`, `environment '${e.name}' is owned by a viewer, who may not exec or port-forward`, e.owner, `Make '${e.owner}' a developer or an admin, or change the owner`);
      } else {
        const roleName = teamObjectNames.attach(team, e.owner);
        const other = attachNames.get(roleName);
        if (other !== undefined && other !== e.owner) {
          add(`${path}.owner`, `owners '${other}' and '${e.owner}' map to the same Role name '${roleName}'`, e.owner, 'Use owner names that differ in letters or digits');
        }
        attachNames.set(roleName, e.owner);
      }
    }
    if (envProblems.length === 0) {
      demands.push(environmentDemand(renderDevEnvironment(env), containerDefaultsOf(spec)));
      for (const [field, what, got] of podSecurityConflicts(env, spec.podSecurity?.enforce ?? DEFAULT_POD_SECURITY)) {
        const level = spec.podSecurity?.enforce ?? DEFAULT_POD_SECURITY;
        add(`${path}.security.${field}`, `environment '${e.name}' asks for ${what}, which the namespace's Pod Security level '${level}' (podSecurity.enforce) rejects`, got, `Drop the relaxation, or set podSecurity.enforce to '${level === 'restricted' ? 'baseline' : 'privileged'}' if the team accepts it`);
      }
    }
  });
  if (demands.length > 0 && !out.some((p) => p.path.startsWith('quota') || p.path.startsWith('containerDefaults'))) {
    checkQuota(spec, demands, add);
  }
  return out;
}

/** Capabilities Pod Security "baseline" lets a container add. @see https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline */
export const BASELINE_CAPABILITIES: readonly string[] = [
  'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT',
];

/**
 * The environment's security relaxations that a namespace enforcing `level` would reject, as
 * [field, description, value]. "restricted" forbids root, privilege escalation and every added
 * capability but NET_BIND_SERVICE; "baseline" forbids capabilities outside BASELINE_CAPABILITIES.
 * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/
 */
export function podSecurityConflicts(env: DevEnvironmentSpec, level: PodSecurityLevel): [string, string, unknown][] {
  const s = env.security ?? {};
  const out: [string, string, unknown][] = [];
  if (level === 'privileged') return out;
  const caps = (s.addCapabilities ?? []).map((c) => c.replace(/^CAP_/, ''));
  if (level === 'restricted') {
    if (s.runAsRoot) out.push(['runAsRoot', 'root (security.runAsRoot)', s.runAsRoot]);
    if (s.allowPrivilegeEscalation) out.push(['allowPrivilegeEscalation', 'privilege escalation (security.allowPrivilegeEscalation)', s.allowPrivilegeEscalation]);
    const bad = caps.filter((c) => c !== 'NET_BIND_SERVICE');
    if (bad.length > 0) out.push(['addCapabilities', `capabilities ${bad.join(', ')} (security.addCapabilities)`, s.addCapabilities]);
  } else {
    const bad = caps.filter((c) => !BASELINE_CAPABILITIES.includes(c));
    if (bad.length > 0) out.push(['addCapabilities', `capabilities ${bad.join(', ')} (security.addCapabilities)`, s.addCapabilities]);
  }
  return out;
}

/** Every problem, as messages: `TeamNamespace '<team>': <problem> (got <value>). <fix>.` */
export function validateTeamNamespace(spec: TeamNamespaceSpec): string[] {
  return validateTeamNamespaceAt(spec).map((p) => p.message);
}

// ---------------------------------------------------------------------------------------------
// Quota arithmetic
// ---------------------------------------------------------------------------------------------

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

interface Defaults {
  readonly request: { readonly cpu?: string; readonly memory?: string };
  readonly limit: { readonly cpu?: string; readonly memory?: string };
}

function containerDefaultsOf(spec: TeamNamespaceSpec): Defaults {
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

function checkQuota(spec: TeamNamespaceSpec, demands: readonly Demand[], add: (path: string, what: string, got: unknown, fix: string) => void): void {
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
  const quota = resolvedQuota(spec);
  const eps = 1e-9;
  const fits = (have: string, need: number) => parseQuantity(have) + eps >= need;
  if (!fits(quota.cpu, total.requestsCpu)) {
    add('quota.cpu', "quota.cpu (requests.cpu) cannot fit the environments' requests", quota.cpu, `The environments request ${formatQuantity(total.requestsCpu, 'cpu')} CPU: raise quota.cpu to at least '${formatQuantity(total.requestsCpu, 'cpu')}', or lower their requests`);
  }
  if (!fits(quota.memory, total.requestsMemory)) {
    add('quota.memory', "quota.memory (requests.memory) cannot fit the environments' requests", quota.memory, `The environments request ${formatQuantity(total.requestsMemory, 'bytes')} of memory: raise quota.memory to at least '${formatQuantity(total.requestsMemory, 'bytes')}', or lower their requests`);
  }
  if (quota.limitsCpu !== undefined) {
    if (total.unlimitedCpu) add('quota.limitsCpu', 'quota.limitsCpu is set but some environment container has no CPU limit, so its pod would be rejected', quota.limitsCpu, 'Set containerDefaults.limit.cpu, or give every container a CPU limit');
    else if (!fits(quota.limitsCpu, total.limitsCpu)) add('quota.limitsCpu', "quota.limitsCpu (limits.cpu) cannot fit the environments' limits", quota.limitsCpu, `Raise quota.limitsCpu to at least '${formatQuantity(total.limitsCpu, 'cpu')}', or lower their limits`);
  }
  if (quota.limitsMemory !== undefined) {
    if (total.unlimitedMemory) add('quota.limitsMemory', 'quota.limitsMemory is set but some environment container has no memory limit, so its pod would be rejected', quota.limitsMemory, 'Set containerDefaults.limit.memory, or give every container a memory limit');
    else if (!fits(quota.limitsMemory, total.limitsMemory)) add('quota.limitsMemory', "quota.limitsMemory (limits.memory) cannot fit the environments' limits", quota.limitsMemory, `Raise quota.limitsMemory to at least '${formatQuantity(total.limitsMemory, 'bytes')}', or lower their limits`);
  }
  if (!fits(quota.storage, total.storage)) {
    add('quota.storage', "quota.storage (requests.storage) cannot fit the environments' volumes", quota.storage, `The environments claim ${formatQuantity(total.storage, 'bytes')}: raise quota.storage to at least '${formatQuantity(total.storage, 'bytes')}', or shrink their workspaces and caches`);
  }
  if (quota.pods < total.pods) {
    add('quota.pods', 'quota.pods cannot fit the environments', quota.pods, `The environments run ${total.pods} pods: raise quota.pods to at least ${total.pods}`);
  }
  if (quota.persistentVolumeClaims < total.claims) {
    add('quota.persistentVolumeClaims', "quota.persistentVolumeClaims cannot fit the environments' volumes", quota.persistentVolumeClaims, `The environments claim ${total.claims} volumes: raise quota.persistentVolumeClaims to at least ${total.claims}`);
  }
  for (const c of total.requestOverLimit) {
    add('containerDefaults.limit', `container ${c} requests more than the default limit it would get`, containerDefaultsOf(spec).limit, 'Give the container its own limit, or raise containerDefaults.limit');
  }
}

function resolvedQuota(spec: TeamNamespaceSpec) {
  const q = spec.quota ?? {};
  return {
    cpu: q.cpu ?? DEFAULT_QUOTA.cpu,
    memory: q.memory ?? DEFAULT_QUOTA.memory,
    limitsCpu: q.limitsCpu,
    limitsMemory: q.limitsMemory,
    storage: q.storage ?? DEFAULT_QUOTA.storage,
    pods: q.pods ?? DEFAULT_QUOTA.pods,
    persistentVolumeClaims: q.persistentVolumeClaims ?? DEFAULT_QUOTA.persistentVolumeClaims,
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/** The kinds CI applies: what the hosted environments render, or DEFAULT_CI_KINDS when there are none. */
export function ciKinds(spec: TeamNamespaceSpec): string[] {
  const envs = teamEnvironments(spec);
  if (envs.length === 0) return [...DEFAULT_CI_KINDS];
  const kinds = new Set<string>();
  for (const e of envs) for (const o of renderDevEnvironment(e)) kinds.add(o.kind);
  return [...kinds].sort();
}

/** Each owner's environments' SSH key Secrets (host key, authorized_keys), owners in first-seen order. */
export function ownedKeySecrets(spec: TeamNamespaceSpec): Map<string, string[]> {
  const owned = new Map<string, string[]>();
  for (const e of teamEnvironments(spec)) {
    const { ssh } = attachRecordOf(e);
    owned.set(e.owner, [...(owned.get(e.owner) ?? []), ssh.hostKeySecret, ssh.authorizedKeysSecret]);
  }
  return owned;
}

/** Each owner's environment pods (owners in first-seen order). */
export function ownedPods(spec: TeamNamespaceSpec): Map<string, string[]> {
  const owned = new Map<string, string[]>();
  for (const e of spec.environments ?? []) {
    const pods = owned.get(e.owner) ?? [];
    pods.push(environmentPod(e.name));
    owned.set(e.owner, pods);
  }
  return owned;
}

/**
 * Renders the team's objects in apply order: Namespace, ResourceQuota, LimitRange, NetworkPolicies,
 * ServiceAccounts, Roles, RoleBindings. Plain JSON.
 * @throws ValidationError with every problem if the spec is invalid.
 */
export function renderTeamNamespace(spec: TeamNamespaceSpec): KubeObject[] {
  const problems = validateTeamNamespace(spec);
  if (problems.length > 0) throw new ValidationError(problems);
  const team = spec.team;
  const ns = teamNamespaceName(spec);
  const labels = { ...(spec.labels ?? {}), [MANAGED_BY_LABEL]: MANAGED_BY, [TEAM_LABEL]: team };
  const meta = (name: string) => ({ name, namespace: ns, labels });
  const out: KubeObject[] = [];

  const pss = spec.podSecurity ?? {};
  const version = pss.version ?? 'latest';
  out.push({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: ns,
      labels: {
        ...labels,
        [`${POD_SECURITY_LABEL}/enforce`]: pss.enforce ?? DEFAULT_POD_SECURITY,
        [`${POD_SECURITY_LABEL}/enforce-version`]: version,
        [`${POD_SECURITY_LABEL}/audit`]: pss.audit ?? DEFAULT_POD_SECURITY,
        [`${POD_SECURITY_LABEL}/audit-version`]: version,
        [`${POD_SECURITY_LABEL}/warn`]: pss.warn ?? DEFAULT_POD_SECURITY,
        [`${POD_SECURITY_LABEL}/warn-version`]: version,
      },
    },
  });

  const quota = resolvedQuota(spec);
  const hard: Record<string, string> = {
    'requests.cpu': quota.cpu,
    'requests.memory': quota.memory,
    ...(quota.limitsCpu !== undefined ? { 'limits.cpu': quota.limitsCpu } : {}),
    ...(quota.limitsMemory !== undefined ? { 'limits.memory': quota.limitsMemory } : {}),
    'requests.storage': quota.storage,
    pods: String(quota.pods),
    persistentvolumeclaims: String(quota.persistentVolumeClaims),
  };
  out.push({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: meta(teamObjectNames.quota(team)), spec: { hard } });

  const defaults = containerDefaultsOf(spec);
  out.push({
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: meta(teamObjectNames.limits(team)),
    spec: {
      limits: [
        {
          type: 'Container',
          defaultRequest: { ...defaults.request },
          ...(Object.keys(defaults.limit).length > 0 ? { default: { ...defaults.limit } } : {}),
        },
      ],
    },
  });

  out.push(...renderNetworkPolicies(spec, meta));

  for (const c of spec.ci ?? []) {
    out.push({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { ...meta(c.name), ...(c.annotations && Object.keys(c.annotations).length > 0 ? { annotations: { ...c.annotations } } : {}) },
    });
  }

  // Roles, then bindings, in the same order.
  const roles: { name: string; rules: PolicyRule[]; subjects: Subject[] }[] = [
    { name: teamObjectNames.role(team, 'developer'), rules: developerRules(), subjects: subjectsWith(spec, 'developer') },
    { name: teamObjectNames.role(team, 'viewer'), rules: viewerRules(), subjects: subjectsWith(spec, 'viewer') },
    { name: teamObjectNames.role(team, 'admin'), rules: adminRules(), subjects: subjectsWith(spec, 'admin') },
  ];
  if ((spec.ci ?? []).length > 0) {
    roles.push({
      name: teamObjectNames.role(team, 'ci'),
      rules: ciRules(ciKinds(spec)),
      subjects: (spec.ci ?? []).map((c) => ({ kind: 'ServiceAccount' as const, name: c.name, namespace: ns })),
    });
  }
  const keySecrets = ownedKeySecrets(spec);
  for (const [owner, pods] of ownedPods(spec)) {
    const member = findOwner(spec, owner)!;
    roles.push({ name: teamObjectNames.attach(team, owner), rules: attachRules(pods, keySecrets.get(owner)), subjects: [memberSubject(spec, member)] });
  }
  for (const r of roles) {
    out.push({ apiVersion: `${RBAC_GROUP}/v1`, kind: 'Role', metadata: meta(r.name), rules: r.rules });
  }
  for (const r of roles) {
    if (r.subjects.length === 0) continue;
    out.push({
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: 'RoleBinding',
      metadata: meta(r.name),
      roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name: r.name },
      subjects: r.subjects,
    });
  }
  return plain(out);
}

function subjectsWith(spec: TeamNamespaceSpec, role: TeamRole): Subject[] {
  return (spec.members ?? []).filter((m) => m.role === role).map((m) => memberSubject(spec, m));
}

function renderNetworkPolicies(spec: TeamNamespaceSpec, meta: (name: string) => object): KubeObject[] {
  const net = spec.network ?? {};
  const out: KubeObject[] = [];
  const team = spec.team;
  if (net.isolate ?? true) {
    const dns = net.dns ?? DEFAULT_DNS;
    out.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta(teamObjectNames.isolate(team)) as KubeObject['metadata'],
      spec: {
        podSelector: {},
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: {} }] }],
        egress: [
          { to: [{ podSelector: {} }] },
          {
            to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': dns.namespace } }, podSelector: { matchLabels: { ...dns.podLabels } } }],
            ports: [
              { port: 53, protocol: 'UDP' },
              { port: 53, protocol: 'TCP' },
            ],
          },
        ],
      },
    });
  }
  for (const a of net.allow ?? []) {
    const ports = a.ports?.map((p) => ({ port: p.port, protocol: p.protocol ?? 'TCP' }));
    const types = [...((a.ingressFrom ?? []).length > 0 ? ['Ingress'] : []), ...((a.egressTo ?? []).length > 0 ? ['Egress'] : [])];
    out.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta(teamObjectNames.allow(team, a.name)) as KubeObject['metadata'],
      spec: {
        podSelector: a.podLabels ? { matchLabels: { ...a.podLabels } } : {},
        policyTypes: types,
        ...(types.includes('Ingress') ? { ingress: [{ from: a.ingressFrom, ...(ports ? { ports } : {}) }] } : {}),
        ...(types.includes('Egress') ? { egress: [{ to: a.egressTo, ...(ports ? { ports } : {}) }] } : {}),
      },
    });
  }
  return out;
}
