/**
 * The TeamNamespace model: spec (team-namespace-spec), validation (team-namespace-validate), quota
 * arithmetic (team-quota) and renderTeamNamespace(), which writes the objects in apply order. The
 * environments themselves are rendered by renderDevEnvironment(); this model only reads them
 * (owners for exec/port-forward, requests for the quota).
 */
import { DevEnvironmentSpec, MANAGED_BY_LABEL, OWNER_ANNOTATION, attachRecordOf, renderDevEnvironment } from './dev-environment';
import { KubeObject, plain } from './k8s';
import { ValidationError } from './problems';
import {
  OwnedObjects, PolicyRule, TeamRole, adminRules, attachRules, ciRules, developerRules, ownerObjectRules, personalDeveloperRules, sharedDeveloperRules,
  viewerRules,
} from './rbac';
import {
  CiServiceAccountSpec, DEFAULT_CI_KINDS, DEFAULT_DNS, DEFAULT_POD_SECURITY, ISOLATION_LABEL, MANAGED_BY, POD_SECURITY_LABEL, Subject, TEAM_LABEL,
  TeamNamespaceSpec, environmentPod, findOwner, isolationOf, memberSubject, ownedKeySecrets, ownedPods, subjectKey, teamEnvironments,
  teamNamespaceName, teamObjectNames,
} from './team-namespace-spec';
import { validateTeamNamespace } from './team-namespace-validate';
import { personalNamespaces, resolvedPersonalQuota, teamNamespaceQuota } from './team-personal';
import { ResolvedQuota, containerDefaultsOf } from './team-quota';

export * from './team-namespace-spec';
export * from './team-namespace-validate';
export * from './team-personal';
export * from './team-quota';

/** The label the API server sets on every Namespace to its name: the one namespace selector nobody can forge. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

const RBAC_GROUP = 'rbac.authorization.k8s.io';

/** The kinds CI applies: what the hosted environments render, or DEFAULT_CI_KINDS when there are none. */
export function ciKinds(spec: TeamNamespaceSpec): string[] {
  const envs = teamEnvironments(spec);
  if (envs.length === 0) return [...DEFAULT_CI_KINDS];
  const kinds = new Set<string>();
  for (const e of envs) for (const o of renderDevEnvironment(e)) kinds.add(o.kind);
  return [...kinds].sort();
}

/**
 * Renders the team's objects in apply order: the team namespace's Namespace, ResourceQuota,
 * LimitRange, NetworkPolicies, ServiceAccounts, Roles and RoleBindings; then, in personal mode, the
 * same for each personal namespace (owners in first-seen order). Plain JSON.
 * @throws ValidationError with every problem if the spec is invalid.
 */
export function renderTeamNamespace(spec: TeamNamespaceSpec): KubeObject[] {
  const problems = validateTeamNamespace(spec);
  if (problems.length > 0) throw new ValidationError(problems);
  return teamNamespaceObjects(spec);
}

/**
 * renderTeamNamespace() without the validation: for adapters that must know which objects a spec
 * being built will have (cdk8s declares them as mutators run). May throw on a malformed spec.
 */
