/**
 * Checks of rendered objects against Kubernetes itself: the OpenAPI schemas (kubernetes-models)
 * and the Pod Security Standards "restricted" profile.
 */
import { KubeObject } from '../../lib/k8s';

/** Validates one object against its kind's OpenAPI schema; returns the problems (empty when valid). */
export function schemaProblems(object: KubeObject): string[] {
  const where = `${object.kind}/${object.metadata?.name}`;
  const modulePath = `kubernetes-models/${object.apiVersion}/${object.kind}`;
  let Model: new (data: unknown) => { validate(): void };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Model = require(modulePath)[object.kind];
  } catch {
    return [`${where}: no schema for ${object.apiVersion} ${object.kind} in kubernetes-models`];
  }
  try {
    new Model(object).validate();
    return [];
  } catch (e) {
    return [`${where}: ${(e as Error).message}`];
  }
}

/** The pod spec inside a workload (Pod, Deployment, StatefulSet, Job, ...), or undefined. */
export function podSpecOf(object: KubeObject): any {
  const o = object as any;
  if (object.kind === 'Pod') return o.spec;
  if (object.kind === 'CronJob') return o.spec?.jobTemplate?.spec?.template?.spec;
  return o.spec?.template?.spec;
}

/**
 * Violations of Pod Security Standards "restricted" (v1.28) in a pod spec.
 * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
 */
export function restrictedViolations(podSpec: any, where: string): string[] {
  const out: string[] = [];
  const pod = podSpec.securityContext ?? {};
  if (podSpec.hostNetwork || podSpec.hostPID || podSpec.hostIPC) out.push(`${where}: host namespaces`);
  for (const v of podSpec.volumes ?? []) {
    const allowed = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
    const kinds = Object.keys(v).filter((k) => k !== 'name');
    if (!kinds.every((k) => allowed.includes(k))) out.push(`${where}: volume '${v.name}' of kind ${kinds.join(',')}`);
  }
  for (const c of [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])]) {
    const sc = c.securityContext ?? {};
    const at = `${where} container '${c.name}'`;
    if (sc.privileged) out.push(`${at}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${at}: allowPrivilegeEscalation is not false`);
    if ((sc.runAsNonRoot ?? pod.runAsNonRoot) !== true) out.push(`${at}: runAsNonRoot is not true`);
    if ((sc.runAsUser ?? pod.runAsUser) === 0) out.push(`${at}: runAsUser is 0`);
    const seccomp = (sc.seccompProfile ?? pod.seccompProfile)?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${at}: seccompProfile is ${seccomp ?? 'unset'}`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${at}: capabilities do not drop ALL`);
    const added = (sc.capabilities?.add ?? []).filter((cap: string) => cap !== 'NET_BIND_SERVICE');
    if (added.length > 0) out.push(`${at}: adds capabilities ${added.join(',')}`);
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${at}: hostPort ${p.hostPort}`);
  }
  return out;
}
