/**
 * One model, three renderings: lib's render(), cdk8s synth of the constructs, and the inputs of the
 * mocked Pulumi resources. For the sample teams in both isolation modes and every environment they
 * host, the Kubernetes objects must be equal, object for object, and valid.
 */
import { Testing } from 'cdk8s';
import { testChart } from './support/cdk8s';
import { DevEnvironment as DevEnvironmentConstruct } from '../constructs/dev-environment';
import { TeamNamespace as TeamNamespaceConstruct } from '../constructs/team-namespace';
import { renderDevEnvironment } from '../lib/dev-environment';
import { KubeObject } from '../lib/k8s';
import { TeamNamespaceSpec, renderTeamNamespace, teamEnvironments } from '../lib/team-namespace';
import { restrictedViolations, podSpecOf } from './support/kube';
import { PAYMENTS, PAYMENTS_PERSONAL, SEARCH, validateWithKubernetesModels } from './support/team-models';
import { Registered, installMocks, promiseOf, settled } from './support/team-pulumi';

let registered: Registered[];
let stacksTeam: typeof import('../stacks/team-namespace');
let stacksEnv: typeof import('../stacks/dev-environment');

beforeAll(async () => {
  registered = await installMocks();
  stacksTeam = await import('../stacks/team-namespace');
  stacksEnv = await import('../stacks/dev-environment');
});

const key = (o: KubeObject) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const keyed = (objects: readonly KubeObject[]) => {
  const map = new Map<string, KubeObject>();
  for (const o of objects) {
    if (map.has(key(o))) throw new Error(`duplicate object ${key(o)}`);
    map.set(key(o), o);
  }
  return Object.fromEntries([...map.entries()].sort(([a], [b]) => a.localeCompare(b)));
};

function viaLib(spec: TeamNamespaceSpec): KubeObject[] {
  return [...renderTeamNamespace(spec), ...teamEnvironments(spec).flatMap((e) => renderDevEnvironment(e))];
}

function viaCdk8s(spec: TeamNamespaceSpec): KubeObject[] {
  const chart = testChart();
  const { environments, ...rest } = spec;
  const team = new TeamNamespaceConstruct(chart, spec.team, rest);
  for (const e of teamEnvironments({ ...spec, environments })) team.addEnvironment(new DevEnvironmentConstruct(chart, e.name, e));
  expect(chart.node.findAll().flatMap((c) => c.node.validate())).toEqual([]);
  return Testing.synth(chart) as KubeObject[];
}

async function viaPulumi(spec: TeamNamespaceSpec): Promise<KubeObject[]> {
  const before = registered.length;
  const team = new stacksTeam.TeamNamespace(`parity-${spec.team}`, spec);
  const envs = teamEnvironments(spec).map((e) => new stacksEnv.DevEnvironment(`parity-${spec.team}-${e.name}`, e, { dependsOn: [team] }));
  await settled([...Object.values(team.resources), ...envs.flatMap((e) => Object.values(e.resources))]);
  await Promise.all(envs.map((e) => promiseOf(e.attachRecord)));
  return registered.slice(before).filter((r) => r.custom).map((r) => r.inputs as unknown as KubeObject);
}

describe.each([
  ['payments (team mode)', PAYMENTS],
  ['payments (personal mode)', PAYMENTS_PERSONAL],
  ['search (personal by default)', SEARCH],
])('team %s', (_name, spec) => {
  let lib: KubeObject[];
  let cdk8s: KubeObject[];
  let pulumi: KubeObject[];

  beforeAll(async () => {
    lib = viaLib(spec);
    cdk8s = viaCdk8s(spec);
    pulumi = await viaPulumi(spec);
  });

  test('the three renderings hold the same objects', () => {
    expect(lib.length).toBeGreaterThan(10);
    expect(cdk8s).toHaveLength(lib.length);
    expect(pulumi).toHaveLength(lib.length);
    expect(Object.keys(keyed(cdk8s))).toEqual(Object.keys(keyed(lib)));
    expect(Object.keys(keyed(pulumi))).toEqual(Object.keys(keyed(lib)));
  });

  test('cdk8s synth equals render()', () => {
    expect(keyed(cdk8s)).toEqual(keyed(lib));
  });

  test("the Pulumi resources' inputs equal render()", () => {
    expect(keyed(pulumi)).toEqual(keyed(lib));
  });

  test('every object validates with kubernetes-models, and every pod spec meets Pod Security "restricted"', () => {
    for (const o of lib) validateWithKubernetesModels(o);
    for (const o of lib) {
      const pod = podSpecOf(o);
      if (pod) expect(restrictedViolations(pod, `${o.kind}/${o.metadata.name}`)).toEqual([]);
    }
  });
});
