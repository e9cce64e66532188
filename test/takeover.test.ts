/**
 * sync/attach/takeover.ts against the fake kubectl: take-over scales the original to 0 (keeping its
 * count) and then starts the parked twin, release parks the twin and then restores the original; both
 * idempotent, guarded against races, and clear when refused.
 */
import * as fs from 'node:fs';
import { TakeOverTarget } from '../lib/takeover';
import { DEFAULT_PATCH_ATTEMPTS, TakeOverError, TakeOverRecord, release, takeOver } from '../sync/attach/takeover';
import { FakeKubectl, FakeWorld, makeFakeKubectl } from './support/fake-kubectl';

const target: TakeOverTarget = { kind: 'Deployment', name: 'shop', namespace: 'team-web' };
const twinRecord = (name: string): TakeOverRecord => ({ name, namespace: 'team-web', workload: { kind: 'StatefulSet', name }, takeOver: target });
const record = twinRecord('shop-dev');
let fake: FakeKubectl;
let saved: NodeJS.ProcessEnv;

function shop(replicas: number | undefined, annotations?: Record<string, string>): unknown {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: 'shop', namespace: 'team-web', resourceVersion: '7', ...(annotations ? { annotations } : {}) },
    spec: { ...(replicas === undefined ? {} : { replicas }), selector: { matchLabels: { app: 'shop' } } },
  };
}

/** The world, with the twins parked (0 replicas) as the output writes them. */
function world(w: FakeWorld, twins = ['shop-dev']): void {
  const statefulsets = Object.fromEntries(twins.map((t) => [`team-web/${t}`, { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: t, namespace: 'team-web', resourceVersion: '1' }, spec: { replicas: 0 } }]));
  fake.setWorld({ statefulsets, ...w });
}

function current(): { replicas?: number; annotations?: Record<string, string> } {
  const w = JSON.parse(fs.readFileSync(fake.worldFile, 'utf8')) as FakeWorld;
  const d = w.deployments!['team-web/shop'] as { spec: { replicas?: number }; metadata: { annotations?: Record<string, string> } };
  return { replicas: d.spec.replicas, annotations: d.metadata.annotations };
}

function twinReplicas(name = 'shop-dev'): number | undefined {
  const w = JSON.parse(fs.readFileSync(fake.worldFile, 'utf8')) as FakeWorld;
  return (w.statefulsets![`team-web/${name}`] as { spec: { replicas?: number } }).spec.replicas;
}

