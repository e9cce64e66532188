import { ApiObject, Chart, JsonPatch, Testing } from 'cdk8s';
import { testApp, testChart } from './support/cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { DevEnvironment } from '../constructs/dev-environment';
import { DeveloperAccess } from '../constructs/developer-access';
import { TeamNamespace } from '../constructs/team-namespace';
import { renderDeveloperAccess } from '../lib/developer-access';
import { KubeObject } from '../lib/k8s';
import { renderTeamNamespace } from '../lib/team-namespace';
import { PAYMENTS, validateWithKubernetesModels } from './support/team-models';

const byKey = (objects: KubeObject[]) => Object.fromEntries(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
const errorsOf = (c: { node: { validate(): string[] } }) => c.node.validate();

describe('TeamNamespace construct', () => {
  test('synthesizes exactly what lib renders', () => {
    const chart = testChart();
    new TeamNamespace(chart, 'payments', PAYMENTS as never);
    const synthesized = Testing.synth(chart) as KubeObject[];
    expect(byKey(synthesized)).toEqual(byKey(renderTeamNamespace(PAYMENTS)));
    expect(synthesized).toHaveLength(renderTeamNamespace(PAYMENTS).length);
    expect(synthesized[0].kind).toBe('Namespace');
    for (const o of synthesized) validateWithKubernetesModels(o);
  });

  test("the Namespace is the ApiObject with id 'Resource', and addJsonPatch works on it", () => {
    const chart = testChart();
    const team = new TeamNamespace(chart, 'team', { team: 'ops' });
    expect(ApiObject.of(team)).toBe(team.apiObject);
    expect(ApiObject.of(team).kind).toBe('Namespace');
    ApiObject.of(team).addJsonPatch(JsonPatch.add('/metadata/annotations', { 'owner.example.com/cost-center': '42' }));
    const ns = (Testing.synth(chart) as KubeObject[])[0];
    expect(ns.metadata.annotations).toEqual({ 'owner.example.com/cost-center': '42' });
    expect(ns.metadata.namespace).toBeUndefined();
  });

  test('accepts cdk8s-plus subjects and DevEnvironment constructs; mutators after construction count', () => {
    const chart = testChart();
    const env = new DevEnvironment(chart, 'api', { name: 'api', namespace: 'web', owner: 'alice@example.com', image: 'node:20' });
    const team = new TeamNamespace(chart, 'web', { team: 'web', isolation: 'team', members: [{ subject: kplus.User.fromName(chart, 'alice', 'alice@example.com'), role: 'developer' }] });
    team.addMember({ subject: kplus.Group.fromName(chart, 'leads', 'web-leads'), role: 'admin' });
    const sa = new kplus.ServiceAccount(chart, 'grafana', { metadata: { name: 'grafana', namespace: 'monitoring' } });
    team.addMember({ subject: sa, role: 'viewer' });
    team.addEnvironment(env);
    env.addPort({ port: 3000 }); // read at synthesis: still fine

    expect(errorsOf(team)).toEqual([]);
    const objects = byKey(Testing.synth(chart) as KubeObject[]);
    expect(objects['RoleBinding/web-admin'].subjects).toEqual([{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'web-leads' }]);
    expect(objects['RoleBinding/web-viewer'].subjects).toEqual([{ kind: 'ServiceAccount', name: 'grafana', namespace: 'monitoring' }]);
    const rules = objects['Role/web-attach-alice-example-com'].rules as unknown[];
    expect(rules.slice(0, 3)).toEqual([
      { apiGroups: [''], resources: ['pods/exec'], verbs: ['create', 'get'], resourceNames: ['api-0'] },
      { apiGroups: [''], resources: ['pods/portforward'], verbs: ['create', 'get'], resourceNames: ['api-0'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'patch'], resourceNames: ['api-ssh-authorized-keys', 'api-ssh-host-keys'] },
    ]);
    // Team mode: only the owner changes the environment's own objects, by name.
    expect(rules).toContainEqual({ apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['update', 'patch', 'delete'], resourceNames: ['api'] });
    expect(objects['StatefulSet/api']).toBeDefined();
  });

  test('hands out its CI ServiceAccount and Roles as cdk8s-plus types', () => {
    const chart = testChart();
    const team = new TeamNamespace(chart, 'team', { team: 'ops' });
    const deployer = team.addCiServiceAccount({ name: 'deployer' });
    expect(deployer.toSubjectConfiguration()).toMatchObject({ kind: 'ServiceAccount', name: 'deployer', namespace: 'ops' });
    expect(team.ciServiceAccount('deployer')).toBe(deployer);
    // A user's own kplus RoleBinding to the team's viewer Role.
    const binding = new kplus.RoleBinding(chart, 'extra', { role: team.role('viewer'), metadata: { namespace: 'ops' } });
    binding.addSubjects(kplus.User.fromName(chart, 'eve', 'eve@example.com'));
    const synthesized = byKey(Testing.synth(chart) as KubeObject[]);
    expect(synthesized['Role/ops-ci']).toBeDefined();
    const kplusBinding = Object.values(synthesized).find((o) => o.kind === 'RoleBinding' && (o.roleRef as { name: string }).name === 'ops-viewer')!;
    expect(kplusBinding.subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'eve@example.com' }]);
  });

  test("validation reports lib's exact messages through node.addValidation", () => {
    const chart = testChart();
    const team = new TeamNamespace(chart, 'team', { team: 'ops', members: [{ user: 'x', role: 'owner' as never }] });
    team.addEnvironment({ name: 'api', owner: 'nobody', image: 'node' });
    expect(errorsOf(team)).toEqual([
      "TeamNamespace 'ops': member 0 has an unknown role (got 'owner'). Use one of 'developer', 'viewer', 'admin'.",
      "TeamNamespace 'ops': environment 'api' is owned by a subject with no role in the team (got 'nobody'). Add a member { user: 'nobody', role: 'developer' }, or change the owner.",
    ]);
    const app = testApp();
    const c2 = new Chart(app, 'c2');
    new TeamNamespace(c2, 'team', { team: 'Bad_Name' });
    expect(() => app.synth()).toThrow("TeamNamespace 'Bad_Name': team name is not a DNS-1123 label of at most 40 characters (got 'Bad_Name')");
  });
});

