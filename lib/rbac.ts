/**
 * Least-privilege RBAC for team namespaces: the rules each team role grants, as plain data.
 *
 * Every rule names its API group, resources and verbs; there is no '*' anywhere, and every rule lives
 * in a namespaced Role (nothing cluster-scoped). The facts these rules rely on, checked against the
 * Kubernetes documentation and the Kubernetes issue tracker:
 *
 * - `resourceNames` cannot restrict `create` on a collection (the name is not known when the request is
 *   authorized), but it does restrict a subresource of a named object: `kubectl exec`/`port-forward`
 *   send `create` to `pods/<name>/exec` and `pods/<name>/portforward`, and the authorizer sees the pod's
 *   name. @see https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources
 * - `pods/exec` and `pods/portforward` need `create` (SPDY, the POST path); WebSocket clients (kubectl
 *   1.30 and later) start with a GET, so they also need `get`. Since Kubernetes 1.35 the API server
 *   additionally checks `create` on the WebSocket path (feature gate
 *   AuthorizePodWebsocketUpgradeCreatePermission, kubernetes/kubernetes#134577), so `get` alone never
 *   grants exec. Hence exactly `create` and `get`, only on the named pods.
 * - An empty `resourceNames` means "every name": a rule for exec/port-forward is emitted only when
 *   the subject owns at least one environment.
 * - Creating a RoleBinding requires holding every permission of the Role bound (escalation
 *   prevention), so an admin who may manage RoleBindings cannot grant exec into pods they cannot exec
 *   into themselves. @see https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping
 */

/** One RBAC rule, as Kubernetes takes it (rbac.authorization.k8s.io/v1 PolicyRule). */
export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  readonly resourceNames?: readonly string[];
}

/** The roles a team member can have. */
export const TEAM_ROLES = ['developer', 'viewer', 'admin'] as const;
export type TeamRole = (typeof TEAM_ROLES)[number];

/** Read an object or a collection, and follow changes. */
export const READ_VERBS: readonly string[] = ['get', 'list', 'watch'];
/** Everything a developer does to their own namespace's objects; deliberately no `deletecollection`. */
export const MANAGE_VERBS: readonly string[] = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
/**
 * What applying synthesized YAML needs: `get` + `create` + `patch` for `kubectl apply` (client- and
 * server-side), `list` + `delete` for `kubectl apply --prune`. Nothing more.
 */
export const APPLY_VERBS: readonly string[] = ['get', 'list', 'create', 'patch', 'delete'];
/** exec and port-forward: see the file comment for why exactly these two. */
export const STREAM_VERBS: readonly string[] = ['create', 'get'];

const rule = (apiGroup: string, resources: readonly string[], verbs: readonly string[], resourceNames?: readonly string[]): PolicyRule =>
  resourceNames === undefined
    ? { apiGroups: [apiGroup], resources: [...resources], verbs: [...verbs] }
    : { apiGroups: [apiGroup], resources: [...resources], verbs: [...verbs], resourceNames: [...resourceNames] };

/** viewer: read-only; no Secrets, no exec, no port-forward. Logs are reads. */
export function viewerRules(): PolicyRule[] {
  return [
    rule('', ['configmaps', 'endpoints', 'events', 'limitranges', 'persistentvolumeclaims', 'pods', 'resourcequotas', 'serviceaccounts', 'services'], READ_VERBS),
    rule('', ['pods/log'], ['get']),
    rule('apps', ['controllerrevisions', 'deployments', 'replicasets', 'statefulsets'], READ_VERBS),
    rule('batch', ['cronjobs', 'jobs'], READ_VERBS),
    rule('events.k8s.io', ['events'], READ_VERBS),
    rule('networking.k8s.io', ['networkpolicies'], READ_VERBS),
  ];
}

/**
 * developer: manage the namespace's workloads, pods, services, config maps, PVCs and jobs; read logs
 * and events. exec and port-forward are NOT here: they come from the per-owner attach Role
 * (attachRules), which names the owner's pods.
 */
