/**
 * Shared by the team/RBAC/stacks/parity tests: a kubernetes-models validator for any rendered
 * object, and the sample team specs.
 */
import { KubeObject } from '../../lib/k8s';
import { TeamNamespaceSpec } from '../../lib/team-namespace';
import { schemaProblems } from './kube';

/** Validates one object against the Kubernetes OpenAPI schema; throws with the object's kind/name on failure. */
export function validateWithKubernetesModels(o: KubeObject): void {
  const problems = schemaProblems(o);
  if (problems.length > 0) throw new Error(`fails kubernetes-models validation: ${problems.join('; ')}`);
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
