import { renderDevEnvironment } from '../lib/dev-environment';
import { ValidationError } from '../lib/problems';
import {
  DEFAULT_CI_KINDS, TeamNamespaceSpec, ciKinds, environmentDemand, formatQuantity, renderTeamNamespace, teamEnvironments,
  validateTeamNamespace, validateTeamNamespaceAt,
} from '../lib/team-namespace';
import { PAYMENTS, SEARCH, validateWithKubernetesModels } from './support/team-models';

const kindsAndNames = (spec: TeamNamespaceSpec) => renderTeamNamespace(spec).map((o) => `${o.kind}/${o.metadata.name}`);

describe('renderTeamNamespace', () => {
  test('defaults: a team with one developer', () => {
    const objects = renderTeamNamespace({ team: 'solo', members: [{ user: 'dana', role: 'developer' }] });
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Namespace/solo',
      'ResourceQuota/solo-quota',
      'LimitRange/solo-limits',
      'NetworkPolicy/solo-isolate',
      'Role/solo-developer',
      'Role/solo-viewer',
      'Role/solo-admin',
      'RoleBinding/solo-developer',
    ]);
    const [ns, quota, limits, isolate] = objects;
    expect(ns.metadata.labels).toEqual({
      'app.kubernetes.io/managed-by': 'kubedev',
      'kubedev.io/isolation': 'personal',
      'kubedev.io/team': 'solo',
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/enforce-version': 'latest',
      'pod-security.kubernetes.io/audit': 'restricted',
      'pod-security.kubernetes.io/audit-version': 'latest',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/warn-version': 'latest',
    });
    expect(ns.metadata.namespace).toBeUndefined();
    expect(quota.spec).toEqual({
      hard: { 'requests.cpu': '8', 'requests.memory': '16Gi', 'requests.storage': '200Gi', pods: '20', persistentvolumeclaims: '30' },
    });
    expect(limits.spec).toEqual({ limits: [{ type: 'Container', defaultRequest: { cpu: '100m', memory: '256Mi' }, default: { memory: '4Gi' } }] });
    expect(isolate.spec).toEqual({
      podSelector: {},
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: {} }] }],
      egress: [
        { to: [{ podSelector: {} }] },
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
          ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }],
        },
      ],
    });
    for (const o of objects.slice(1)) expect(o.metadata.namespace).toBe('solo');
  });

  test('a full team: every object in apply order (golden)', () => {
    expect(kindsAndNames(PAYMENTS)).toEqual([
      'Namespace/team-payments',
      'ResourceQuota/payments-quota',
      'LimitRange/payments-limits',
      'NetworkPolicy/payments-isolate',
      'NetworkPolicy/payments-allow-https-out',
      'ServiceAccount/deployer',
      'Role/payments-developer',
      'Role/payments-viewer',
      'Role/payments-admin',
      'Role/payments-ci',
      'Role/payments-attach-alice-example-com',
      'Role/payments-attach-bob-example-com',
      'RoleBinding/payments-developer',
      'RoleBinding/payments-viewer',
      'RoleBinding/payments-admin',
      'RoleBinding/payments-ci',
      'RoleBinding/payments-attach-alice-example-com',
      'RoleBinding/payments-attach-bob-example-com',
    ]);
    expect(renderTeamNamespace(PAYMENTS)).toMatchSnapshot();
  });

  test('bindings name the right subjects; the attach Role names only the owner\'s pods', () => {
    const objects = renderTeamNamespace(PAYMENTS);
    const binding = (name: string) => objects.find((o) => o.kind === 'RoleBinding' && o.metadata.name === name)!;
    expect(binding('payments-developer').subjects).toEqual([
      { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice@example.com' },
      { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'bob@example.com' },
    ]);
    expect(binding('payments-viewer').subjects).toEqual([
      { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'auditors' },
      { kind: 'ServiceAccount', name: 'dashboard', namespace: 'monitoring' },
    ]);
    expect(binding('payments-ci').subjects).toEqual([{ kind: 'ServiceAccount', name: 'deployer', namespace: 'team-payments' }]);
    expect(binding('payments-attach-alice-example-com')).toMatchObject({
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'payments-attach-alice-example-com' },
      subjects: [{ kind: 'User', name: 'alice@example.com' }],
    });
    const aliceRole = objects.find((o) => o.kind === 'Role' && o.metadata.name === 'payments-attach-alice-example-com')!;
    expect((aliceRole.rules as unknown[]).slice(0, 3)).toEqual([
      { apiGroups: [''], resources: ['pods/exec'], verbs: ['create', 'get'], resourceNames: ['api-0', 'worker-0'] },
      { apiGroups: [''], resources: ['pods/portforward'], verbs: ['create', 'get'], resourceNames: ['api-0', 'worker-0'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'patch'], resourceNames: ['api-ssh-authorized-keys', 'api-ssh-host-keys', 'worker-ssh-authorized-keys', 'worker-ssh-host-keys'] },
    ]);
  });

  test('the allowance policy and the CI ServiceAccount', () => {
    const objects = renderTeamNamespace(PAYMENTS);
    expect(objects.find((o) => o.metadata.name === 'payments-allow-https-out')!.spec).toEqual({
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ port: 443, protocol: 'TCP' }] }],
    });
    expect(objects.find((o) => o.kind === 'ServiceAccount')!.metadata).toEqual({
      name: 'deployer',
      namespace: 'team-payments',
      labels: { 'app.kubernetes.io/managed-by': 'kubedev', 'kubedev.io/team': 'payments' },
      annotations: { 'iam.gke.io/gcp-service-account': 'deployer@example.iam.gserviceaccount.com' },
    });
  });

  test('isolation can be turned off; Pod Security levels can be lowered explicitly', () => {
    const objects = renderTeamNamespace({ team: 'ops', network: { isolate: false }, podSecurity: { enforce: 'baseline', version: 'v1.30' } });
    expect(objects.some((o) => o.kind === 'NetworkPolicy')).toBe(false);
    expect(objects[0].metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'baseline',
      'pod-security.kubernetes.io/enforce-version': 'v1.30',
      'pod-security.kubernetes.io/warn': 'restricted',
    });
  });

  test('idempotent, and the spec is not mutated', () => {
    const before = JSON.stringify(PAYMENTS);
    expect(renderTeamNamespace(PAYMENTS)).toEqual(renderTeamNamespace(PAYMENTS));
    expect(JSON.stringify(PAYMENTS)).toBe(before);
  });

  test('every object of both sample teams validates with kubernetes-models', () => {
    const objects = [...renderTeamNamespace(PAYMENTS), ...renderTeamNamespace(SEARCH)];
    expect(objects.length).toBeGreaterThan(20);
    for (const o of objects) validateWithKubernetesModels(o);
  });

  test('refuses an invalid spec with every problem at once', () => {
    const bad = { ...SEARCH, members: [{ user: 'x', role: 'root' as never }, { group: '', role: 'viewer' as const }] };
    expect(() => renderTeamNamespace(bad)).toThrow(ValidationError);
    try {
      renderTeamNamespace(bad);
    } catch (e) {
      expect((e as ValidationError).problems).toHaveLength(3);
    }
  });
});