export function developerRules(): PolicyRule[] {
  return [
    rule('', ['configmaps', 'persistentvolumeclaims', 'pods', 'services'], MANAGE_VERBS),
    rule('', ['pods/log'], ['get']),
    rule('', ['endpoints', 'events', 'limitranges', 'resourcequotas', 'serviceaccounts'], READ_VERBS),
    rule('apps', ['deployments', 'statefulsets'], MANAGE_VERBS),
    rule('apps', ['deployments/scale', 'statefulsets/scale'], ['get', 'update', 'patch']),
    rule('apps', ['controllerrevisions', 'replicasets'], READ_VERBS),
    rule('batch', ['cronjobs', 'jobs'], MANAGE_VERBS),
    rule('events.k8s.io', ['events'], READ_VERBS),
    rule('networking.k8s.io', ['networkpolicies'], READ_VERBS),
  ];
}

/**
 * developer in a personal namespace (their own): the developer's rules plus the namespace's Secrets,
 * so `kubedev keys --apply` can create the environments' key Secrets and the developer can add the
 * Secrets their environments reference. Whoever may create pods in a namespace may mount its Secrets
 * anyway; in a personal namespace that is the owner alone.
 */
export function personalDeveloperRules(): PolicyRule[] {
  return [...developerRules(), rule('', ['secrets'], MANAGE_VERBS)];
}

/** What an environment renders, by resource: the names only its owner may change in a shared namespace. */
export interface OwnedObjects {
  readonly configmaps: readonly string[];
  readonly persistentvolumeclaims: readonly string[];
  readonly pods: readonly string[];
  readonly services: readonly string[];
  readonly statefulsets: readonly string[];
}

/** What a shared-namespace developer keeps on the kinds environments render; owners add the rest by name. */
export const READ_CREATE_VERBS: readonly string[] = [...READ_VERBS, 'create'];

/**
 * developer in a shared (team-mode) namespace: as developerRules(), but on the kinds environments
 * render (ConfigMaps, PVCs, Services, StatefulSets, pods) only read and create (and delete for pods),
 * and no `statefulsets/scale`: changing an environment's objects is its owner's (ownerObjectRules).
 * RBAC cannot say "all names but these", so shared objects of those kinds are changed by admins or CI.
 */
export function sharedDeveloperRules(): PolicyRule[] {
  return [
    rule('', ['configmaps', 'persistentvolumeclaims', 'services'], READ_CREATE_VERBS),
    rule('', ['pods'], [...READ_CREATE_VERBS, 'delete']),
    rule('', ['pods/log'], ['get']),
    rule('', ['endpoints', 'events', 'limitranges', 'resourcequotas', 'serviceaccounts'], READ_VERBS),
    rule('apps', ['deployments'], MANAGE_VERBS),
    rule('apps', ['deployments/scale'], ['get', 'update', 'patch']),
    rule('apps', ['statefulsets'], READ_CREATE_VERBS),
    rule('apps', ['controllerrevisions', 'replicasets'], READ_VERBS),
    rule('batch', ['cronjobs', 'jobs'], MANAGE_VERBS),
    rule('events.k8s.io', ['events'], READ_VERBS),
    rule('networking.k8s.io', ['networkpolicies'], READ_VERBS),
  ];
}

/**
 * The owner's rights over their environments' objects in a shared namespace, by name: update, patch
 * and delete of the StatefulSets, ConfigMaps, Services and PVCs, update and patch of the pods, and
 * the StatefulSets' scale. Empty lists give no rule (an empty `resourceNames` means every name).
 */
export function ownerObjectRules(owned: OwnedObjects): PolicyRule[] {
  const names = (xs: readonly string[]) => [...new Set(xs)].sort();
  const out: PolicyRule[] = [];
  const change = ['update', 'patch', 'delete'];
  for (const res of ['configmaps', 'persistentvolumeclaims', 'services'] as const) {
    if (owned[res].length > 0) out.push(rule('', [res], change, names(owned[res])));
  }
  if (owned.pods.length > 0) out.push(rule('', ['pods'], ['update', 'patch'], names(owned.pods)));
  if (owned.statefulsets.length > 0) {
    out.push(rule('apps', ['statefulsets'], change, names(owned.statefulsets)), rule('apps', ['statefulsets/scale'], ['get', 'update', 'patch'], names(owned.statefulsets)));
  }
  return out;
}

/** admin: the developer's rules plus Secrets and RoleBindings in the namespace (and reading its Roles). */
export function adminRules(): PolicyRule[] {
  return [
    ...developerRules(),
    rule('', ['secrets'], MANAGE_VERBS),
    rule('rbac.authorization.k8s.io', ['rolebindings'], MANAGE_VERBS),
    rule('rbac.authorization.k8s.io', ['roles'], READ_VERBS),
  ];
}