describe('DeveloperAccess construct', () => {
  test('grants a kplus user exec/port-forward into named environments and the team developer Role', () => {
    const chart = testChart();
    const team = new TeamNamespace(chart, 'team', { team: 'web', isolation: 'team', members: [{ user: 'alice', role: 'developer' }] });
    const env = new DevEnvironment(chart, 'api', { name: 'api', namespace: 'web', owner: 'alice', image: 'node:20' });
    team.addEnvironment(env);
    const access = new DeveloperAccess(chart, 'pairing', { team, subject: kplus.User.fromName(chart, 'bob', 'bob@example.com'), environments: [env, 'worker'] });
    expect(ApiObject.of(access).kind).toBe('Role');
    const objects = byKey(Testing.synth(chart) as KubeObject[]);
    expect(objects['Role/web-access-bob-example-com']).toMatchObject({
      metadata: { namespace: 'web' },
      rules: [
        { apiGroups: [''], resources: ['pods/exec'], verbs: ['create', 'get'], resourceNames: ['api-0', 'worker-0'] },
        { apiGroups: [''], resources: ['pods/portforward'], verbs: ['create', 'get'], resourceNames: ['api-0', 'worker-0'] },
        // Only read, so `kubedev up` can check them; the owner keeps get/patch.
        { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['api-ssh-authorized-keys', 'api-ssh-host-keys', 'worker-ssh-authorized-keys', 'worker-ssh-host-keys'] },
      ],
    });
    expect(objects['RoleBinding/web-access-bob-example-com-developer']).toMatchObject({
      roleRef: { kind: 'Role', name: 'web-developer' },
      subjects: [{ kind: 'User', name: 'bob@example.com' }],
    });
    for (const o of access.render()) validateWithKubernetesModels(o);
  });

  test('without a team: only the attach Role and its binding; lib renders the same', () => {
    const chart = testChart();
    new DeveloperAccess(chart, 'a', { namespace: 'dev', subject: { serviceAccount: 'bot' }, environments: ['x'] });
    const synthesized = Testing.synth(chart) as KubeObject[];
    expect(byKey(synthesized)).toEqual(
      byKey(renderDeveloperAccess({ namespace: 'dev', subject: { kind: 'ServiceAccount', name: 'bot' }, environments: ['x'] })),
    );
    expect(synthesized.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Role/access-dev-bot', 'RoleBinding/access-dev-bot']);
    expect(synthesized[1].subjects).toEqual([{ kind: 'ServiceAccount', name: 'bot', namespace: 'dev' }]);
  });

  test("a DevEnvironment's own key Secret names are used", () => {
    const chart = testChart();
    const env = new DevEnvironment(chart, 'api', { name: 'api', namespace: 'web', owner: 'alice', image: 'node:20', sidecar: { hostKeySecret: 'api-hostkey' } });
    const access = new DeveloperAccess(chart, 'a', { subject: { user: 'bob' }, environments: [env] });
    expect(access.namespace).toBe('web');
    expect((access.render()[0].rules as { resources: string[]; resourceNames: string[] }[]).find((r) => r.resources[0] === 'secrets')!.resourceNames).toEqual([
      'api-hostkey', 'api-ssh-authorized-keys',
    ]);
  });

  test('refuses access to no environment, with the exact message', () => {
    const chart = testChart();
    const access = new DeveloperAccess(chart, 'a', { namespace: 'dev', subject: { user: 'bob' }, environments: [] });
    expect(errorsOf(access)).toEqual([
      "DeveloperAccess 'access-bob': grants access to no environment (got []). List at least one environment name.",
    ]);
  });
});

describe('TeamNamespace.fromTeamName', () => {
  test('a team defined elsewhere: DeveloperAccess and kplus bindings work against it', () => {
    const chart = testChart();
    const team = TeamNamespace.fromTeamName(chart, 'payments', 'payments', 'team-payments');
    expect(team.namespaceName).toBe('team-payments');
    expect(team.role('developer').name).toBe('payments-developer');
    expect(team.ciServiceAccount('deployer').toSubjectConfiguration()).toMatchObject({ kind: 'ServiceAccount', name: 'deployer', namespace: 'team-payments' });
    new DeveloperAccess(chart, 'oncall-access', { team, subject: kplus.Group.fromName(chart, 'oncall', 'oncall'), environments: ['api'] });
    const synthesized = Testing.synth(chart) as KubeObject[];
    expect(synthesized.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'Role/team-payments/payments-access-oncall',
      'RoleBinding/team-payments/payments-access-oncall',
      'RoleBinding/team-payments/payments-access-oncall-developer',
    ]);
    expect(synthesized[2]).toMatchObject({ roleRef: { name: 'payments-developer' }, subjects: [{ kind: 'Group', name: 'oncall' }] });
  });
});