const patches = (kind = 'deployment') => fake.calls().filter((c) => ['patch', 'scale'].includes(c.args[0]) && c.args[1] === kind);
const changes = () => fake.calls().filter((c) => ['patch', 'scale'].includes(c.args[0])).map((c) => `${c.args[0]} ${c.args[1]}`);

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
  test('keeps the count in kubedev.io/replicas and scales to 0 in one guarded patch, then starts the twin', async () => {
    world({ deployments: { 'team-web/shop': shop(3, { team: 'web' }) } });
    const r = await takeOver(record);
    expect(r).toEqual({
      target, replicas: 3, changed: true, holders: ['shop-dev'],
      message: "scaled Deployment 'shop' in namespace 'team-web' from 3 to 0 replicas while 'shop-dev' replaces it; kubedev down restores 3. Started StatefulSet 'shop-dev'.",
    });
    expect(twinReplicas()).toBe(1);
    // The original first: a gap of one pod start, never both serving.
    expect(changes()).toEqual(['patch deployment', 'scale statefulset']);
    expect(current()).toEqual({ replicas: 0, annotations: { team: 'web', 'kubedev.io/replicas': '3', 'kubedev.io/replaced-by': 'shop-dev' } });
    const [patch] = fake.calls().filter((c) => c.args[0] === 'patch');
    expect(patch.args.slice(0, 7)).toEqual(['patch', 'deployment', 'shop', '-n', 'team-web', '--type', 'json']);
    expect(JSON.parse(patch.args[8])[0]).toEqual({ op: 'test', path: '/metadata/resourceVersion', value: '7' });
  });

  test('is idempotent: a second call keeps the original count and patches nothing', async () => {
    world({ deployments: { 'team-web/shop': shop(3) } });
    await takeOver(record);
    const again = await takeOver(record);
    expect(again.changed).toBe(false);
    expect(again.replicas).toBe(3);
    expect(again.message).toBe("Deployment 'shop' in namespace 'team-web' is already at 0 replicas for 'shop-dev'; kubedev down restores 3.");
    expect(patches()).toHaveLength(1);
    expect(patches('statefulset')).toHaveLength(1);
    expect(current()).toEqual({ replicas: 0, annotations: { 'kubedev.io/replicas': '3', 'kubedev.io/replaced-by': 'shop-dev' } });
  });

  test('a record that takes nothing over changes nothing', async () => {
    world({});
    const r = await takeOver({ ...record, takeOver: undefined });
    expect(r).toEqual({ changed: false, holders: [], message: "environment 'shop-dev' takes nothing over (it is not a replace-mode twin scaled by kubedev up)." });
    expect((await release({ ...record, takeOver: undefined })).changed).toBe(false);
    expect(fake.calls()).toEqual([]);
  });

  test('a twin that cannot be started gives the original back', async () => {
    world({ deployments: { 'team-web/shop': shop(3) }, forbidden: ['scale statefulset'] });
    await expect(takeOver(record)).rejects.toThrow(
      /^the cluster refused to scale StatefulSet 'shop-dev' in namespace 'team-web' \(.*\)\. Replace mode needs get on it and patch of its scale: ask your admin for the team's developer Role, or a DeveloperAccess with environments: \['shop-dev'\] and takeOver\.$/,
    );
    expect(current()).toEqual({ replicas: 3, annotations: {} });
    expect(twinReplicas()).toBe(0);
  });

  test('scales to 0 again what something brought back up, keeping the first count', async () => {
    world({ deployments: { 'team-web/shop': shop(2, { 'kubedev.io/replicas': '3', 'kubedev.io/replaced-by': 'shop-dev' }) } });
    const r = await takeOver(record);
    expect(r.changed).toBe(true);
    expect(current()).toEqual({ replicas: 0, annotations: { 'kubedev.io/replicas': '3', 'kubedev.io/replaced-by': 'shop-dev' } });
  });

  test('a Deployment without replicas (Kubernetes defaults it to 1) keeps 1', async () => {
    world({ deployments: { 'team-web/shop': shop(undefined) } });
    expect((await takeOver(record)).replicas).toBe(1);
    expect(current().replicas).toBe(0);
  });

  test('retries a patch that raced another writer, then gives up naming the likely cause', async () => {
    world({ deployments: { 'team-web/shop': shop(3) }, patchConflicts: 2 });
    expect((await takeOver(record)).changed).toBe(true);
    expect(patches()).toHaveLength(3);
    world({ deployments: { 'team-web/shop': shop(3) }, patchConflicts: 99 });
    await expect(takeOver(record)).rejects.toThrow(/kept changing while kubedev scaled it .*Is a controller \(an HPA with minReplicas 0, KEDA, Argo CD, Flux\) scaling it\?/);
    expect(patches()).toHaveLength(3 + DEFAULT_PATCH_ATTEMPTS);
  });

  test('a missing original and a refusal name the fix', async () => {
    world({ deployments: {} });
    await expect(takeOver(record)).rejects.toThrow(new TakeOverError(
      "Deployment 'shop' in namespace 'team-web' does not exist, so there is nothing to scale. Apply the original first, or give the twin mode 'side-by-side'.", 'not-found',
    ));
    world({ deployments: { 'team-web/shop': shop(3) }, forbidden: ['patch deployment'] });
    await expect(takeOver(record)).rejects.toThrow(
      /^the cluster refused to patch Deployment 'shop' in namespace 'team-web' \(.*forbidden.*\)\. Replace mode needs get and patch on it: ask your admin for the team's developer Role, or a DeveloperAccess with takeOver: \['shop'\]\.$/,
    );
  });

  test('a hostile annotation is refused, not parsed', async () => {
    world({ deployments: { 'team-web/shop': shop(0, { 'kubedev.io/replicas': '1e9', 'kubedev.io/replaced-by': 'x' }) } });
    await expect(takeOver(record)).rejects.toThrow(
      "Deployment 'shop' in namespace 'team-web': annotation 'kubedev.io/replicas' is not a replica count (got '1e9'). Scale it by hand (kubectl scale deployment shop -n team-web --replicas=N) and remove the annotation: kubectl annotate deployment shop -n team-web kubedev.io/replicas-",
    );
    expect(patches()).toHaveLength(0);
  });
});

