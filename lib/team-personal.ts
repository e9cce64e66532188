/**
 * Personal isolation: which members get a namespace of their own, what quota each gets, what the
 * team namespace keeps, and the checks that the personal quotas, summed, fit the team's.
 */
import { DevEnvironmentSpec } from './dev-environment';
import { parseQuantity } from './names';
import {
  DEFAULT_PERSONAL_QUOTA, TeamMemberSpec, TeamNamespaceSpec, findOwner, isolationOf, memberName, personalNamespaceName, teamEnvironments,
  teamNamespaceName,
} from './team-namespace-spec';
import { ResolvedQuota, formatQuantity, resolvedQuota, withDefaults } from './team-quota';

/** One personal namespace: its owner (a member) and the environments it holds. */
export interface PersonalNamespace {
  readonly name: string;
  readonly member: TeamMemberSpec;
  /** The owner as the environments name them (first seen). */
  readonly owner: string;
  readonly environments: readonly DevEnvironmentSpec[];
}

/**
 * The personal namespaces of a team in personal mode, in the order their owners first appear among
 * the environments; none in team mode. Owners that name no member are left out (validation reports them).
 */
export function personalNamespaces(spec: TeamNamespaceSpec): PersonalNamespace[] {
  if (isolationOf(spec) !== 'personal') return [];
  const byName = new Map<string, { member: TeamMemberSpec; owner: string; environments: DevEnvironmentSpec[] }>();
  for (const env of teamEnvironments(spec)) {
    const member = typeof env.owner === 'string' ? findOwner(spec, env.owner) : undefined;
    if (!member) continue;
    const name = personalNamespaceName(spec.team, memberName(member));
    const entry = byName.get(name) ?? { member, owner: env.owner, environments: [] };
    entry.environments.push(env);
    byName.set(name, entry);
  }
  return [...byName.entries()].map(([name, e]) => ({ name, ...e }));
}

/** The quota of each personal namespace, with its defaults. */
export function resolvedPersonalQuota(spec: TeamNamespaceSpec): ResolvedQuota {
  return withDefaults(spec.personalQuota ?? {}, DEFAULT_PERSONAL_QUOTA);
}

/** A quantity written exactly: cpu in whole cores or millicores, bytes in the largest binary unit that divides them. */
export function formatExact(value: number, resource: 'cpu' | 'bytes'): string {
  if (resource === 'cpu') {
    const milli = Math.round(value * 1000);
    return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
  }
  const bytes = Math.round(value);
  for (const [unit, size] of [['Ti', 2 ** 40], ['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]] as const) {
    if (bytes !== 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

type QuantityField = 'cpu' | 'memory' | 'limitsCpu' | 'limitsMemory' | 'storage';
const QUANTITY_FIELDS: readonly [QuantityField, 'cpu' | 'bytes'][] = [['cpu', 'cpu'], ['memory', 'bytes'], ['limitsCpu', 'cpu'], ['limitsMemory', 'bytes'], ['storage', 'bytes']];

/**
 * The team namespace's quota: the team's quota less every personal namespace's (personal mode), the
 * team's quota unchanged in team mode. Validation has made sure nothing goes below zero.
 */
export function teamNamespaceQuota(spec: TeamNamespaceSpec): ResolvedQuota {
  const team = resolvedQuota(spec);
  const count = personalNamespaces(spec).length;
  if (count === 0) return team;
  const personal = resolvedPersonalQuota(spec);
  const out: Record<string, string | number | undefined> = { ...team };
  for (const [field, unit] of QUANTITY_FIELDS) {
    const have = team[field];
    if (have === undefined) continue;
    const each = personal[field];
    out[field] = formatExact(Math.max(parseQuantity(have) - count * (each === undefined ? 0 : parseQuantity(each)), 0), unit);
  }
  out.pods = Math.max(team.pods - count * personal.pods, 0);
  out.persistentVolumeClaims = Math.max(team.persistentVolumeClaims - count * personal.persistentVolumeClaims, 0);
  return out as unknown as ResolvedQuota;
}

/** Problems of personal namespace names: two members mapping to one namespace, or one named like the team's. */
export function checkPersonalNamespaces(spec: TeamNamespaceSpec, add: (path: string, what: string, got: unknown, fix: string) => void): void {
  if (isolationOf(spec) !== 'personal') return;
  const teamNs = teamNamespaceName(spec);
  const membersByNs = new Map<string, TeamMemberSpec[]>();
  for (const e of spec.environments ?? []) {
    const m = typeof e?.owner === 'string' ? findOwner(spec, e.owner) : undefined;
    if (!m) continue;
    const ns = personalNamespaceName(spec.team, memberName(m));
    const list = membersByNs.get(ns) ?? [];
    if (!list.includes(m)) list.push(m);
    membersByNs.set(ns, list);
  }
  for (const [ns, members] of membersByNs) {
    const names = members.map(memberName);
    if (ns === teamNs) {
      add('namespace', `the personal namespace of '${names[0]}' would be the team namespace`, ns, `Set namespace to another name, e.g. 'team-${spec.team}'`);
    }
    if (members.length > 1) {
      add('members', `members ${names.map((n) => `'${n}'`).join(' and ')} would share the personal namespace '${ns}'`, ns, "Let only one of them own environments, or use isolation: 'team'");
    }
  }
}

/** Every personal quota, times the number of personal namespaces, must fit the team's quota. */
export function checkQuotaSums(spec: TeamNamespaceSpec, add: (path: string, what: string, got: unknown, fix: string) => void): void {
  const count = personalNamespaces(spec).length;
  if (count === 0) return;
  const team = resolvedQuota(spec);
  const personal = resolvedPersonalQuota(spec);
  const eps = 1e-9;
  for (const [field, unit] of QUANTITY_FIELDS) {
    const have = team[field];
    const each = personal[field];
    if (have === undefined) continue;
    if (each === undefined) {
      add(`personalQuota.${field}`, `quota.${field} bounds the team but personalQuota.${field} is not set, so the personal namespaces would be unbounded`, each, `Set personalQuota.${field}, e.g. '${formatQuantity(parseQuantity(have) / (count + 1), unit)}'`);
      continue;
    }
    const need = count * parseQuantity(each);
    if (parseQuantity(have) + eps < need) {
      add(`quota.${field}`, `quota.${field} cannot hold the quotas of ${count} personal namespace${count === 1 ? '' : 's'} (${count} × personalQuota.${field} '${each}' = '${formatExact(need, unit)}')`, have, `Raise quota.${field} to at least '${formatExact(need, unit)}', or lower personalQuota.${field}`);
    }
  }
  for (const field of ['pods', 'persistentVolumeClaims'] as const) {
    const need = count * personal[field];
    if (team[field] < need) {
      add(`quota.${field}`, `quota.${field} cannot hold the quotas of ${count} personal namespace${count === 1 ? '' : 's'} (${count} × personalQuota.${field} ${personal[field]} = ${need})`, team[field], `Raise quota.${field} to at least ${need}, or lower personalQuota.${field}`);
    }
  }
}
