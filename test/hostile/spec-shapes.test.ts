/**
 * validateDevEnvironment() never throws and renderDevEnvironment() throws only a ValidationError, whatever
 * a JavaScript caller or a config file puts in any field: every field of a full spec is replaced, in
 * turn, by values of every kind.
 */
import { DevEnvironmentSpec, ValidationError, renderDevEnvironment, validateDevEnvironment } from '../../lib';
/** Every optional field set, so that each can be broken. */
const base: any = {
  name: 'api', namespace: 'team-web', owner: 'alice', image: 'node:20', command: ['a'], args: ['b'], workingDir: '/w',
  sync: [{ local: '.', remote: '/w', ignore: ['x'] }], env: [{ name: 'A', value: '1' }, { name: 'B', secretKeyRef: { name: 's', key: 'k' } }], envFrom: [{ secret: 's' }],
  ports: [{ port: 3000, name: 'http', protocol: 'TCP' }], caches: [{ path: '/c', size: '1Gi', name: 'c' }],
  resources: { requests: { cpu: '1' }, limits: { memory: '1Gi' } }, nodeSelector: { a: 'b' }, tolerations: [{ key: 'k' }], serviceAccountName: 'sa',
  labels: { a: 'b' }, annotations: { a: 'b' }, workspace: { size: '1Gi' }, runAsUser: 1000,
  sidecar: { image: 'i', port: 2222, user: 'dev', authorizedKeysSecret: 'a', hostKeySecret: 'h', resources: { requests: { cpu: '1' } } },
  security: { runAsRoot: false, allowPrivilegeEscalation: false, addCapabilities: ['SYS_PTRACE'] },
  inherit: { source: { kind: 'Deployment', name: 'x' }, volumes: [{ name: 'v' }], volumeMounts: [{ name: 'v', mountPath: '/m' }] },
};
const values: unknown[] = [null, 0, 1.5, '', 'x', '/', [], ['x'], [null], [0], {}, { a: 1 }, true, undefined];
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const here = at.length > 0 ? [at] : [];
  if (Array.isArray(v)) return [...here, ...v.flatMap((x, i) => paths(x, [...at, i]))];
  if (v && typeof v === 'object') return [...here, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...at, k]))];
  return here;
}
test('every field, every kind of value: problems, never a TypeError', () => {
  const fails = new Set<string>();
  for (const p of paths(base)) for (const value of values) {
    const r = structuredClone(base);
    let o: any = r;
    for (const k of p.slice(0, -1)) o = o[k];
    o[p[p.length - 1]] = value;
    try {
      validateDevEnvironment(r as DevEnvironmentSpec);
      renderDevEnvironment(r as DevEnvironmentSpec);
    } catch (e) {
      if (!(e instanceof ValidationError)) fails.add(`${p.join('.')} = ${JSON.stringify(value)}: ${(e as Error).message}`);
    }
  }
  expect([...fails]).toEqual([]);
  expect(validateDevEnvironment(base)).toEqual([]);
});