/**
 * Re-applying an environment's own SSH key Secrets (`kubedev keys --apply` on existing Secrets is a
 * client-side `kubectl apply`: get, then patch). Not `create`: resourceNames cannot restrict it, so
 * the first creation is an admin's. The owner can already read these through exec into the pod.
 */
export const KEY_SECRET_VERBS: readonly string[] = ['get', 'patch'];

/**
 * exec and port-forward into the named pods only, and get/patch of the named key Secrets. Returns no
 * rule for an empty list: an empty `resourceNames` would mean every pod (or Secret).
 */
export function attachRules(pods: readonly string[], keySecrets: readonly string[] = [], keySecretVerbs: readonly string[] = KEY_SECRET_VERBS): PolicyRule[] {
  const out: PolicyRule[] = [];
  if (pods.length > 0) {
    const names = [...new Set(pods)].sort();
    out.push(rule('', ['pods/exec'], STREAM_VERBS, names), rule('', ['pods/portforward'], STREAM_VERBS, names));
  }
  if (keySecrets.length > 0) out.push(rule('', ['secrets'], keySecretVerbs, [...new Set(keySecrets)].sort()));
  return out;
}

/**
 * Take-over for replace-mode twins (`kubedev up`/`down`): of the named original Deployments, `get` to
 * read the replica count and `patch` to keep it in an annotation and scale to 0 in one guarded JSON
 * patch (not `deployments/scale`: the count and the annotation must change together); of the twins'
 * StatefulSets, `get` and their scale subresource only (`kubectl scale`), never the StatefulSet itself
 * (a patch of it could change its image or ServiceAccount). No rule for an empty list (an empty
 * `resourceNames` means every name).
 */
export function takeOverRules(deployments: readonly string[], twins: readonly string[]): PolicyRule[] {
  if (deployments.length === 0) return [];
  const names = (xs: readonly string[]) => [...new Set(xs)].sort();
  const out = [rule('apps', ['deployments'], ['get', 'patch'], names(deployments))];
  if (twins.length > 0) out.push(rule('apps', ['statefulsets'], ['get'], names(twins)), rule('apps', ['statefulsets/scale'], ['get', 'patch'], names(twins)));
  return out;
}

/** The API group and resource of each built-in kind kubedev renders. */
export const KIND_RESOURCES: Readonly<Record<string, { readonly group: string; readonly resource: string }>> = {
  ConfigMap: { group: '', resource: 'configmaps' },
  CronJob: { group: 'batch', resource: 'cronjobs' },
  Deployment: { group: 'apps', resource: 'deployments' },
  Job: { group: 'batch', resource: 'jobs' },
  PersistentVolumeClaim: { group: '', resource: 'persistentvolumeclaims' },
  Pod: { group: '', resource: 'pods' },
  Service: { group: '', resource: 'services' },
  ServiceAccount: { group: '', resource: 'serviceaccounts' },
  StatefulSet: { group: 'apps', resource: 'statefulsets' },
};

/**
 * CI: apply (and prune) exactly the kinds given, nothing else. One rule per API group, resources
 * sorted, so the output is stable.
 * @throws Error for a kind CI is not meant to apply (callers validate first).
 */
export function ciRules(kinds: Iterable<string>): PolicyRule[] {
  const byGroup = new Map<string, Set<string>>();
  for (const kind of kinds) {
    const r = KIND_RESOURCES[kind];
    if (!r) throw new Error(`ciRules: no resource is known for kind '${kind}'`);
    const set = byGroup.get(r.group) ?? new Set<string>();
    set.add(r.resource);
    byGroup.set(r.group, set);
  }
  return [...byGroup.keys()].sort().map((g) => rule(g, [...byGroup.get(g)!].sort(), APPLY_VERBS));
}

/** The rules of a team role. */
export function rulesForRole(role: TeamRole): PolicyRule[] {
  switch (role) {
    case 'developer':
      return developerRules();
    case 'viewer':
      return viewerRules();
    case 'admin':
      return adminRules();
  }
}

/** True if any rule holds a '*' (verb, resource, group or name). Tests and validation use it. */
export function hasWildcard(rules: readonly PolicyRule[]): boolean {
  return rules.some((r) => [...r.apiGroups, ...r.resources, ...r.verbs, ...(r.resourceNames ?? [])].some((s) => s.includes('*')));
}
