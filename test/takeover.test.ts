/**
 * sync/attach/takeover.ts against the fake kubectl: take-over scales the original to 0 and keeps its
 * count, release restores it; both idempotent, guarded against races, and clear when refused.
 */
import * as fs from 'node:fs';
import { TakeOverTarget } from '../lib/takeover';
import { DEFAULT_PATCH_ATTEMPTS, TakeOverError, release, takeOver } from '../sync/attach/takeover';
import { FakeKubectl, FakeWorld, makeFakeKubectl } from './support/fake-kubectl';

const target: TakeOverTarget = { kind: 'Deployment', name: 'shop', namespace: 'team-web' };
let fake: FakeKubectl;
let saved: NodeJS.ProcessEnv;

function shop(replicas: number | undefined, annotations?: Record<string, string>): unknown {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: 'shop', namespace: 'team-web', resourceVersion: '7', ...(annotations ? { annotations } : {}) },
    spec: { ...(replicas === undefined ? {} : { replicas }), selector: { matchLabels: { app: 'shop' } } },
  };
}

function world(w: FakeWorld): void {
  fake.setWorld(w);
}

function current(): { replicas?: number; annotations?: Record<string, string> } {
  const w = JSON.parse(fs.readFileSync(fake.worldFile, 'utf8')) as FakeWorld;
  const d = w.deployments!['team-web/shop'] as { spec: { replicas?: number }; metadata: { annotations?: Record<string, string> } };
  return { replicas: d.spec.replicas, annotations: d.metadata.annotations };
}

const patches = () => fake.calls().filter((c) => c.args[0] === 'patch');

beforeEach(() => {
  fake = makeFakeKubectl();
  saved = process.env;
  process.env = { ...process.env, ...fake.env };
});

afterEach(() => {
  process.env = saved;
  fake.remove();
});

describe('takeOver()', () => {
  test('keeps the count in kubedev.io/replicas and scales to 0, in one guarded patch', async () => {
    world({ deployments: { 'team-web/shop': shop(3, { team: 'web' }) } });
    const r = await takeOver(target, 'shop-dev');
    expect(r).toEqual({
      target, replicas: 3, changed: true, holders: ['shop-dev'],
      message: "scaled Deployment 'shop' in namespace 'team-web' from 3 to 0 replicas while 'shop-dev' replaces it; kubedev down restores 3.",
    });
    expect(current()).toEqual({ replicas: 0, annotations: { team: 'web', 'kubedev.io/replicas': '3', 'kubedev.io/replaced-by': 'shop-dev' } });
    const [patch] = patches();
    expect(patch.args.slice(0, 7)).toEqual(['patch', 'deployment', 'shop', '-n', 'team-web', '--type', 'json']);
    expect(JSON.parse(patch.args[8])[0]).toEqual({ op: 'test', path: '/metadata/resourceVersion', value: '7' });
  });

  test('is idempotent: a second call keeps the original count and patches nothing', async () => {
    world({ deployments: { 'team-web/shop': shop(3) } });
    await takeOver(target, 'shop-dev');
    const again = await takeOver(target, 'shop-dev');
    expect(again.changed).toBe(false);
    expect(again.replicas).toBe(3);
    expect(again.message).toBe("Deployment 'shop' in namespace 'team-web' is already at 0 replicas for 'shop-dev'; kubedev down restores 3.");
    expect(patches()).toHaveLength(1);
    expect(current()).toEqual({ replicas: 0, annotations: { 'kubedev.io/replicas': '3', 'kubedev.io/replaced-by': 'shop-dev' } });
  });

  test('scales to 0 again what something brought back up, keeping the first count', async () => {
    world({ deployments: { 'team-web/shop': shop(2, { 'kubedev.io/replicas': '3', 'kubedev.io/replaced-by': 'shop-dev' }) } });
    const r = await takeOver(target, 'shop-dev');
    expect(r.changed).toBe(true);
    expect(current()).toEqual({ replicas: 0, annotations: { 'kubedev.io/replicas': '3', 'kubedev.io/replaced-by': 'shop-dev' } });
  });

  test('a Deployment without replicas (Kubernetes defaults it to 1) keeps 1', async () => {
    world({ deployments: { 'team-web/shop': shop(undefined) } });
    expect((await takeOver(target, 'shop-dev')).replicas).toBe(1);
    expect(current().replicas).toBe(0);
  });

  test('retries a patch that raced another writer, then gives up naming the likely cause', async () => {
    world({ deployments: { 'team-web/shop': shop(3) }, patchConflicts: 2 });
    expect((await takeOver(target, 'shop-dev')).changed).toBe(true);
    expect(patches()).toHaveLength(3);
    world({ deployments: { 'team-web/shop': shop(3) }, patchConflicts: 99 });
    await expect(takeOver(target, 'shop-dev')).rejects.toThrow(/kept changing while kubedev scaled it .*Is a controller \(an HPA with minReplicas 0, KEDA, Argo CD, Flux\) scaling it\?/);
    expect(patches()).toHaveLength(3 + DEFAULT_PATCH_ATTEMPTS);
  });

  test('a missing original and a refusal name the fix', async () => {
    world({ deployments: {} });
    await expect(takeOver(target, 'shop-dev')).rejects.toThrow(new TakeOverError(
      "Deployment 'shop' in namespace 'team-web' does not exist, so there is nothing to scale. Apply the original first, or give the twin mode 'side-by-side'.",
    ));
    world({ deployments: { 'team-web/shop': shop(3) }, deploymentsForbidden: ['patch'] });
    await expect(takeOver(target, 'shop-dev')).rejects.toThrow(
      /^the cluster refused to patch Deployment 'shop' in namespace 'team-web' \(.*forbidden.*\)\. Replace mode needs get and patch on it: ask your admin for the team's developer Role, or a DeveloperAccess with takeOver: \['shop'\]\.$/,
    );
  });

  test('a hostile annotation is refused, not parsed', async () => {
    world({ deployments: { 'team-web/shop': shop(0, { 'kubedev.io/replicas': '1e9', 'kubedev.io/replaced-by': 'x' }) } });
    await expect(takeOver(target, 'shop-dev')).rejects.toThrow(
      "Deployment 'shop' in namespace 'team-web': annotation 'kubedev.io/replicas' is not a replica count (got '1e9'). Scale it by hand (kubectl scale deployment shop -n team-web --replicas=N) and remove the annotation: kubectl annotate deployment shop -n team-web kubedev.io/replicas-",
    );
    expect(patches()).toHaveLength(0);
  });
});