export function teamNamespaceObjects(spec: TeamNamespaceSpec): KubeObject[] {
  const team = spec.team;
  const ns = teamNamespaceName(spec);
  const mode = isolationOf(spec);
  const personal = personalNamespaces(spec);
  const ciSubjects: Subject[] = (spec.ci ?? []).map((c) => ({ kind: 'ServiceAccount' as const, name: c.name, namespace: ns }));
  const ci = ciSubjects.length > 0 ? [{ name: teamObjectNames.role(team, 'ci'), rules: ciRules(ciKinds(spec)), subjects: ciSubjects }] : [];

  // The team namespace: shared services in personal mode, everything in team mode.
  const roles: RoleSpec[] = [
    { name: teamObjectNames.role(team, 'developer'), rules: mode === 'team' ? sharedDeveloperRules() : developerRules(), subjects: subjectsWith(spec, 'developer') },
    { name: teamObjectNames.role(team, 'viewer'), rules: viewerRules(), subjects: subjectsWith(spec, 'viewer') },
    { name: teamObjectNames.role(team, 'admin'), rules: adminRules(), subjects: subjectsWith(spec, 'admin') },
    ...ci,
  ];
  if (mode === 'team') {
    const keySecrets = ownedKeySecrets(spec);
    const owned = ownedObjects(teamEnvironments(spec));
    for (const [owner, pods] of ownedPods(spec)) {
      const rules = [...attachRules(pods, keySecrets.get(owner)), ...ownerObjectRules(owned.get(owner)!)];
      roles.push({ name: teamObjectNames.attach(team, owner), rules, subjects: [memberSubject(spec, findOwner(spec, owner)!)] });
    }
  }
  const out = renderNamespace(spec, {
    name: ns,
    quota: teamNamespaceQuota(spec),
    ingressFrom: personal.map((p) => p.name),
    egressTo: [],
    serviceAccounts: spec.ci ?? [],
    roles,
  });

  // Each personal namespace: the owner develops there; teammates may read; CI may apply.
  for (const p of personal) {
    const ownerSubject = memberSubject(spec, p.member);
    const others = (spec.members ?? []).map((m) => memberSubject(spec, m)).filter((s) => subjectKey(s) !== subjectKey(ownerSubject));
    const envs = p.environments;
    const keySecrets = envs.flatMap((e) => { const { ssh } = attachRecordOf(e); return [ssh.hostKeySecret, ssh.authorizedKeysSecret]; });
    out.push(...renderNamespace(spec, {
      name: p.name,
      owner: p.owner,
      quota: resolvedPersonalQuota(spec),
      ingressFrom: [],
      egressTo: [ns],
      serviceAccounts: [],
      roles: [
        { name: teamObjectNames.role(team, 'developer'), rules: personalDeveloperRules(), subjects: [ownerSubject] },
        { name: teamObjectNames.role(team, 'viewer'), rules: viewerRules(), subjects: others },
        ...ci,
        { name: teamObjectNames.attach(team, p.owner), rules: attachRules(envs.map((e) => environmentPod(e.name)), keySecrets), subjects: [ownerSubject] },
      ],
    }));
  }
  return plain(out);
}

/** A Role with the subjects bound to it (no RoleBinding when there are none). */
interface RoleSpec {
  readonly name: string;
  readonly rules: PolicyRule[];
  readonly subjects: Subject[];
}

/** One namespace of a team, as renderNamespace() writes it. */
interface NamespacePlan {
  readonly name: string;
  /** Set for a personal namespace: its owner as the environments name them. */
  readonly owner?: string;
  readonly quota: ResolvedQuota;
  /** Other namespaces whose pods may connect in. */
  readonly ingressFrom: readonly string[];
  /** Other namespaces whose pods these may connect to. */
  readonly egressTo: readonly string[];
  readonly serviceAccounts: readonly CiServiceAccountSpec[];
  readonly roles: readonly RoleSpec[];
}