describe('validateTeamNamespace: exact messages', () => {
  const v = (patch: Partial<TeamNamespaceSpec>) => validateTeamNamespace({ ...SEARCH, ...patch });

  test('the samples are valid', () => {
    expect(validateTeamNamespace(PAYMENTS)).toEqual([]);
    expect(validateTeamNamespace(SEARCH)).toEqual([]);
  });

  test('unknown role, with a suggestion', () => {
    expect(v({ members: [...SEARCH.members!, { user: 'erin', role: 'dev' as never }] })).toEqual([
      "TeamNamespace 'search': member 2 has an unknown role (got 'dev'). Did you mean 'developer'? Use one of 'developer', 'viewer', 'admin'.",
    ]);
    expect(v({ members: [...SEARCH.members!, { user: 'erin', role: 'owner' as never }] })).toEqual([
      "TeamNamespace 'search': member 2 has an unknown role (got 'owner'). Use one of 'developer', 'viewer', 'admin'.",
    ]);
  });

  test('duplicate member', () => {
    expect(v({ members: [...SEARCH.members!, { user: 'carol@example.com', role: 'admin' }] })).toEqual([
      `TeamNamespace 'search': User 'carol@example.com' is listed twice, as members 0 and 2 (got ["developer","admin"]). Give each user, group or service account one entry with one role.`,
    ]);
    // A user and a group of the same name are different subjects.
    expect(v({ members: [...SEARCH.members!, { group: 'carol@example.com', role: 'viewer' }] })).toEqual([]);
  });

  test('a member must name exactly one subject', () => {
    expect(v({ members: [...SEARCH.members!, { user: 'a', group: 'b', role: 'viewer' }] })).toEqual([
      `TeamNamespace 'search': member 2 must name exactly one of user, group or serviceAccount (got ["user","group"]). Write e.g. { user: 'alice@example.com', role: 'developer' }.`,
    ]);
  });

  test('an environment owner without a role, and one who is only a viewer', () => {
    expect(v({ environments: [{ name: 'web', owner: 'mallory', image: 'nginx' }] })).toEqual([
      "TeamNamespace 'search': environment 'web' is owned by a subject with no role in the team (got 'mallory'). Add a member { user: 'mallory', role: 'developer' }, or change the owner.",
    ]);
    expect(v({ members: [{ user: 'vic', role: 'viewer' }], environments: [{ name: 'web', owner: 'vic', image: 'nginx' }] })).toEqual([
      "TeamNamespace 'search': environment 'web' is owned by a viewer, who may not exec or port-forward (got 'vic'). Make 'vic' a developer or an admin, or change the owner.",
    ]);
  });

  test('quotas that cannot fit the environments\' requests (team mode: the team quota)', () => {
    // indexer: dev container 100m/256Mi from the LimitRange defaults, sidecar 50m/32Mi; workspace 10Gi.
    expect(v({ isolation: 'team', quota: { cpu: '100m', memory: '256Mi', storage: '5Gi', pods: 0, persistentVolumeClaims: 0 } })).toEqual([
      "TeamNamespace 'search': quota.cpu (requests.cpu) cannot fit the environments' requests (got '100m'). The environments request 150m CPU: raise quota.cpu to at least '150m', or lower their requests.",
      "TeamNamespace 'search': quota.memory (requests.memory) cannot fit the environments' requests (got '256Mi'). The environments request 288Mi of memory: raise quota.memory to at least '288Mi', or lower their requests.",
      "TeamNamespace 'search': quota.storage (requests.storage) cannot fit the environments' volumes (got '5Gi'). The environments claim 10Gi: raise quota.storage to at least '10Gi', or shrink their workspaces and caches.",
      "TeamNamespace 'search': quota.pods cannot fit the environments (got 0). The environments run 1 pods: raise quota.pods to at least 1.",
      "TeamNamespace 'search': quota.persistentVolumeClaims cannot fit the environments' volumes (got 0). The environments claim 1 volumes: raise quota.persistentVolumeClaims to at least 1.",
    ]);
    // Exactly enough is enough.
    expect(v({ isolation: 'team', quota: { cpu: '150m', memory: '288Mi', storage: '10Gi', pods: 1, persistentVolumeClaims: 1 } })).toEqual([]);
  });

  test('a limits quota needs every container limited', () => {
    expect(v({ isolation: 'team', quota: { limitsCpu: '4' } })).toEqual([
      "TeamNamespace 'search': quota.limitsCpu is set but some environment container has no CPU limit, so its pod would be rejected (got '4'). Set containerDefaults.limit.cpu, or give every container a CPU limit.",
    ]);
    expect(v({ isolation: 'team', quota: { limitsCpu: '4' }, containerDefaults: { limit: { cpu: '1', memory: '1Gi' } } })).toEqual([]);
    expect(v({ isolation: 'team', quota: { limitsCpu: '1500m' }, containerDefaults: { limit: { cpu: '1', memory: '1Gi' } } })).toEqual([
      "TeamNamespace 'search': quota.limitsCpu (limits.cpu) cannot fit the environments' limits (got '1500m'). Raise quota.limitsCpu to at least '2', or lower their limits.",
    ]);
  });

  test('a request above the default limit', () => {
    const env = { name: 'big', owner: 'carol@example.com', image: 'x', resources: { requests: { memory: '8Gi' } } };
    expect(v({ isolation: 'team', environments: [env], quota: { memory: '64Gi' } })).toEqual([
      `TeamNamespace 'search': container StatefulSet/big/dev memory requests more than the default limit it would get (got {"memory":"4Gi"}). Give the container its own limit, or raise containerDefaults.limit.`,
    ]);
  });

  test('invalid names', () => {
    expect(validateTeamNamespace({ team: 'Payments_Team', namespace: '-x', ci: [{ name: 'CI Bot' }], network: { allow: [{ name: 'Out', egressTo: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }] } })).toEqual([
      "TeamNamespace 'Payments_Team': team name is not a DNS-1123 label of at most 40 characters (got 'Payments_Team'). Use lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. 'payments'.",
      "TeamNamespace 'Payments_Team': namespace is not a DNS-1123 label (got '-x'). Use at most 63 lowercase letters, digits and '-', e.g. 'team-payments'.",
      "TeamNamespace 'Payments_Team': CI service account 0 has an invalid name (got 'CI Bot'). ServiceAccount names are DNS-1123 subdomains, e.g. 'deployer'.",
      "TeamNamespace 'Payments_Team': network allowance 0 has an invalid name (got 'Out'). Use a DNS-1123 label of at most 40 characters, e.g. 'https-out'.",
    ]);
  });

  test('environment problems are the DevEnvironment\'s own, and a foreign namespace is refused', () => {
    const problems = validateTeamNamespaceAt({ ...SEARCH, isolation: 'team', environments: [{ name: 'indexer', namespace: 'elsewhere', owner: 'carol@example.com', image: '' }] });
    expect(problems[0]).toEqual({
      path: 'environments[0].namespace',
      message: "TeamNamespace 'search': environment 'indexer' is in another namespace (got 'elsewhere'). Leave namespace out, or set it to 'search'.",
    });
    expect(problems.slice(1)).toEqual([{
      path: 'environments[0].image',
      message: "DevEnvironment 'indexer': image is missing (got ''). Set image to the dev container's image, e.g. 'node:20'.",
    }]);
  });

  test('every problem carries the property path it concerns', () => {
    const paths = validateTeamNamespaceAt({
      team: 't',
      members: [{ user: 'a', role: 'x' as never }],
      quota: { cpu: 'lots' },
      environments: [{ name: 'e', owner: 'nobody', image: 'i' }],
    }).map((p) => p.path);
    expect(paths).toEqual(['members[0].role', 'quota.cpu', 'environments[0].owner']);
  });
});

