/**
 * Shared by the team/RBAC/stacks/parity tests: a kubernetes-models validator for any rendered
 * object, and the sample team specs.
 */
import { KubeObject } from '../../lib/k8s';
import { TeamNamespaceSpec } from '../../lib/team-namespace';

/** kubernetes-models module of each apiVersion/kind kubedev renders. */
const MODELS: Record<string, string> = {
  'v1/Namespace': 'kubernetes-models/v1/Namespace',
  'v1/ResourceQuota': 'kubernetes-models/v1/ResourceQuota',
  'v1/LimitRange': 'kubernetes-models/v1/LimitRange',
  'v1/ServiceAccount': 'kubernetes-models/v1/ServiceAccount',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Service': 'kubernetes-models/v1/Service',
  'v1/PersistentVolumeClaim': 'kubernetes-models/v1/PersistentVolumeClaim',
  'v1/Secret': 'kubernetes-models/v1/Secret',
  'apps/v1/StatefulSet': 'kubernetes-models/apps/v1/StatefulSet',
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
  'rbac.authorization.k8s.io/v1/Role': 'kubernetes-models/rbac.authorization.k8s.io/v1/Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding',
};

/** Validates one object against the Kubernetes OpenAPI schema; throws with the object's kind/name on failure. */
export function validateWithKubernetesModels(o: KubeObject): void {
  const key = `${o.apiVersion}/${o.kind}`;
  const mod = MODELS[key];
  if (!mod) throw new Error(`no kubernetes-models class mapped for ${key} (add it to test/support/team-models.ts)`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Model = require(mod)[o.kind];
  try {
    new Model(o).validate();
  } catch (e) {
    throw new Error(`${o.kind} '${o.metadata.name}' fails kubernetes-models validation: ${(e as Error).message}`);
  }
}

/** Team one: members of every kind, CI, an environment per developer, an extra allowance. */
export const PAYMENTS: TeamNamespaceSpec = {
  team: 'payments',
  namespace: 'team-payments',
  members: [
    { user: 'alice@example.com', role: 'developer' },
    { user: 'bob@example.com', role: 'developer' },
    { group: 'payments-leads', role: 'admin' },
    { group: 'auditors', role: 'viewer' },
    { serviceAccount: 'dashboard', serviceAccountNamespace: 'monitoring', role: 'viewer' },
  ],
  ci: [{ name: 'deployer', annotations: { 'iam.gke.io/gcp-service-account': 'deployer@example.iam.gserviceaccount.com' } }],
  quota: { cpu: '6', memory: '12Gi', storage: '100Gi', pods: 10, persistentVolumeClaims: 10 },
  network: {
    allow: [{ name: 'https-out', egressTo: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ port: 443 }] }],
  },
  environments: [
    { name: 'api', owner: 'alice@example.com', image: 'node:20', resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '4Gi' } }, caches: [{ path: '/home/dev/.npm', size: '5Gi' }] },
    { name: 'api-bob', owner: 'bob@example.com', image: 'node:20' },
    { name: 'worker', owner: 'alice@example.com', image: 'python:3.12' },
  ],
};

/** Team two: the defaults, one developer, no CI. */
export const SEARCH: TeamNamespaceSpec = {
  team: 'search',
  members: [{ user: 'carol@example.com', role: 'developer' }, { group: 'search-leads', role: 'admin' }],
  environments: [{ name: 'indexer', owner: 'carol@example.com', image: 'golang:1.22' }],
};