/** Namespace, ResourceQuota, LimitRange, NetworkPolicies, ServiceAccounts, Roles, RoleBindings of one namespace. */
function renderNamespace(spec: TeamNamespaceSpec, plan: NamespacePlan): KubeObject[] {
  const labels = { ...(spec.labels ?? {}), [MANAGED_BY_LABEL]: MANAGED_BY, [TEAM_LABEL]: spec.team };
  const meta = (name: string) => ({ name, namespace: plan.name, labels });
  const out: KubeObject[] = [];
  const pss = spec.podSecurity ?? {};
  const version = pss.version ?? 'latest';
  out.push({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: plan.name,
      labels: {
        ...labels,
        [ISOLATION_LABEL]: plan.owner === undefined ? isolationOf(spec) : 'personal',
        [`${POD_SECURITY_LABEL}/enforce`]: pss.enforce ?? DEFAULT_POD_SECURITY,
        [`${POD_SECURITY_LABEL}/enforce-version`]: version,
        [`${POD_SECURITY_LABEL}/audit`]: pss.audit ?? DEFAULT_POD_SECURITY,
        [`${POD_SECURITY_LABEL}/audit-version`]: version,
        [`${POD_SECURITY_LABEL}/warn`]: pss.warn ?? DEFAULT_POD_SECURITY,
        [`${POD_SECURITY_LABEL}/warn-version`]: version,
      },
      ...(plan.owner !== undefined ? { annotations: { [OWNER_ANNOTATION]: plan.owner } } : {}),
    },
  });

  const quota = plan.quota;
  const hard: Record<string, string> = {
    'requests.cpu': quota.cpu,
    'requests.memory': quota.memory,
    ...(quota.limitsCpu !== undefined ? { 'limits.cpu': quota.limitsCpu } : {}),
    ...(quota.limitsMemory !== undefined ? { 'limits.memory': quota.limitsMemory } : {}),
    'requests.storage': quota.storage,
    pods: String(quota.pods),
    persistentvolumeclaims: String(quota.persistentVolumeClaims),
  };
  out.push({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: meta(teamObjectNames.quota(spec.team)), spec: { hard } });

  const defaults = containerDefaultsOf(spec);
  out.push({
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: meta(teamObjectNames.limits(spec.team)),
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

  out.push(...renderNetworkPolicies(spec, plan, meta));

  for (const c of plan.serviceAccounts) {
    out.push({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { ...meta(c.name), ...(c.annotations && Object.keys(c.annotations).length > 0 ? { annotations: { ...c.annotations } } : {}) },
    });
  }

  // Roles, then bindings, in the same order.
  for (const r of plan.roles) {
    out.push({ apiVersion: `${RBAC_GROUP}/v1`, kind: 'Role', metadata: meta(r.name), rules: r.rules });
  }
  for (const r of plan.roles) {
    if (r.subjects.length === 0) continue;
    out.push({
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: 'RoleBinding',
      metadata: meta(r.name),
      roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name: r.name },
      subjects: r.subjects,
    });
  }
  return out;
}

/** Each owner's environments' objects, by resource: what only the owner may change in a shared namespace. */
export function ownedObjects(envs: readonly DevEnvironmentSpec[]): Map<string, OwnedObjects> {
  const owned = new Map<string, { [K in keyof OwnedObjects]: string[] }>();
  const resources: Record<string, keyof OwnedObjects> = { ConfigMap: 'configmaps', PersistentVolumeClaim: 'persistentvolumeclaims', Service: 'services', StatefulSet: 'statefulsets' };
  for (const e of envs) {
    const o = owned.get(e.owner) ?? { configmaps: [], persistentvolumeclaims: [], pods: [], services: [], statefulsets: [] };
    for (const obj of renderDevEnvironment(e)) {
      const res = resources[obj.kind];
      if (res) o[res].push(obj.metadata.name);
    }
    o.pods.push(environmentPod(e.name));
    owned.set(e.owner, o);
  }
  return owned;
}

function subjectsWith(spec: TeamNamespaceSpec, role: TeamRole): Subject[] {
  return (spec.members ?? []).filter((m) => m.role === role).map((m) => memberSubject(spec, m));
}

/**
 * The namespace's isolation: ingress from its own pods (and, for the team namespace in personal
 * mode, from the personal namespaces), egress to its own pods, DNS (and, for a personal namespace,
 * the team namespace). Then the team's allowances, in every namespace of the team.
 */
function renderNetworkPolicies(spec: TeamNamespaceSpec, plan: NamespacePlan, meta: (name: string) => object): KubeObject[] {
  const net = spec.network ?? {};
  const out: KubeObject[] = [];
  const team = spec.team;
  const byName = (names: readonly string[]) => ({ namespaceSelector: { matchExpressions: [{ key: NAMESPACE_NAME_LABEL, operator: 'In', values: [...names] }] } });
  if (net.isolate ?? true) {
    const dns = net.dns ?? DEFAULT_DNS;
    out.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta(teamObjectNames.isolate(team)) as KubeObject['metadata'],
      spec: {
        podSelector: {},
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: {} }, ...(plan.ingressFrom.length > 0 ? [byName(plan.ingressFrom)] : [])] }],
        egress: [
          { to: [{ podSelector: {} }, ...(plan.egressTo.length > 0 ? [byName(plan.egressTo)] : [])] },
          {
            to: [{ namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: dns.namespace } }, podSelector: { matchLabels: { ...dns.podLabels } } }],
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
