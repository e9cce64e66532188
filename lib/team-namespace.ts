/**
 * The TeamNamespace model: spec (team-namespace-spec), validation (team-namespace-validate), quota
 * arithmetic (team-quota) and renderTeamNamespace(), which writes the objects in apply order. The
 * environments themselves are rendered by renderDevEnvironment(); this model only reads them
 * (owners for exec/port-forward, requests for the quota).
 */
import { MANAGED_BY_LABEL, renderDevEnvironment } from './dev-environment';
import { KubeObject, plain } from './k8s';
import { ValidationError } from './problems';
import { PolicyRule, TeamRole, adminRules, attachRules, ciRules, developerRules, viewerRules } from './rbac';
import {
  DEFAULT_CI_KINDS, DEFAULT_DNS, DEFAULT_POD_SECURITY, MANAGED_BY, POD_SECURITY_LABEL, Subject, TEAM_LABEL, TeamNamespaceSpec,
  findOwner, memberSubject, ownedKeySecrets, ownedPods, teamEnvironments, teamNamespaceName, teamObjectNames,
} from './team-namespace-spec';
import { validateTeamNamespace } from './team-namespace-validate';
import { containerDefaultsOf, resolvedQuota } from './team-quota';

export * from './team-namespace-spec';
export * from './team-namespace-validate';
export * from './team-quota';

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