describe('TeamNamespace construct, personal mode', () => {
  const nsKey = (objects: KubeObject[]) => Object.fromEntries(objects.map((o) => [`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));

  test("namespaceFor() names the owner's namespace; mutators after construction add what it needs; synth equals lib", () => {
    const chart = testChart();
    const team = new TeamNamespace(chart, 'web', { team: 'web', members: [{ user: 'alice@example.com', role: 'developer' }] });
    const ns = team.namespaceFor('alice@example.com');
    expect(ns).toBe('web-alice-example-com-ff8d98');
    expect(team.namespaceFor('nobody')).toBe('web'); // not a member: no personal namespace
    const env = new DevEnvironment(chart, 'api', { name: 'api', namespace: ns, owner: 'alice@example.com', image: 'node:20' });
    team.addEnvironment(env);
    // Added after the environment: bob gets read in alice's namespace, CI gets its Role there.
    team.addMember({ subject: kplus.User.fromName(chart, 'bob', 'bob@example.com'), role: 'developer' });
    team.addCiServiceAccount({ name: 'deployer' });
    expect(errorsOf(team)).toEqual([]);
    const synthesized = Testing.synth(chart) as KubeObject[];
    const objects = nsKey(synthesized);
    expect(objects[`RoleBinding/${ns}/web-viewer`].subjects).toEqual([{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'bob@example.com' }]);
    expect(objects[`RoleBinding/${ns}/web-ci`].subjects).toEqual([{ kind: 'ServiceAccount', name: 'deployer', namespace: 'web' }]);
    expect(objects[`StatefulSet/${ns}/api`]).toBeDefined();
    const teamObjects = synthesized.filter((o) => o.metadata.labels?.['kubedev.io/team'] === 'web');
    expect(nsKey(teamObjects)).toEqual(nsKey(team.render()));
    expect(teamObjects).toHaveLength(team.render().length);
    // The personal Namespace comes before the environment that lives in it.
    const at = (kind: string, name: string) => synthesized.findIndex((o) => o.kind === kind && o.metadata.name === name);
    expect(at('Namespace', ns)).toBeLessThan(at('StatefulSet', 'api'));
    expect(at('Namespace', ns)).toBeLessThan(at('PersistentVolumeClaim', 'api-workspace'));
    expect(team.node.tryFindChild(`Namespace-${ns}`)).toBeInstanceOf(ApiObject);
    expect(team.node.tryFindChild(`Role-${ns}-web-developer`)).toBeInstanceOf(ApiObject);
    expect(team.environmentSpecs().map((e) => e.namespace)).toEqual([ns]);
  });

  test("an environment left in the chart's namespace is refused, naming namespaceFor()", () => {
    const chart = new Chart(testApp(), 'c', { namespace: 'web' });
    const team = new TeamNamespace(chart, 'web', { team: 'web', members: [{ user: 'dana', role: 'developer' }] });
    team.addEnvironment(new DevEnvironment(chart, 'api', { name: 'api', owner: 'dana', image: 'node:20' }));
    expect(errorsOf(team)).toEqual([
      "TeamNamespace 'web': environment 'api' is not in the personal namespace of its owner 'dana' (got 'web'). Set it to 'web-dana' (in cdk8s: namespace: team.namespaceFor('dana')), or leave it out of a plain spec.",
    ]);
  });

  test("DeveloperAccess into a personal namespace grants attach only, unless the developer Role is asked for", () => {
    const chart = testChart();
    const team = new TeamNamespace(chart, 'web', { team: 'web', members: [{ user: 'dana', role: 'developer' }] });
    const env = new DevEnvironment(chart, 'api', { name: 'api', namespace: team.namespaceFor('dana'), owner: 'dana', image: 'node:20' });
    team.addEnvironment(env);
    const pairing = new DeveloperAccess(chart, 'pairing', { team, subject: { user: 'erin' }, environments: [env] });
    expect(pairing.namespace).toBe('web-dana');
    expect(pairing.render().map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['Role/web-dana/web-access-erin', 'RoleBinding/web-dana/web-access-erin']);
    const full = new DeveloperAccess(chart, 'full', { team, subject: { user: 'finn' }, environments: [env], developer: true });
    expect(full.render().map((o) => o.metadata.name)).toEqual(['web-access-finn', 'web-access-finn', 'web-access-finn-developer']);
  });
});
