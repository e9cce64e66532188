/**
 * DeveloperAccess: grants one subject exec and port-forward into named dev environments (their
 * StatefulSet pods `<env>-0`), and optionally binds it to a team's developer Role. Used for access
 * beyond ownership (pairing, on-call) or in namespaces no TeamNamespace manages.
 */
import { KubeObject, plain } from './k8s';
import { isDnsLabel, isDnsSubdomain, slug } from './names';
import { ValidationError, problem } from './problems';
import { attachRules, takeOverRules } from './rbac';
import { Subject, environmentPod } from './team-namespace';

const RBAC_GROUP = 'rbac.authorization.k8s.io';
const KIND = 'DeveloperAccess';

export interface DeveloperAccessSpec {
  /** Name of the Role and RoleBinding. @default `access-<slug of the subject>` */
  readonly name?: string;
  readonly namespace: string;
  /** Who gets access. A ServiceAccount without namespace is in `namespace`. */
  readonly subject: Subject;
  /** The environments (names) to exec and port-forward into. */
  readonly environments: readonly string[];
  /**
   * The environments' SSH key Secrets the subject may `get` (what `kubedev up` checks before it
   * connects; the subject can read them through exec anyway).
   * @default `<env>-ssh-host-keys` and `<env>-ssh-authorized-keys` of each environment
   */
  readonly keySecrets?: readonly string[];
  /**
   * Deployments the subject's `kubedev up` may take over for a replace-mode twin: get and patch of
   * those Deployments (scale to 0 keeping the count, and restore it), and get and scale of the
   * environments' StatefulSets (start and park the twin), all by name.
   * @default none
   */
  readonly takeOver?: readonly string[];
  /** Also bind the subject to this Role (e.g. `<team>-developer`). @default none */
  readonly developerRole?: string;
  /** Extra labels. @default {} */
  readonly labels?: Readonly<Record<string, string>>;
}

/** The Role/RoleBinding name. */
export function developerAccessName(spec: DeveloperAccessSpec): string {
  return spec.name ?? `access-${slug(spec.subject.kind === 'ServiceAccount' ? `${spec.subject.namespace ?? spec.namespace}-${spec.subject.name}` : spec.subject.name, 45)}`;
}

export function validateDeveloperAccess(spec: DeveloperAccessSpec): string[] {
  const name = typeof spec?.name === 'string' ? spec.name : typeof spec?.subject?.name === 'string' ? `access for ${spec.subject.name}` : '?';
  const out: string[] = [];
  const add = (what: string, got: unknown, fix: string) => out.push(problem(KIND, name, what, got, fix));
  if (spec.name !== undefined && !isDnsSubdomain(spec.name)) add('name is not a DNS-1123 subdomain', spec.name, "Use lowercase letters, digits, '-' and '.'");
  if (!isDnsLabel(spec.namespace)) add('namespace is not a DNS-1123 label', spec.namespace, 'Name the namespace the environments run in');
  if (!['User', 'Group', 'ServiceAccount'].includes(spec.subject?.kind)) add('subject kind is not User, Group or ServiceAccount', spec.subject?.kind, 'Pass a user, a group or a service account');
  if (typeof spec.subject?.name !== 'string' || spec.subject.name.trim() === '') add('subject has no name', spec.subject?.name, 'Name the user, group or service account');
  if (!Array.isArray(spec.environments) || spec.environments.length === 0) {
    add('grants access to no environment', spec.environments, 'List at least one environment name');
  } else {
    for (const e of spec.environments) if (!isDnsLabel(e, 52)) add('names an invalid environment', e, 'Environment names are DNS-1123 labels of at most 52 characters');
  }
  if (spec.takeOver !== undefined && !Array.isArray(spec.takeOver)) add('takeOver is not a list of Deployment names', spec.takeOver, "Give takeOver as a list, e.g. ['shop']");
  else for (const d of spec.takeOver ?? []) if (!isDnsSubdomain(d)) add('takeOver names an invalid Deployment', d, 'Deployment names are DNS-1123 subdomains');
  for (const k of spec.keySecrets ?? []) if (!isDnsSubdomain(k)) add('keySecrets names an invalid Secret', k, 'Secret names are DNS-1123 subdomains');
  if (spec.developerRole !== undefined && !isDnsSubdomain(spec.developerRole)) add('developerRole is not a Role name', spec.developerRole, "Name the team's developer Role, e.g. 'payments-developer'");
  return out;
}

function keySecretsOf(spec: DeveloperAccessSpec): readonly string[] {
  return spec.keySecrets ?? spec.environments.flatMap((e) => [`${e}-ssh-host-keys`, `${e}-ssh-authorized-keys`]);
}

/** Role, RoleBinding and (with developerRole) a second RoleBinding `<name>-developer`. */
export function renderDeveloperAccess(spec: DeveloperAccessSpec): KubeObject[] {
  const problems = validateDeveloperAccess(spec);
  if (problems.length > 0) throw new ValidationError(problems);
  const name = developerAccessName(spec);
  const labels = { ...(spec.labels ?? {}), 'app.kubernetes.io/managed-by': 'kubedev' };
  const meta = (n: string) => ({ name: n, namespace: spec.namespace, labels });
  const subject: Subject =
    spec.subject.kind === 'ServiceAccount'
      ? { kind: 'ServiceAccount', name: spec.subject.name, namespace: spec.subject.namespace ?? spec.namespace }
      : { kind: spec.subject.kind, apiGroup: RBAC_GROUP, name: spec.subject.name };
  const out: KubeObject[] = [
    { apiVersion: `${RBAC_GROUP}/v1`, kind: 'Role', metadata: meta(name), rules: [...attachRules(spec.environments.map(environmentPod), keySecretsOf(spec), ['get']), ...takeOverRules(spec.takeOver ?? [], spec.environments)] },
    { apiVersion: `${RBAC_GROUP}/v1`, kind: 'RoleBinding', metadata: meta(name), roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name }, subjects: [subject] },
  ];
  if (spec.developerRole !== undefined) {
    out.push({
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: 'RoleBinding',
      metadata: meta(`${name}-developer`),
      roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name: spec.developerRole },
      subjects: [subject],
    });
  }
  return plain(out);
}
