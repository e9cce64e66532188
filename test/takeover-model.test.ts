/**
 * Take-over without splitting traffic, the model: both modes of devModeOf() and the cdk8s
 * DevEnvironment.fromDeployment, the rule every output must meet (trafficSplits), hostile originals
 * (no selector, matchExpressions, an HPA), exact validation messages, and the RBAC it needs.
 */
import { App, Chart, Testing } from 'cdk8s';
import { testChart } from './support/cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { DevEnvironment } from '../constructs/dev-environment';
import { DeveloperAccess } from '../constructs/developer-access';
import { validateAttachRecord } from '../lib/attach-validate';
import { attachRecordOf, renderDevEnvironment, validateDevEnvironment } from '../lib/dev-environment';
import { devModeOf } from '../lib/dev-mode';
import { renderDeveloperAccess } from '../lib/developer-access';
import { KubeObject } from '../lib/k8s';
import { autoscalerProblems, scaledDownOriginal, selectorKeys, takeOverProblems, trafficSplits } from '../lib/takeover';

function deployment(selector: Record<string, unknown> | undefined, labels: Record<string, string> | undefined, replicas = 3): KubeObject {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'shop', namespace: 'team-web' },
    spec: {
      replicas,
      ...(selector ? { selector } : {}),
      template: { metadata: labels ? { labels } : {}, spec: { containers: [{ name: 'shop', image: 'shop:1', ports: [{ containerPort: 8080 }] }] } },
    },
  };
}

const SHOP = deployment({ matchLabels: { app: 'shop' } }, { app: 'shop', tier: 'web' });
const SERVICE: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: 'team-web' }, spec: { selector: { app: 'shop' }, ports: [{ port: 80 }] } };
const OWNER = { owner: 'alice@example.com', image: 'node:20' };

const twinObjects = (mode: 'replace' | 'side-by-side', original = SHOP, scaleOriginal?: 'output' | 'up') =>
  renderDevEnvironment(devModeOf(original, { ...OWNER, mode, scaleOriginal }));
const twinOf = (objects: KubeObject[]) => objects.find((o) => o.kind === 'StatefulSet') as KubeObject & { spec: { template: { metadata: { labels: Record<string, string> } } } };
const recordOf = (objects: KubeObject[]) => JSON.parse(twinOf(objects).metadata.annotations!['kubedev.io/attach']);

