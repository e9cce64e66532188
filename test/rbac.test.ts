/**
 * Every Role the sample teams render, walked rule by rule: the exact verbs on the exact resources
 * each role gets, and no '*' anywhere.
 */
import { KubeObject } from '../lib/k8s';
import { PolicyRule, attachRules, ciRules, hasWildcard } from '../lib/rbac';
import { renderTeamNamespace } from '../lib/team-namespace';
import { PAYMENTS, SEARCH } from './support/team-models';

const READ = 'get,list,watch';
const MANAGE = 'get,list,watch,create,update,patch,delete';

/** One line per (apiGroup, resource[, name]): its verbs. '' is the core group. */
function table(rules: readonly PolicyRule[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rules) {
    for (const g of r.apiGroups) {
      for (const res of r.resources) {
        const names = r.resourceNames ? `[${r.resourceNames.join(',')}]` : '';
        const key = `${g === '' ? 'core' : g} ${res}${names}`;
        if (out[key] !== undefined) throw new Error(`${key} appears in two rules`);
        out[key] = r.verbs.join(',');
      }
    }
  }
  return out;
}

const VIEWER = {
  'core configmaps': READ,
  'core endpoints': READ,
  'core events': READ,
  'core limitranges': READ,
  'core persistentvolumeclaims': READ,
  'core pods': READ,
  'core resourcequotas': READ,
  'core serviceaccounts': READ,
  'core services': READ,
  'core pods/log': 'get',
  'apps controllerrevisions': READ,
  'apps deployments': READ,
  'apps replicasets': READ,
  'apps statefulsets': READ,
  'batch cronjobs': READ,
  'batch jobs': READ,
  'events.k8s.io events': READ,
  'networking.k8s.io networkpolicies': READ,
};

const DEVELOPER = {
  'core configmaps': MANAGE,
  'core persistentvolumeclaims': MANAGE,
  'core pods': MANAGE,
  'core services': MANAGE,
  'core pods/log': 'get',
  'core endpoints': READ,
  'core events': READ,
  'core limitranges': READ,
  'core resourcequotas': READ,
  'core serviceaccounts': READ,
  'apps deployments': MANAGE,
  'apps statefulsets': MANAGE,
  'apps deployments/scale': 'get,update,patch',
  'apps statefulsets/scale': 'get,update,patch',
  'apps controllerrevisions': READ,
  'apps replicasets': READ,
  'batch cronjobs': MANAGE,
  'batch jobs': MANAGE,
  'events.k8s.io events': READ,
  'networking.k8s.io networkpolicies': READ,
};

const ADMIN = {
  ...DEVELOPER,
  'core secrets': MANAGE,
  'rbac.authorization.k8s.io rolebindings': MANAGE,
  'rbac.authorization.k8s.io roles': READ,
};

const CI = {
  'core configmaps': 'get,list,create,patch,delete',
  'core persistentvolumeclaims': 'get,list,create,patch,delete',
  'core services': 'get,list,create,patch,delete',
  'apps statefulsets': 'get,list,create,patch,delete',
};

const roles = (objects: KubeObject[]) => new Map(objects.filter((o) => o.kind === 'Role').map((o) => [o.metadata.name, o.rules as PolicyRule[]]));
const payments = roles(renderTeamNamespace(PAYMENTS));
const search = roles(renderTeamNamespace(SEARCH));

describe.each([
  ['payments-viewer', payments, VIEWER],
  ['payments-developer', payments, DEVELOPER],
  ['payments-admin', payments, ADMIN],
  ['payments-ci', payments, CI],
  ['payments-attach-alice-example-com', payments, {
    'core pods/exec[api-0,worker-0]': 'create,get',
    'core pods/portforward[api-0,worker-0]': 'create,get',
    'core secrets[api-ssh-authorized-keys,api-ssh-host-keys,worker-ssh-authorized-keys,worker-ssh-host-keys]': 'get,patch',
  }],
  ['payments-attach-bob-example-com', payments, {
    'core pods/exec[api-bob-0]': 'create,get',
    'core pods/portforward[api-bob-0]': 'create,get',
    'core secrets[api-bob-ssh-authorized-keys,api-bob-ssh-host-keys]': 'get,patch',
  }],
  ['search-viewer', search, VIEWER],
  ['search-developer', search, DEVELOPER],
  ['search-admin', search, ADMIN],
  ['search-attach-carol-example-com', search, {
    'core pods/exec[indexer-0]': 'create,get',
    'core pods/portforward[indexer-0]': 'create,get',
    'core secrets[indexer-ssh-authorized-keys,indexer-ssh-host-keys]': 'get,patch',
  }],
])('Role %s', (name, rendered, expected) => {
  const rules = rendered.get(name);

  test('exists', () => {
    expect(rules).toBeDefined();
  });

  test('grants exactly the expected verbs on exactly the expected resources', () => {
    expect(table(rules!)).toEqual(expected);
  });

  test("holds no '*' in verbs, resources, API groups or names", () => {
    for (const r of rules!) {
      for (const s of [...r.apiGroups, ...r.resources, ...r.verbs, ...(r.resourceNames ?? [])]) expect(s).not.toContain('*');
    }
    expect(hasWildcard(rules!)).toBe(false);
  });
});

