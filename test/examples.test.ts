import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Chart } from 'cdk8s';
import { parseAllDocuments } from 'yaml';
import { buildApp, synthesize } from '../examples/main';
import { ATTACH_ANNOTATION, KubeObject, findAttachRecords } from '../lib';
import { podSpecOf, restrictedViolations, schemaProblems } from './support/kube';

function synthAll(): Map<string, KubeObject[]> {
  // Charts are rendered in memory; the app's outdir is never written.
  const app = buildApp({ outdir: path.join(os.tmpdir(), 'kubedev-examples-unused') });
  const charts = new Map<string, KubeObject[]>();
  for (const chart of app.node.children.filter((c): c is Chart => c instanceof Chart)) {
    charts.set(chart.node.id, chart.toJson() as KubeObject[]);
  }
  return charts;
}

describe('the example app', () => {
  const charts = synthAll();
  const all = [...charts.values()].flat();

  test('has the three environments and the dev-mode twin', () => {
    const names = [...findAttachRecords(all, 'examples').keys()].sort();
    expect(names).toEqual(expect.arrayContaining(['api', 'fullstack', 'shop-dev', 'worker']));
  });

  test('every object validates against the Kubernetes OpenAPI schemas', () => {
    expect(all.length).toBeGreaterThan(20);
    expect(all.flatMap(schemaProblems)).toEqual([]);
  });

  test('the schema check itself catches a malformed object', () => {
    const sts = all.find((o) => o.kind === 'StatefulSet') as any;
    const broken = JSON.parse(JSON.stringify(sts));
    broken.spec.template.spec.containers[0].ports = [{ containerPort: 'http' }];
    expect(schemaProblems(broken)).toEqual([expect.stringContaining('containerPort must be integer')]);
  });

  test('every pod spec meets Pod Security Standards "restricted"', () => {
    const workloads = all.filter((o) => podSpecOf(o));
    expect(workloads.length).toBeGreaterThanOrEqual(5);
    expect(workloads.flatMap((o) => restrictedViolations(podSpecOf(o), `${o.kind}/${o.metadata.name}`))).toEqual([]);
  });

  test('every object has a name, and a namespace when namespaced', () => {
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'];
    for (const o of all) {
      expect(o.metadata.name).toMatch(/^[a-z0-9]/);
      if (!clusterScoped.includes(o.kind)) expect(o.metadata.namespace).toMatch(/^[a-z0-9]/);
    }
  });

  test('no private key material anywhere', () => {
    expect(JSON.stringify(all)).not.toMatch(/PRIVATE KEY|BEGIN OPENSSH/);
  });

  test('the fullstack environment has two sync folders and the worker a pip cache', () => {
    const records = findAttachRecords(all, 'examples');
    expect(records.get('fullstack')!.folders.map((f) => f.remote)).toEqual(['/src/web', '/src/server']);
    const worker = all.find((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === 'worker-cache-pip');
    expect(worker).toBeDefined();
  });
});

describe('synthesize()', () => {
  test('writes one YAML file per chart whose workloads carry the attach record', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-dist-')), 'dist');
    const files = synthesize(out);
    // In the order `kubectl apply -f dist/` reads them: each namespace before what lives in it.
    expect(files.map((f) => path.basename(f))).toEqual(['team-data.k8s.yaml', 'team-web.k8s.yaml', 'web-shop.k8s.yaml']);
    const docs = parseAllDocuments(fs.readFileSync(path.join(out, 'team-web.k8s.yaml'), 'utf8')).map((d) => d.toJS() as KubeObject);
    const sts = docs.filter((d) => d.kind === 'StatefulSet');
    expect(sts.map((s) => s.metadata.name).sort()).toEqual(['api', 'fullstack']);
    for (const s of sts) expect(s.metadata.annotations?.[ATTACH_ANNOTATION]).toBeDefined();
    // Nothing is left behind beside the output folder.
    expect(fs.readdirSync(path.dirname(out))).toEqual(['dist']);
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  });
});
