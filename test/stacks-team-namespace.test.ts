import * as pulumi from '@pulumi/pulumi';
import { personalNamespaceName, renderTeamNamespace } from '../lib/team-namespace';
import { PAYMENTS, PAYMENTS_PERSONAL, SEARCH, validateWithKubernetesModels } from './support/team-models';
import { Registered, installMocks, parentOf, promiseOf, settled } from './support/team-pulumi';

let registered: Registered[];
let stacks: typeof import('../stacks/team-namespace');
let kube: typeof import('../stacks/kube');

beforeAll(async () => {
  registered = await installMocks();
  // Import after the mocks are in place.
  stacks = await import('../stacks/team-namespace');
  kube = await import('../stacks/kube');
});

describe('kubedev:index:TeamNamespace', () => {
  let team: import('../stacks/team-namespace').TeamNamespace;
  let optsByName: Map<string, pulumi.CustomResourceOptions>;

  beforeAll(async () => {
    const spy = jest.spyOn(kube, 'kubeResource');
    team = new stacks.TeamNamespace('payments', PAYMENTS);
    await settled(Object.values(team.resources));
    optsByName = new Map(spy.mock.calls.map(([name, , opts]) => [name, opts]));
    spy.mockRestore();
  });

  test('registers the component with its type token', () => {
    expect(registered.filter((r) => r.type === 'kubedev:index:TeamNamespace').map((r) => r.name)).toEqual(['payments']);
  });

  test('one typed child per rendered object: types, names `${name}-<role>`, parents', async () => {
    // Registration is asynchronous: compare by name; creation order is checked through the plan.
    const expected = renderTeamNamespace(PAYMENTS).map((o) => [kube.childName('payments', o), kube.KIND_TYPES[`${o.apiVersion}/${o.kind}`]]);
    const children = registered.filter((r) => r.custom).map((r) => [r.name, r.type]);
    expect(Object.fromEntries(children)).toEqual(Object.fromEntries(expected));
    expect(children).toHaveLength(expected.length);
    expect(stacks.planTeamNamespace('payments', PAYMENTS).map((c) => c.name).slice(0, 6)).toEqual([
      'payments-namespace',
      'payments-resourcequota-payments-quota',
      'payments-limitrange-payments-limits',
      'payments-networkpolicy-payments-isolate',
      'payments-networkpolicy-payments-allow-https-out',
      'payments-serviceaccount-deployer',
    ]);
    expect(Object.fromEntries(children)['payments-rolebinding-payments-attach-alice-example-com']).toBe('kubernetes:rbac.authorization.k8s.io/v1:RoleBinding');
    for (const r of Object.values(team.resources)) {
      expect(parentOf(r)).toBe(team);
      expect(await promiseOf(r.urn)).toMatch(/::kubedev:index:TeamNamespace\$kubernetes:/);
    }
    expect(Object.values(team.resources).every((r) => r instanceof pulumi.CustomResource)).toBe(true);
  });

  test('no CustomResource stand-ins: each kind is its @pulumi/kubernetes class', async () => {
    const k8s = await import('@pulumi/kubernetes');
    expect(team.resources['payments-namespace']).toBeInstanceOf(k8s.core.v1.Namespace);
    expect(team.resources['payments-role-payments-developer']).toBeInstanceOf(k8s.rbac.v1.Role);
    expect(team.resources['payments-rolebinding-payments-ci']).toBeInstanceOf(k8s.rbac.v1.RoleBinding);
    expect(team.resources['payments-networkpolicy-payments-isolate']).toBeInstanceOf(k8s.networking.v1.NetworkPolicy);
  });

  test('every namespaced child depends on the Namespace; the Namespace depends on nothing', () => {
    const ns = team.resources['payments-namespace'];
    expect(optsByName.get('payments-namespace')).toEqual({ parent: team });
    const namespaced = [...optsByName.entries()].filter(([name]) => name !== 'payments-namespace');
    expect(namespaced).toHaveLength(renderTeamNamespace(PAYMENTS).length - 1);
    for (const [, opts] of namespaced) expect(opts).toEqual({ parent: team, dependsOn: [ns] });
  });

  test("the children's inputs are lib's render, object for object, and validate with kubernetes-models", () => {
    const byName = new Map(registered.filter((r) => r.custom).map((r) => [r.name, r.inputs]));
    const inputs = renderTeamNamespace(PAYMENTS).map((o) => byName.get(kube.childName('payments', o)));
    expect(inputs).toEqual(renderTeamNamespace(PAYMENTS));
    for (const o of inputs) validateWithKubernetesModels(o as never);
  });

  test('outputs: namespace name, CI service accounts, Roles, environment pods', async () => {
    expect(await promiseOf(team.namespaceName)).toBe('team-payments');
    expect(await promiseOf(team.serviceAccountNames)).toEqual(['deployer']);
    expect(await promiseOf(team.roleNames)).toEqual([
      'payments-developer', 'payments-viewer', 'payments-admin', 'payments-ci', 'payments-attach-alice-example-com', 'payments-attach-bob-example-com',
    ]);
    expect(await promiseOf(team.environmentPods)).toEqual({ 'alice@example.com': ['api-0', 'worker-0'], 'bob@example.com': ['api-bob-0'] });
  });
});

