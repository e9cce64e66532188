import * as pulumi from '@pulumi/pulumi';
import { readAttachRecord } from '../lib/attach';
import { DevEnvironmentSpec, renderDevEnvironment } from '../lib/dev-environment';
import { validateWithKubernetesModels } from './support/team-models';
import { Registered, installMocks, parentOf, promiseOf, settled } from './support/team-pulumi';

let registered: Registered[];
let stacks: typeof import('../stacks/dev-environment');

beforeAll(async () => {
  registered = await installMocks();
  stacks = await import('../stacks/dev-environment');
});

const API: DevEnvironmentSpec = {
  name: 'api',
  namespace: 'team-payments',
  owner: 'alice@example.com',
  image: 'node:20',
  ports: [{ port: 3000 }],
  caches: [{ path: '/home/dev/.npm', size: '5Gi' }],
};

describe('kubedev:index:DevEnvironment', () => {
  let env: import('../stacks/dev-environment').DevEnvironment;

  beforeAll(async () => {
    env = new stacks.DevEnvironment('api', API);
    await settled(Object.values(env.resources));
  });

  test('children: typed, named `${name}-<role>`, parented, inputs equal to lib render', async () => {
    expect(registered.filter((r) => !r.custom).map((r) => [r.type, r.name])).toEqual([['kubedev:index:DevEnvironment', 'api']]);
    const rendered = renderDevEnvironment(API);
    const byName = new Map(registered.filter((r) => r.custom).map((r) => [r.name, r]));
    expect([...byName.keys()].sort()).toEqual(['api-configmap-api-sshd', 'api-persistentvolumeclaim-api-cache-home-dev-npm', 'api-persistentvolumeclaim-api-workspace', 'api-service', 'api-statefulset']);
    expect(byName.get('api-statefulset')!.type).toBe('kubernetes:apps/v1:StatefulSet');
    expect(byName.get('api-service')!.type).toBe('kubernetes:core/v1:Service');
    expect(byName.get('api-configmap-api-sshd')!.type).toBe('kubernetes:core/v1:ConfigMap');
    expect(byName.get('api-persistentvolumeclaim-api-workspace')!.type).toBe('kubernetes:core/v1:PersistentVolumeClaim');
    const plan = stacks.planDevEnvironment('api', API);
    expect(plan.map((c) => byName.get(c.name)!.inputs)).toEqual(rendered);
    for (const c of plan) validateWithKubernetesModels(byName.get(c.name)!.inputs as never);
    for (const r of Object.values(env.resources)) expect(parentOf(r)).toBe(env);
  });

  test('outputs: namespace, workload, pod and the attach record the StatefulSet carries', async () => {
    expect(await promiseOf(env.namespace)).toBe('team-payments');
    expect(await promiseOf(env.workloadName)).toBe('api');
    expect(await promiseOf(env.podName)).toBe('api-0');
    const record = await promiseOf(env.attachRecord);
    const statefulSet = renderDevEnvironment(API).find((o) => o.kind === 'StatefulSet')!;
    expect(record).toEqual(readAttachRecord(statefulSet, 'render'));
    expect(record).toMatchObject({ name: 'api', namespace: 'team-payments', pod: 'api-0' });
  });
});

describe('bad input', () => {
  test('InputPropertiesError with a property path per problem; nothing registered', () => {
    const before = registered.length;
    let error: unknown;
    try {
      new stacks.DevEnvironment('bad', { ...API, image: '', sidecar: { port: 80 }, sync: [{ local: '.', remote: 'relative' }] });
    } catch (e) {
      error = e;
    }
    expect(pulumi.InputPropertiesError.isInstance(error)).toBe(true);
    const e = error as pulumi.InputPropertiesError;
    expect(e.errors.map((x) => x.propertyPath)).toEqual(['image', 'sync[0].remote', 'sidecar.port']);
    expect(e.errors[0].reason).toMatch(/^DevEnvironment 'api': image is missing \(got ''\)\./);
    expect(registered.length).toBe(before);
  });

  test('problems carry the property path they concern', () => {
    const bad = { ...API, sync: [{ local: '', remote: '/a' }, { local: 'b', remote: '/a/b' }], ports: [{ name: 'http', port: 0 }], caches: [{ path: '/c', size: 'big' }], resources: { requests: { cpu: 'x' } } };
    expect(stacks.devEnvironmentProblems(bad as any).map((p: { path: string }) => p.path)).toEqual([
      'sync[0].local', 'sync[1].remote', 'ports[0].port', 'caches[0].size', 'resources.requests.cpu',
    ]);
  });

  test('the dev process: onSync and reverse problems carry their paths', () => {
    const bad = { ...API, onSync: [{ paths: [], run: 'npm ci' }, { paths: ['*.js'], restart: true }], reverse: [{ remote: 80 }] };
    expect(stacks.devEnvironmentProblems(bad).map((p: { path: string }) => p.path)).toEqual(['onSync[0].paths', 'onSync[1].restart', 'reverse[0].remote']);
  });
});