describe('least privilege, across every Role rendered', () => {
  const all = [...payments.entries(), ...search.entries()];

  test('the tables cover every Role the teams render (no unchecked Role)', () => {
    expect([...payments.keys()].sort()).toEqual(
      ['payments-admin', 'payments-attach-alice-example-com', 'payments-attach-bob-example-com', 'payments-ci', 'payments-developer', 'payments-viewer'],
    );
    expect([...search.keys()].sort()).toEqual(['search-admin', 'search-attach-carol-example-com', 'search-developer', 'search-viewer']);
  });

  test('exec and port-forward appear only with resourceNames, and only in attach Roles', () => {
    for (const [name, rules] of all) {
      for (const r of rules) {
        if (r.resources.some((res) => ['pods/exec', 'pods/portforward', 'pods/attach', 'pods/proxy', 'pods/ephemeralcontainers'].includes(res))) {
          expect(name).toMatch(/-attach-/);
          expect(r.resources.every((res) => res === 'pods/exec' || res === 'pods/portforward')).toBe(true);
          expect(r.resourceNames?.length).toBeGreaterThan(0);
        }
      }
    }
  });

  test("Secrets: admins manage them; an owner may only get/patch their own environments' key Secrets; viewers none", () => {
    for (const [name, rules] of all) {
      const secretRules = rules.filter((r) => r.resources.includes('secrets'));
      if (name.endsWith('-admin')) {
        expect(secretRules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: MANAGE.split(',') }]);
      } else if (name.includes('-attach-')) {
        expect(secretRules).toHaveLength(1);
        expect(secretRules[0].verbs).toEqual(['get', 'patch']);
        expect(secretRules[0].resourceNames!.length).toBeGreaterThan(0);
        expect(secretRules[0].resourceNames!.every((n) => /-ssh-(host-keys|authorized-keys)$/.test(n))).toBe(true);
      } else {
        expect([name, secretRules]).toEqual([name, []]);
      }
      const touchesBindings = rules.some((r) => r.resources.includes('rolebindings'));
      expect([name, touchesBindings]).toEqual([name, name.endsWith('-admin')]);
    }
  });

  test('every rule with resourceNames names something (an empty list would mean everything)', () => {
    for (const [, rules] of all) for (const r of rules) if (r.resourceNames !== undefined) expect(r.resourceNames.length).toBeGreaterThan(0);
  });

  test('nothing cluster-scoped: only Roles and RoleBindings, never ClusterRole(Binding)', () => {
    const kinds = [...renderTeamNamespace(PAYMENTS), ...renderTeamNamespace(SEARCH)].map((o) => o.kind);
    expect(kinds).not.toContain('ClusterRole');
    expect(kinds).not.toContain('ClusterRoleBinding');
    for (const [, rules] of all) {
      for (const r of rules) {
        expect(r.resources).not.toEqual(expect.arrayContaining(['namespaces']));
        expect(r.resources).not.toEqual(expect.arrayContaining(['nodes']));
      }
    }
  });

  test('no deletecollection, escalate, bind or impersonate anywhere', () => {
    for (const [, rules] of all) {
      for (const r of rules) {
        for (const verb of ['deletecollection', 'escalate', 'bind', 'impersonate']) expect(r.verbs).not.toContain(verb);
      }
    }
  });

  test('hasWildcard catches a star in any position', () => {
    expect(hasWildcard([{ apiGroups: ['*'], resources: ['pods'], verbs: ['get'] }])).toBe(true);
    expect(hasWildcard([{ apiGroups: [''], resources: ['*/exec'], verbs: ['get'] }])).toBe(true);
    expect(hasWildcard([{ apiGroups: [''], resources: ['pods'], verbs: ['*'] }])).toBe(true);
    expect(hasWildcard([{ apiGroups: [''], resources: ['pods'], verbs: ['get'], resourceNames: ['*'] }])).toBe(true);
  });

  test('no pods and no Secrets means no attach rule (empty resourceNames would mean every one)', () => {
    expect(attachRules([])).toEqual([]);
    expect(attachRules([], [])).toEqual([]);
    expect(attachRules(['a-0'], []).map((r) => r.resources[0])).toEqual(['pods/exec', 'pods/portforward']);
  });

  test('CI rules refuse a kind they do not know', () => {
    expect(() => ciRules(['ClusterRole'])).toThrow("ciRules: no resource is known for kind 'ClusterRole'");
  });
});