describe('quota arithmetic', () => {
  test('environmentDemand sums what admission will count', () => {
    const [env] = teamEnvironments(PAYMENTS);
    const d = environmentDemand(renderDevEnvironment(env), { request: { cpu: '100m', memory: '256Mi' }, limit: { memory: '4Gi' } });
    // dev: 1 cpu / 2Gi (limit 4Gi); sync sidecar: 50m / 32Mi (limit 256Mi). Workspace 10Gi + cache 5Gi.
    expect(d).toMatchObject({ requestsCpu: 1.05, requestsMemory: 2 * 2 ** 30 + 32 * 2 ** 20, limitsMemory: 4 * 2 ** 30 + 256 * 2 ** 20, unlimitedCpu: true, unlimitedMemory: false, storage: 15 * 2 ** 30, pods: 1, claims: 2 });
  });

  test('formatQuantity', () => {
    expect(formatQuantity(1.05, 'cpu')).toBe('1050m');
    expect(formatQuantity(2, 'cpu')).toBe('2');
    expect(formatQuantity(2 ** 31, 'bytes')).toBe('2Gi');
    expect(formatQuantity(2 ** 31 + 1, 'bytes')).toBe('2049Mi');
  });

  test('CI applies exactly the kinds the environments render', () => {
    expect(ciKinds(SEARCH)).toEqual(['ConfigMap', 'PersistentVolumeClaim', 'Service', 'StatefulSet']);
    expect(ciKinds({ team: 'empty' })).toEqual([...DEFAULT_CI_KINDS]);
  });
});

