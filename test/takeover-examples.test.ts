/**
 * Every example this repository ships, synthesized: no Service may select a running workload and a
 * dev twin (nor two twins). The cdk8s app (examples/main.ts, what cdk8s.yaml runs) and the Pulumi
 * program (stacks/team-namespaces, under mocks) both. Then parity of the twin itself: lib's
 * devModeOf() + render = the cdk8s fromDeployment = the Pulumi fromDeployment, in both modes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Chart, Testing } from 'cdk8s';
import { testChart } from './support/cdk8s';
import * as kplus from 'cdk8s-plus-28';
import YAML from 'yaml';
import { buildApp } from '../examples/main';
import { DevEnvironment as DevEnvironmentConstruct } from '../constructs/dev-environment';
import { renderDevEnvironment } from '../lib/dev-environment';
import { devModeOf } from '../lib/dev-mode';
import { KubeObject } from '../lib/k8s';
import { scaledDownOriginal, takeOverProblems, trafficSplits } from '../lib/takeover';
import { Registered, installMocks, promiseOf, settled } from './support/team-pulumi';

const PROJECT = 'kubedev-team-namespaces';
const KEY = `${PROJECT}:teams`;
const DIR = path.join(__dirname, '..', 'stacks', 'team-namespaces');

let registered: Registered[];
let stacksEnv: typeof import('../stacks/dev-environment');
let programObjects: KubeObject[];

beforeAll(async () => {
  const sample = YAML.parse(fs.readFileSync(path.join(DIR, 'Pulumi.dev.yaml'), 'utf8')).config[KEY];
  registered = await installMocks(PROJECT, 'dev', { [KEY]: JSON.stringify(sample) });
  // Import after the mocks: this runs the program as `pulumi up` would.
  const index = await import('../stacks/team-namespaces/index');
  await promiseOf(index.environments);
  programObjects = registered.filter((r) => r.custom).map((r) => r.inputs as unknown as KubeObject);
  stacksEnv = await import('../stacks/dev-environment');
});

function exampleObjects(): KubeObject[] {
  const app = buildApp({ outdir: path.join(os.tmpdir(), 'kubedev-examples-unused') });
  return app.node.children.filter((c): c is Chart => c instanceof Chart).flatMap((c) => c.toJson() as KubeObject[]);
}

describe('no example splits a Service between a running workload and a twin', () => {
  const objects = exampleObjects();

  test('the cdk8s example app', () => {
    const twins = objects.filter((o) => o.metadata.annotations?.['kubedev.io/twin-of'] !== undefined);
    expect(twins.map((t) => t.metadata.name)).toEqual(['shop-dev']);
    expect(trafficSplits(objects)).toEqual([]);
    expect(takeOverProblems(objects)).toEqual([]);
  });

  test('the check is live: the same app with the original left running fails it', () => {
    const running = objects.map((o) => (o.kind === 'Deployment' && o.metadata.name === 'shop' ? { ...o, spec: { ...(o.spec as object), replicas: 3 } } : o));
    expect(trafficSplits(running).map((s) => [s.service.name, s.twins, s.running])).toEqual([['shop', ['StatefulSet/shop-dev'], ['Deployment/shop']]]);
  });

  test('the Pulumi program stacks/team-namespaces (it holds no twin; checked all the same)', () => {
    expect(programObjects.length).toBeGreaterThan(20);
    expect(programObjects.some((o) => o.metadata.annotations?.['kubedev.io/twin-of'] !== undefined)).toBe(false);
    expect(trafficSplits(programObjects)).toEqual([]);
  });
});

const sorted = (objects: KubeObject[]) => [...objects].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));

describe('a twin: lib = cdk8s = Pulumi', () => {
  function shopChart() {
    const chart = testChart();
    const shop = new kplus.Deployment(chart, 'shop', {
      metadata: { name: 'shop', namespace: 'team-web' }, replicas: 3, podMetadata: { labels: { tier: 'web' } },
      containers: [{ name: 'shop', image: 'shop:1', portNumber: 8080 }],
    });
    return { chart, shop, original: Testing.synth(chart).find((o) => o.kind === 'Deployment') as KubeObject };
  }

  test.each([
    ['replace', 'output'],
    ['replace', 'up'],
    ['side-by-side', undefined],
  ] as const)('%s (scaleOriginal %s)', async (mode, scaleOriginal) => {
    const { chart, shop, original } = shopChart();
    const options = { owner: 'alice@example.com', image: 'node:20', mode, scaleOriginal };
    DevEnvironmentConstruct.fromDeployment(chart, 'twin', shop, options);
    const cdk8s = Testing.synth(chart) as KubeObject[];

    const lib = renderDevEnvironment(devModeOf(original, options));
    const before = registered.length;
    const env = stacksEnv.DevEnvironment.fromDeployment(`parity-${mode}-${scaleOriginal}`, original, options);
    await settled(Object.values(env.resources));
    const pulumi = registered.slice(before).filter((r) => r.custom).map((r) => r.inputs as unknown as KubeObject);

    expect(sorted(cdk8s.filter((o) => o.kind !== 'Deployment'))).toEqual(sorted(lib));
    expect(sorted(pulumi)).toEqual(sorted(lib));
    // The original, as each writes it: scaled in the output only for replace + 'output'.
    const written = cdk8s.find((o) => o.kind === 'Deployment');
    expect(written).toEqual(mode === 'replace' && scaleOriginal === 'output' ? scaledDownOriginal(original, 'shop-dev') : original);
    // Behind the original's own Service: no split in any mode ('up' parks the twin until `kubedev up` swaps it in).
    const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: 'team-web' }, spec: { selector: (original.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels } };
    expect(trafficSplits([...cdk8s, service])).toEqual([]);
  });
});