describe('release()', () => {
  test('restores the kept count and removes both annotations; a second call says there is nothing to restore', async () => {
    world({ deployments: { 'team-web/shop': shop(3, { team: 'web' }) } });
    await takeOver(target, 'shop-dev');
    const r = await release(target, 'shop-dev');
    expect(r).toEqual({ target, replicas: 3, changed: true, holders: [], message: "restored Deployment 'shop' in namespace 'team-web' to 3 replicas." });
    expect(current()).toEqual({ replicas: 3, annotations: { team: 'web' } });
    const again = await release(target, 'shop-dev');
    expect(again).toEqual({
      target, changed: false, holders: [],
      message: "Deployment 'shop' in namespace 'team-web' has no 'kubedev.io/replicas' annotation, so kubedev has no count to restore (it runs 3 replicas).",
    });
    expect(patches()).toHaveLength(2);
  });

  test('without the annotation and at 0, says how to scale it by hand', async () => {
    world({ deployments: { 'team-web/shop': shop(0) } });
    expect((await release(target, 'shop-dev')).message).toBe(
      "Deployment 'shop' in namespace 'team-web' has no 'kubedev.io/replicas' annotation, so kubedev has no count to restore (it runs 0 replicas). If it should run, scale it: kubectl scale deployment shop -n team-web --replicas=N",
    );
  });

  test('two twins: the first to leave keeps the original at 0, the last restores it', async () => {
    world({ deployments: { 'team-web/shop': shop(4) } });
    await takeOver(target, 'alice-shop');
    const second = await takeOver(target, 'bob-shop');
    expect(second.replicas).toBe(4);
    expect(current().annotations).toEqual({ 'kubedev.io/replicas': '4', 'kubedev.io/replaced-by': 'alice-shop,bob-shop' });
    const first = await release(target, 'alice-shop');
    expect(first.message).toBe("Deployment 'shop' in namespace 'team-web' stays at 0 replicas: 'bob-shop' still replaces it.");
    expect(current()).toEqual({ replicas: 0, annotations: { 'kubedev.io/replicas': '4', 'kubedev.io/replaced-by': 'bob-shop' } });
    expect((await release(target, 'bob-shop')).replicas).toBe(4);
    expect(current()).toEqual({ replicas: 4, annotations: {} });
  });

  test('a get that is refused names the Role to ask for', async () => {
    world({ deployments: { 'team-web/shop': shop(0) }, deploymentsForbidden: ['get'] });
    await expect(release(target, 'shop-dev')).rejects.toThrow(/^the cluster refused to get Deployment 'shop'/);
  });
});