describe('devModeOf(): the two modes', () => {
  test.each([
    // mode, scaleOriginal, the twin's pod labels (besides kubedev's), takeOver in the record
    ['replace', undefined, { app: 'shop', tier: 'web' }, { kind: 'Deployment', name: 'shop', namespace: 'team-web' }],
    ['replace', 'up', { app: 'shop', tier: 'web' }, { kind: 'Deployment', name: 'shop', namespace: 'team-web' }],
    ['replace', 'output', { app: 'shop', tier: 'web' }, undefined],
    ['side-by-side', undefined, { tier: 'web' }, undefined],
  ] as const)('%s (scaleOriginal %s)', (mode, scaleOriginal, labels, takeOver) => {
    const objects = twinObjects(mode, SHOP, scaleOriginal);
    const twin = twinOf(objects);
    expect(twin.spec.template.metadata.labels).toEqual({ ...labels, 'kubedev.io/environment': 'shop-dev' });
    expect(twin.metadata.annotations).toMatchObject({ 'kubedev.io/twin-of': 'Deployment/shop', 'kubedev.io/twin-mode': mode });
    expect(recordOf(objects).takeOver).toEqual(takeOver);
    expect(validateAttachRecord(recordOf(objects))).toEqual([]);
    // The twin's own Service: headless, the original container's ports, selecting the twin alone.
    const own = objects.find((o) => o.kind === 'Service') as KubeObject & { spec: { selector: unknown; ports: { port: number }[] } };
    expect(own.spec.selector).toEqual({ 'kubedev.io/environment': 'shop-dev' });
    expect(own.spec.ports.map((p) => p.port)).toEqual([8080, 2222]);
  });

  test('golden: what each mode writes on the twin (labels, annotations, the record\'s takeOver)', () => {
    const golden = (mode: 'replace' | 'side-by-side', scaleOriginal?: 'output' | 'up') => {
      const objects = twinObjects(mode, SHOP, scaleOriginal);
      const { 'kubedev.io/attach': _record, ...annotations } = twinOf(objects).metadata.annotations!;
      const twin = twinOf(objects) as unknown as { spec: { replicas: number; template: { metadata: { labels: Record<string, string> } } } };
      return { annotations, replicas: twin.spec.replicas, podLabels: twin.spec.template.metadata.labels, takeOver: recordOf(objects).takeOver ?? null };
    };
    expect({ replaceUp: golden('replace'), replaceOutput: golden('replace', 'output'), sideBySide: golden('side-by-side') }).toMatchSnapshot();
  });

  test('the default mode is replace, scaled by `kubedev up`, and such a twin is written parked', () => {
    expect(attachRecordOf(devModeOf(SHOP, OWNER)).takeOver).toEqual({ kind: 'Deployment', name: 'shop', namespace: 'team-web' });
    const parked = twinObjects('replace', SHOP, 'up');
    expect((twinOf(parked) as unknown as { spec: { replicas: number } }).spec.replicas).toBe(0);
    // Beside a running original it splits nothing until `kubedev up` swaps it in.
    expect(trafficSplits([SHOP, SERVICE, ...parked])).toEqual([]);
  });

  test('a running original beside a running replace twin splits traffic; scaled to 0 it does not', () => {
    const twin = twinObjects('replace', SHOP, 'output');
    expect(trafficSplits([SHOP, SERVICE, ...twin]).map((s) => s.message)).toEqual([
      "Service 'shop': selects the dev twin StatefulSet/shop-dev and the running Deployment/shop, so it splits their traffic (got {\"app\":\"shop\"}). Write the original with replicas 0 while the twin exists (mode 'replace' with scaleOriginal 'output', the default for an original in the same app) or give the twin mode 'side-by-side' (its own Service).",
    ]);
    expect(trafficSplits([scaledDownOriginal(SHOP, 'shop-dev'), SERVICE, ...twin])).toEqual([]);
  });

  test('a side-by-side twin is never selected by the original\'s Service', () => {
    expect(trafficSplits([SHOP, SERVICE, ...twinObjects('side-by-side')])).toEqual([]);
  });

  test('two twins behind one Service split it too; other namespaces and selector-less Services do not count', () => {
    const a = renderDevEnvironment(devModeOf(SHOP, { ...OWNER, name: 'alice-shop', scaleOriginal: 'output' }));
    const b = renderDevEnvironment(devModeOf(SHOP, { ...OWNER, name: 'bob-shop', owner: 'bob', scaleOriginal: 'output' }));
    expect(trafficSplits([scaledDownOriginal(SHOP, 'x'), SERVICE, ...a, ...b]).map((s) => s.twins)).toEqual([['StatefulSet/alice-shop', 'StatefulSet/bob-shop']]);
    const elsewhere = { ...SERVICE, metadata: { name: 'shop', namespace: 'other' } };
    const headless = { ...SERVICE, metadata: { name: 'external', namespace: 'team-web' }, spec: { ports: [{ port: 80 }] } };
    expect(trafficSplits([SHOP, elsewhere, headless, ...twinObjects('replace', SHOP, 'output')])).toEqual([]);
  });
});

