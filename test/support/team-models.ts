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

/** Team one: members of every kind, CI, an environment per developer, an extra allowance; one shared namespace. */
export const PAYMENTS: TeamNamespaceSpec = {
  team: 'payments',
  namespace: 'team-payments',
  isolation: 'team',
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
    {
      name: 'api-bob', owner: 'bob@example.com', image: 'node:20', command: ['node', 'server.js'], ports: [{ port: 3000 }],
      onSync: [{ paths: ['package.json'], run: 'npm ci' }, { paths: ['*.js'], restart: true }], reverse: [{ remote: 9229 }],
    },
    { name: 'worker', owner: 'alice@example.com', image: 'python:3.12', sync: [{ local: '.', remote: '/workspace', mode: 'two-way', remoteOwns: ['dist/', 'package-lock.json'], localOwns: ['src/'] }] },
  ],
};

/** Team two: the defaults (personal isolation), one developer, no CI. */
export const SEARCH: TeamNamespaceSpec = {
  team: 'search',
  members: [{ user: 'carol@example.com', role: 'developer' }, { group: 'search-leads', role: 'admin' }],
  environments: [{ name: 'indexer', owner: 'carol@example.com', image: 'golang:1.22' }],
};

/** Team one in personal mode: alice and bob each get a namespace; the team namespace keeps what remains of the quota. */
export const PAYMENTS_PERSONAL: TeamNamespaceSpec = {
  ...PAYMENTS,
  isolation: 'personal',
  quota: { cpu: '8', memory: '16Gi', storage: '150Gi', pods: 14, persistentVolumeClaims: 20 },
  personalQuota: { cpu: '3', memory: '6Gi', storage: '60Gi', pods: 4, persistentVolumeClaims: 6 },
};
