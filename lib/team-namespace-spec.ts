/**
 * The TeamNamespace model: a team's namespace with Pod Security labels, quota, default container
 * limits, network isolation and least-privilege RBAC for its members, CI and the dev environments it
 * hosts. This file holds the spec, its defaults and the names derived from it.
 */
import { DevEnvironmentSpec, attachRecordOf } from './dev-environment';
import { createHash } from 'node:crypto';
import { isDnsLabel, slug } from './names';
import { TeamRole } from './rbac';

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
/** The label (on every Namespace of a team) that says which isolation mode the team runs in. */
export const ISOLATION_LABEL = 'kubedev.io/isolation';
/** Each environment owner gets a namespace of their own unless the team opts into one shared namespace. */
export const DEFAULT_ISOLATION: IsolationMode = 'personal';
/**
 * What each personal namespace may hold: one or two environments with their sidecars and caches.
 * Four of them fill the default team quota exactly, leaving nothing for the team namespace.
 */
export const DEFAULT_PERSONAL_QUOTA = {
  cpu: '2',
  memory: '4Gi',
  storage: '50Gi',
  pods: 5,
  persistentVolumeClaims: 8,
} as const;

const RBAC_GROUP = 'rbac.authorization.k8s.io';

export type PodSecurityLevel = 'privileged' | 'baseline' | 'restricted';

/**
 * - `personal`: each member who owns environments gets a namespace of their own (`<team>-<member>`)
 *   holding their environments; teammates may only read there. The team namespace keeps shared services.
 * - `team`: one namespace for everything, for teams that trust each other: whoever may create pods
 *   there may mount every Secret and volume in it (see the README's trust model).
 */
export const ISOLATION_MODES = ['personal', 'team'] as const;
export type IsolationMode = (typeof ISOLATION_MODES)[number];

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
  /** Where environments live: a namespace per owner, or the team namespace. @default 'personal' */
  readonly isolation?: IsolationMode;
  /**
   * The ResourceQuota of each personal namespace (`isolation: 'personal'` only). The team's `quota`
   * is then the team's total: the personal quotas, summed, must fit it, and the team namespace gets
   * what remains.
   * @default DEFAULT_PERSONAL_QUOTA (2 CPU, 4Gi, 50Gi, 5 pods, 8 PVCs)
   */
  readonly personalQuota?: TeamQuotaSpec;
  /** @default [] */
  readonly members?: readonly TeamMemberSpec[];
  /** @default [] */
  readonly ci?: readonly CiServiceAccountSpec[];
  /** The team's quota; in personal mode its total across all of its namespaces. @default DEFAULT_QUOTA */
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

/** The team's isolation mode, defaulted. */
export function isolationOf(spec: TeamNamespaceSpec): IsolationMode {
  return spec.isolation ?? DEFAULT_ISOLATION;
}

/**
 * The namespace an owner's environments live in: their personal namespace in personal mode (when
 * the owner is a member), else the team namespace.
 */
export function environmentNamespace(spec: TeamNamespaceSpec, owner: string): string {
  if (isolationOf(spec) !== 'personal' || typeof owner !== 'string') return teamNamespaceName(spec);
  const member = findOwner(spec, owner);
  return member ? personalNamespaceName(spec.team, memberName(member)) : teamNamespaceName(spec);
}

/** The name a member goes by: user, group or ServiceAccount name. */
export function memberName(m: TeamMemberSpec): string {
  return m.user ?? m.group ?? m.serviceAccount ?? '';
}

/** Characters of the owner's hash in a personal namespace name. */
export const PERSONAL_HASH_LENGTH = 6;

/**
 * A member's personal namespace: `<team>-<member>` when that is a DNS-1123 label of at most 63
 * characters (`web-dana`), else `<team>-<member, sanitized and cut>-<hash>` where the hash is the
 * first hex digits of the SHA-256 of the member's name exactly as given (`web-alice-example-com-ff8d9a`).
 * It depends on the team and the member only, so adding a member never renames another's namespace;
 * two members that still map to one name are a validation error, never a shared namespace.
 */
export function personalNamespaceName(team: string, member: string): string {
  const plain = `${team}-${member}`;
  if (isDnsLabel(plain)) return plain;
  const hash = createHash('sha256').update(member, 'utf8').digest('hex').slice(0, PERSONAL_HASH_LENGTH);
  const room = 63 - team.length - PERSONAL_HASH_LENGTH - 2;
  const cut = slug(member, Math.max(room, 1));
  return `${team}-${cut}-${hash}`;
}

/** The environments with their namespace filled in (the owner's personal namespace in personal mode). */
export function teamEnvironments(spec: TeamNamespaceSpec): DevEnvironmentSpec[] {
  return (spec.environments ?? []).map((e) => ({ ...e, namespace: e.namespace ?? environmentNamespace(spec, e.owner) }));
}

/** The RBAC subject a member names (assumes exactly one of user/group/serviceAccount). */
export function memberSubject(spec: TeamNamespaceSpec, m: TeamMemberSpec): Subject {
  if (m.user !== undefined) return { kind: 'User', apiGroup: RBAC_GROUP, name: m.user };
  if (m.group !== undefined) return { kind: 'Group', apiGroup: RBAC_GROUP, name: m.group };
  return { kind: 'ServiceAccount', name: m.serviceAccount ?? '', namespace: m.serviceAccountNamespace ?? teamNamespaceName(spec) };
}

/** Identity of a subject, for duplicate checks. */
export const subjectKey = (s: Subject): string => `${s.kind}:${s.namespace ?? ''}/${s.name}`;
/** A subject as messages name it. */
export const describeSubject = (s: Subject): string =>
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