describe('hostile originals', () => {
  test('no selector labels: side-by-side keeps none of its pod labels (it cannot tell which its Services read)', () => {
    const bare = deployment(undefined, { app: 'shop', team: 'web' });
    expect(selectorKeys(bare)).toBeUndefined();
    expect(twinOf(twinObjects('side-by-side', bare)).spec.template.metadata.labels).toEqual({ 'kubedev.io/environment': 'shop-dev' });
    expect(twinOf(twinObjects('replace', bare)).spec.template.metadata.labels).toEqual({ app: 'shop', team: 'web', 'kubedev.io/environment': 'shop-dev' });
    const empty = deployment({ matchLabels: {} }, undefined);
    expect(twinOf(twinObjects('side-by-side', empty)).spec.template.metadata.labels).toEqual({ 'kubedev.io/environment': 'shop-dev' });
  });

  test('matchExpressions: every key they read is dropped, whatever the operator', () => {
    const expr = deployment(
      { matchLabels: { app: 'shop' }, matchExpressions: [{ key: 'track', operator: 'In', values: ['stable'] }, { key: 'canary', operator: 'DoesNotExist' }, { operator: 'Exists' }] },
      { app: 'shop', track: 'stable', canary: 'no', tier: 'web' },
    );
    expect(selectorKeys(expr)).toEqual(['app', 'track', 'canary']);
    expect(twinOf(twinObjects('side-by-side', expr)).spec.template.metadata.labels).toEqual({ tier: 'web', 'kubedev.io/environment': 'shop-dev' });
  });

  test('an HPA with minReplicas 0 would scale a replaced original back up; with 1 or more it leaves a target at 0 alone', () => {
    const hpa = (minReplicas?: number): KubeObject => ({
      apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'shop', namespace: 'team-web' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'shop' }, minReplicas, maxReplicas: 10 },
    });
    const replaced = scaledDownOriginal(SHOP, 'shop-dev');
    expect(autoscalerProblems([replaced, hpa(1)])).toEqual([]);
    expect(autoscalerProblems([replaced, hpa(undefined)])).toEqual([]);
    expect(autoscalerProblems([SHOP, hpa(0)])).toEqual([]);
    expect(takeOverProblems([replaced, hpa(0)], { name: 'shop-dev', namespace: 'team-web' })).toEqual([
      "HorizontalPodAutoscaler 'shop': has minReplicas 0, so it may scale Deployment 'shop' back up while the twin 'shop-dev' replaces it (got 0). Set minReplicas to 1 or more (an HPA leaves a target at 0 alone then), or give the twin mode 'side-by-side'.",
    ]);
    expect(takeOverProblems([replaced, hpa(0)], { name: 'other', namespace: 'team-web' })).toEqual([]);
  });

  test('a bad mode, scaleOriginal or original are validation problems in lib\'s shape', () => {
    const spec = devModeOf(SHOP, OWNER);
    const bad = { ...spec, inherit: { ...spec.inherit!, mode: 'split', scaleOriginal: 'later', source: { kind: 'Deployment', name: 'Shop!', namespace: 'Team' } } };
    expect(validateDevEnvironment(bad as never)).toEqual([
      "DevEnvironment 'shop-dev': mode is not 'replace' or 'side-by-side' (got 'split'). Use 'replace' (the original runs no pod while the twin exists) or 'side-by-side' (the twin gets its own Service).",
      "DevEnvironment 'shop-dev': scaleOriginal is not 'output' or 'up' (got 'later'). Use 'output' when the same app writes the original, else 'up' (kubedev up scales it at run time).",
      "DevEnvironment 'shop-dev': the original is not a Deployment with a valid name (got {\"kind\":\"Deployment\",\"name\":\"Shop!\",\"namespace\":\"Team\"}). Derive the twin with devModeOf() or DevEnvironment.fromDeployment().",
      "DevEnvironment 'shop-dev': the original's namespace is not a DNS-1123 label (got 'Team'). Give the namespace the original Deployment runs in.",
    ]);
  });

  test('a forged takeOver in an attach record is refused', () => {
    const record = recordOf(twinObjects('replace'));
    expect(validateAttachRecord({ ...record, takeOver: { kind: 'StatefulSet', name: 'shop', namespace: 'team-web' } })).toEqual([
      "attach record field 'takeOver' is not a Deployment with a valid name and namespace (got {\"kind\":\"StatefulSet\",\"name\":\"shop\",\"namespace\":\"team-web\"}). Synthesize the file again with kubedev; never edit the record by hand.",
    ]);
    expect(validateAttachRecord({ ...record, takeOver: { kind: 'Deployment', name: 'shop; rm -rf /', namespace: 'team-web' } })).toHaveLength(1);
  });
});