describe('untyped input (stack config) never throws', () => {
  test.each([
    [{ team: 'a', members: 'alice' }, 'members', "TeamNamespace 'a': members is not a list (got 'alice'). Write members as a list, e.g. [{ user: 'alice@example.com', role: 'developer' }]."],
    [{ team: 'a', members: [null] }, 'members[0]', "TeamNamespace 'a': members[0] is not an object (got null). Write it as e.g. { user: 'alice@example.com', role: 'developer' }."],
    [{ team: 'a', environments: {} }, 'environments', undefined],
    [{ team: 'a', ci: [7] }, 'ci[0]', undefined],
    [{ team: 'a', quota: 'big' }, 'quota', "TeamNamespace 'a': quota is not an object (got 'big'). Write quota as a mapping of its fields."],
    [{ team: 'a', network: { allow: {} } }, 'network.allow', undefined],
    [{ team: 'a', labels: { enabled: true } }, 'labels.enabled', `TeamNamespace 'a': label 'enabled' is not a string (got true). Quote the value in YAML, e.g. "true".`],
    [{ team: 7 }, 'team', undefined],
  ])('%j', (spec, path, message) => {
    const problems = validateTeamNamespaceAt(spec as never);
    expect(problems[0].path).toBe(path);
    if (message) expect(problems[0].message).toBe(message);
    expect(() => validateTeamNamespace(spec as never)).not.toThrow();
  });

  test('null spec', () => {
    expect(validateTeamNamespace(null as never)).toEqual(["TeamNamespace '?': the spec is not an object (got null). Pass { team, members, ... }."]);
  });
});

