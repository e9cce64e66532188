/**
 * validateTeamNamespace(): every problem of a TeamNamespace spec at once, each in the shape
 * `TeamNamespace '<team>': <problem> (got <value>). <fix>.`, with the property path it concerns.
 */
import { DevEnvironmentSpec, renderDevEnvironment, validateDevEnvironmentAt } from './dev-environment';
import { isDnsLabel, isDnsSubdomain, isQuantity } from './names';
import { problem } from './problems';
import { TEAM_ROLES } from './rbac';
import {
  DEFAULT_POD_SECURITY, ISOLATION_MODES, PodSecurityLevel, TeamNamespaceSpec, TeamProblem, describeSubject, environmentNamespace, findOwner, isolationOf,
  memberSubject, subjectKey, teamNamespaceName, teamObjectNames,
} from './team-namespace-spec';
import { checkPersonalNamespaces, checkQuotaSums, personalNamespaces, resolvedPersonalQuota } from './team-personal';
import { Demand, checkQuota, containerDefaultsOf, environmentDemand } from './team-quota';

const KIND = 'TeamNamespace';

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
  for (const f of ['quota', 'personalQuota', 'containerDefaults', 'network', 'podSecurity', 'labels'] as const) {
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
  if (spec.isolation !== undefined && !(ISOLATION_MODES as readonly unknown[]).includes(spec.isolation)) {
    add('isolation', 'isolation is not a mode kubedev knows', spec.isolation, "Use 'personal' (a namespace per environment owner, the default) or 'team' (one shared namespace, for teams that trust each other)");
  }
  if (spec.personalQuota !== undefined && spec.isolation === 'team') {
    add('personalQuota', "personalQuota is set but isolation is 'team', which has no personal namespaces", spec.personalQuota, "Remove personalQuota, or set isolation to 'personal'");
  }
  if (out.length > beforeShapes) return out;
  const ns = teamNamespaceName(spec);
  const personal = isolationOf(spec) === 'personal';

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
  for (const field of ['quota', 'personalQuota'] as const) {
    const quota = spec[field] ?? {};
    for (const key of ['cpu', 'memory', 'limitsCpu', 'limitsMemory', 'storage'] as const) {
      if (quota[key] !== undefined && !isQuantity(quota[key])) {
        add(`${field}.${key}`, `${field}.${key} is not a Kubernetes quantity`, quota[key], "Write e.g. '4', '500m', '16Gi'");
      }
    }
    for (const key of ['pods', 'persistentVolumeClaims'] as const) {
      const v = quota[key];
      if (v !== undefined && !(Number.isInteger(v) && v >= 0)) add(`${field}.${key}`, `${field}.${key} is not a whole number`, v, 'Write a count, e.g. 20');
    }
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
  const byNamespace = new Map<string, Demand[]>();
  (spec.environments ?? []).forEach((e, i) => {
    const path = `environments[${i}]`;
    const expected = environmentNamespace(spec, e?.owner);
    const env: DevEnvironmentSpec = { ...e, namespace: e?.namespace ?? expected };
    if (e?.namespace !== undefined && e.namespace !== expected) {
      add(
        `${path}.namespace`,
        expected === ns ? `environment '${e.name}' is in another namespace` : `environment '${e.name}' is not in the personal namespace of its owner '${e.owner}'`,
        e.namespace,
        expected === ns ? `Leave namespace out, or set it to '${expected}'` : `Set it to '${expected}' (in cdk8s: namespace: team.namespaceFor('${e.owner}')), or leave it out of a plain spec`,
      );
    }
    if (envNames.has(e?.name)) add(`${path}.name`, `environment '${e.name}' is declared twice`, e.name, 'Give each environment its own name');
    envNames.add(e?.name);
    const envProblems = validateDevEnvironmentAt(env);
    for (const p of envProblems) out.push({ path: p.path ? `${path}.${p.path}` : path, message: p.message });
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
      const demand = environmentDemand(renderDevEnvironment(env), containerDefaultsOf(spec));
      demands.push(demand);
      byNamespace.set(env.namespace, [...(byNamespace.get(env.namespace) ?? []), demand]);
      for (const [field, what, got] of podSecurityConflicts(env, spec.podSecurity?.enforce ?? DEFAULT_POD_SECURITY)) {
        const level = spec.podSecurity?.enforce ?? DEFAULT_POD_SECURITY;
        add(`${path}.security.${field}`, `environment '${e.name}' asks for ${what}, which the namespace's Pod Security level '${level}' (podSecurity.enforce) rejects`, got, `Drop the relaxation, or set podSecurity.enforce to '${level === 'restricted' ? 'baseline' : 'privileged'}' if the team accepts it`);
      }
    }
  });
  if (personal) checkPersonalNamespaces(spec, add);
  if (out.some((p) => /^(quota|personalQuota|containerDefaults)\b/.test(p.path))) return out;
  if (!personal) {
    if (demands.length > 0) checkQuota(spec, demands, add);
    return out;
  }
  // Personal mode: each owner's environments fit their namespace's quota; the quotas fit the team's.
  for (const p of personalNamespaces(spec)) {
    const where = ` in the personal namespace '${p.name}' of '${p.owner}'`;
    checkQuota(spec, byNamespace.get(p.name) ?? [], add, { field: 'personalQuota', quota: resolvedPersonalQuota(spec), where });
  }
  checkQuotaSums(spec, add);
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