describe('kubedev:index:TeamNamespace in personal mode', () => {
  let team: import('../stacks/team-namespace').TeamNamespace;
  let optsByName: Map<string, pulumi.CustomResourceOptions>;
  const ALICE = personalNamespaceName('payments', 'alice@example.com');
  const BOB = personalNamespaceName('payments', 'bob@example.com');

  beforeAll(async () => {
    const spy = jest.spyOn(kube, 'kubeResource');
    team = new stacks.TeamNamespace('pp', PAYMENTS_PERSONAL);
    await settled(Object.values(team.resources));
    optsByName = new Map(spy.mock.calls.map(([name, , opts]) => [name, opts]));
    spy.mockRestore();
  });

  test("children outside the team namespace carry their namespace in their name; the team's keep theirs", () => {
    const names = stacks.planTeamNamespace('pp', PAYMENTS_PERSONAL).map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining([
      'pp-namespace', 'pp-role-payments-developer', `pp-namespace-${ALICE}`, `pp-role-${ALICE}-payments-developer`, `pp-resourcequota-${BOB}-payments-quota`,
    ]));
    const byName = new Map(registered.filter((r) => r.custom).map((r) => [r.name, r.inputs]));
    expect(renderTeamNamespace(PAYMENTS_PERSONAL).map((o) => byName.get(kube.childName('pp', o, 'team-payments')))).toEqual(renderTeamNamespace(PAYMENTS_PERSONAL));
  });

  test('every namespaced child depends on its own Namespace', () => {
    for (const { name, object } of stacks.planTeamNamespace('pp', PAYMENTS_PERSONAL)) {
      const ns = object.metadata.namespace;
      const own = ns === undefined ? undefined : team.resources[ns === 'team-payments' ? 'pp-namespace' : `pp-namespace-${ns}`];
      expect([name, optsByName.get(name)]).toEqual([name, own ? { parent: team, dependsOn: [own] } : { parent: team }]);
    }
  });

  test('outputs: the personal namespaces by owner', async () => {
    expect(await promiseOf(team.namespaceName)).toBe('team-payments');
    expect(await promiseOf(team.personalNamespaces)).toEqual({ 'alice@example.com': ALICE, 'bob@example.com': BOB });
  });
});

describe('bad input', () => {
  test('InputPropertiesError names each property path, and nothing is registered', () => {
    const before = registered.length;
    let error: unknown;
    try {
      new stacks.TeamNamespace('broken', {
        ...SEARCH,
        members: [{ user: 'carol@example.com', role: 'dev' as never }],
        quota: { pods: 0 },
        environments: [{ name: 'indexer', owner: 'carol@example.com', image: '', sidecar: { port: 22 } }],
      });
    } catch (e) {
      error = e;
    }
    expect(pulumi.InputPropertiesError.isInstance(error)).toBe(true);
    const e = error as pulumi.InputPropertiesError;
    // quota.pods: personal mode (the default) gives carol a namespace of 5 pods, which 0 cannot hold.
    expect(e.errors.map((x) => x.propertyPath)).toEqual(['members[0].role', 'environments[0].image', 'environments[0].sidecar.port', 'quota.pods']);
    expect(e.errors[0].reason).toBe("TeamNamespace 'search': member 0 has an unknown role (got 'dev'). Did you mean 'developer'? Use one of 'developer', 'viewer', 'admin'.");
    expect(e.message).toContain("kubedev:index:TeamNamespace 'broken': 4 invalid input properties:\n  - members[0].role: TeamNamespace 'search': member 0 has an unknown role");
    expect(e.stack).toBeUndefined();
    expect(registered.length).toBe(before);
  });
});