describe('Pod Security: environments that ask for more than the namespace enforces', () => {
  const env = (security: object) => ({ name: 'dbg', owner: 'carol@example.com', image: 'x', security });

  test('restricted (the default) refuses root, escalation and extra capabilities', () => {
    expect(validateTeamNamespace({ ...SEARCH, environments: [env({ runAsRoot: true, addCapabilities: ['SYS_PTRACE', 'NET_BIND_SERVICE'] })] })).toEqual([
      "TeamNamespace 'search': environment 'dbg' asks for root (security.runAsRoot), which the namespace's Pod Security level 'restricted' (podSecurity.enforce) rejects (got true). Drop the relaxation, or set podSecurity.enforce to 'baseline' if the team accepts it.",
      `TeamNamespace 'search': environment 'dbg' asks for capabilities SYS_PTRACE (security.addCapabilities), which the namespace's Pod Security level 'restricted' (podSecurity.enforce) rejects (got ["SYS_PTRACE","NET_BIND_SERVICE"]). Drop the relaxation, or set podSecurity.enforce to 'baseline' if the team accepts it.`,
    ]);
    expect(validateTeamNamespace({ ...SEARCH, environments: [env({ addCapabilities: ['NET_BIND_SERVICE'] })] })).toEqual([]);
  });

  test('baseline accepts root and escalation but not SYS_PTRACE; privileged accepts all', () => {
    const spec = (enforce: 'baseline' | 'privileged') => ({ ...SEARCH, podSecurity: { enforce }, environments: [env({ runAsRoot: true, allowPrivilegeEscalation: true, addCapabilities: ['SYS_PTRACE'] })] });
    expect(validateTeamNamespaceAt(spec('baseline')).map((p) => p.path)).toEqual(['environments[0].security.addCapabilities']);
    expect(validateTeamNamespace(spec('privileged'))).toEqual([]);
  });
});