describe('cdk8s: DevEnvironment.fromDeployment', () => {
  function app() {
    const chart = testChart();
    const shop = new kplus.Deployment(chart, 'shop', {
      metadata: { name: 'shop', namespace: 'team-web' }, replicas: 3, podMetadata: { labels: { tier: 'web' } },
      containers: [{ name: 'shop', image: 'shop:1', portNumber: 8080, securityContext: { ensureNonRoot: false } }],
    });
    const service = shop.exposeViaService({ name: 'shop', ports: [{ port: 80, targetPort: 8080 }] });
    return { chart, shop, service };
  }
  const problems = (chart: Chart) => chart.node.findAll().flatMap((c) => c.node.validate());

  test.each(['replace', 'side-by-side'] as const)('%s: no Service of the app selects the twin and a running workload', (mode) => {
    const { chart, shop } = app();
    DevEnvironment.fromDeployment(chart, 'twin', shop, { ...OWNER, mode });
    expect(problems(chart)).toEqual([]);
    const out = Testing.synth(chart) as KubeObject[];
    expect(trafficSplits(out)).toEqual([]);
    const original = out.find((o) => o.kind === 'Deployment') as KubeObject & { spec: { replicas: number } };
    expect(original.spec.replicas).toBe(mode === 'replace' ? 0 : 3);
  });

  test('side-by-side: a Service that selects a label the Deployment\'s selector does not read is caught at validation', () => {
    const { chart, shop } = app();
    new kplus.Service(chart, 'by-tier', { metadata: { name: 'by-tier', namespace: 'team-web' }, selector: kplus.Pods.select(chart, 'tier', { labels: { tier: 'web' } }), ports: [{ port: 80 }] });
    DevEnvironment.fromDeployment(chart, 'twin', shop, { ...OWNER, mode: 'side-by-side' });
    expect(problems(chart)).toEqual([
      "Service 'by-tier': selects the dev twin StatefulSet/shop-dev and the running Deployment/shop, so it splits their traffic (got {\"tier\":\"web\"}). Write the original with replicas 0 while the twin exists (mode 'replace' with scaleOriginal 'output', the default for an original in the same app) or give the twin mode 'side-by-side' (its own Service).",
    ]);
  });

  test("an original from elsewhere is scaled by `kubedev up`; scaleOriginal 'output' cannot apply to it", () => {
    const chart = testChart();
    const env = DevEnvironment.fromDeployment(chart, 'twin', SHOP, OWNER);
    expect(env.attachRecord.takeOver).toEqual({ kind: 'Deployment', name: 'shop', namespace: 'team-web' });
    const other = testChart();
    DevEnvironment.fromDeployment(other, 'twin', SHOP, { ...OWNER, scaleOriginal: 'output' });
    expect(problems(other)).toEqual([
      "DevEnvironment 'shop-dev': scaleOriginal is 'output' but the original Deployment is not in this app, so nothing would scale it to 0 (got 'output'). Leave scaleOriginal out (kubedev up scales it at run time), or define the original in this app.",
    ]);
  });

  test('an original of another app counts as elsewhere', () => {
    const { shop } = app();
    const chart = new Chart(new App(), 'dev');
    const env = DevEnvironment.fromDeployment(chart, 'twin', shop, OWNER);
    expect(env.attachRecord.takeOver).toEqual({ kind: 'Deployment', name: 'shop', namespace: 'team-web' });
  });
});

describe('RBAC for take-over', () => {
  test('DeveloperAccess grants get and patch of the named Deployments and scale of its twins only, and none for an empty list', () => {
    const base = { namespace: 'team-web', subject: { kind: 'User' as const, name: 'bob' }, environments: ['shop-dev'] };
    const rules = (o: KubeObject) => (o as unknown as { rules: { resources: string[]; verbs: string[]; resourceNames?: string[] }[] }).rules;
    const [role] = renderDeveloperAccess({ ...base, takeOver: ['shop', 'shop'] });
    expect(rules(role).filter((r) => r.resources.some((x) => x.startsWith('deployments') || x.startsWith('statefulsets')))).toEqual([
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'patch'], resourceNames: ['shop'] },
      { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get'], resourceNames: ['shop-dev'] },
      { apiGroups: ['apps'], resources: ['statefulsets/scale'], verbs: ['get', 'patch'], resourceNames: ['shop-dev'] },
    ]);
    const [none] = renderDeveloperAccess({ ...base, takeOver: [] });
    expect(rules(none).some((r) => r.resources.some((x) => x.startsWith('deployments') || x.startsWith('statefulsets')))).toBe(false);
  });

  test('the DeveloperAccess construct adds the originals its environments take over at run time', () => {
    const chart = testChart();
    const env = DevEnvironment.fromDeployment(chart, 'twin', SHOP, OWNER);
    const access = new DeveloperAccess(chart, 'pair', { subject: { user: 'bob' }, environments: [env] });
    const role = access.render().find((o) => o.kind === 'Role') as unknown as { rules: { resources: string[]; resourceNames?: string[] }[] };
    expect(role.rules.find((r) => r.resources.includes('deployments'))!.resourceNames).toEqual(['shop']);
  });
});