describe('release()', () => {
  test('parks the twin, then restores the kept count and removes both annotations; a second call says there is nothing to restore', async () => {
    world({ deployments: { 'team-web/shop': shop(3, { team: 'web' }) } });
    await takeOver(record);
    const r = await release(record);
    expect(r).toEqual({ target, replicas: 3, changed: true, holders: [], message: "Stopped StatefulSet 'shop-dev'; restored Deployment 'shop' in namespace 'team-web' to 3 replicas." });
    expect(current()).toEqual({ replicas: 3, annotations: { team: 'web' } });
    expect(twinReplicas()).toBe(0);
    expect(changes()).toEqual(['patch deployment', 'scale statefulset', 'scale statefulset', 'patch deployment']);
    const again = await release(record);
    expect(again).toEqual({
      target, changed: false, holders: [],
      message: "Deployment 'shop' in namespace 'team-web' has no 'kubedev.io/replicas' annotation, so kubedev has no count to restore (it runs 3 replicas).",
    });
    expect(patches()).toHaveLength(2);
  });

  test('a twin already deleted does not stop the original coming back', async () => {
    world({ deployments: { 'team-web/shop': shop(0, { 'kubedev.io/replicas': '2', 'kubedev.io/replaced-by': 'shop-dev' }) } }, []);
    expect((await release(record)).message).toBe("restored Deployment 'shop' in namespace 'team-web' to 2 replicas.");
  });

  test('without the annotation and at 0, says how to scale it by hand', async () => {
    world({ deployments: { 'team-web/shop': shop(0) } });
    expect((await release(record)).message).toBe(
      "Deployment 'shop' in namespace 'team-web' has no 'kubedev.io/replicas' annotation, so kubedev has no count to restore (it runs 0 replicas). If it should run, scale it: kubectl scale deployment shop -n team-web --replicas=N",
    );
  });

  test('two twins: the first to leave keeps the original at 0, the last restores it', async () => {
    world({ deployments: { 'team-web/shop': shop(4) } }, ['alice-shop', 'bob-shop']);
    await takeOver(twinRecord('alice-shop'));
    const second = await takeOver(twinRecord('bob-shop'));
    expect(second.replicas).toBe(4);
    expect(current().annotations).toEqual({ 'kubedev.io/replicas': '4', 'kubedev.io/replaced-by': 'alice-shop,bob-shop' });
    const first = await release(twinRecord('alice-shop'));
    expect(first.message).toBe("Stopped StatefulSet 'alice-shop'; Deployment 'shop' in namespace 'team-web' stays at 0 replicas: 'bob-shop' still replaces it.");
    expect([twinReplicas('alice-shop'), twinReplicas('bob-shop')]).toEqual([0, 1]);
    expect(current()).toEqual({ replicas: 0, annotations: { 'kubedev.io/replicas': '4', 'kubedev.io/replaced-by': 'bob-shop' } });
    expect((await release(twinRecord('bob-shop'))).replicas).toBe(4);
    expect(current()).toEqual({ replicas: 4, annotations: {} });
  });

  test('a get that is refused names the Role to ask for', async () => {
    world({ deployments: { 'team-web/shop': shop(0) }, forbidden: ['get deployment'] });
    await expect(release(record)).rejects.toThrow(/^the cluster refused to get Deployment 'shop'/);
  });
});
