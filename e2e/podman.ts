/**
 * podman as a stand-in for a Kubernetes node, for the end-to-end suite. Debian's podman 4.3 plays Pod,
 * Deployment, PersistentVolumeClaim, ConfigMap and Secret YAML, but:
 * - it silently ignores a StatefulSet: the environment's pod template is played as the Pod `<name>-0`;
 * - its Secret volumes are broken (a volume without `optional` crashes it, containers/podman#16636, and
 *   `data` is written still base64-encoded): the key Secrets from `kubedev keys` are played as ConfigMaps
 *   with the same (decoded) keys, mounted where the Secrets would be;
 * - it has no Service and no pod network here: `--network host`, and sshd listens on 127.0.0.1 only
 *   (the ConfigMap's `ListenAddress` is narrowed), standing in for `kubectl port-forward`; containers'
 *   `ports` are dropped (podman refuses port mappings on the host network).
 * Every other field of the rendered objects is played as synthesized.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { KubeObject } from '../lib/k8s';

const run = promisify(execFile);

/** The podman settings this machine needs (see containers.conf); an explicit CONTAINERS_CONF wins. */
export const CONTAINERS_CONF = process.env.CONTAINERS_CONF ?? path.join(__dirname, 'containers.conf');
const ENV = { ...process.env, CONTAINERS_CONF };

export const INSTALL_PODMAN = 'apt-get install -y podman runc';

/** Fails (never skips) when podman or runc is missing, naming the command that installs them. */
export function requirePodman(): string {
  for (const [tool, args] of [['podman', ['--version']], ['runc', ['--version']]] as const) {
    try {
      execFileSync(tool, args, { stdio: ['ignore', 'pipe', 'pipe'], env: ENV });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${tool} is missing: the end-to-end suite runs the environment's pod with podman. Install it: ${INSTALL_PODMAN}`);
      throw new Error(`'${tool} ${args.join(' ')}' fails: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}. Reinstall: ${INSTALL_PODMAN}`);
    }
  }
  return execFileSync('podman', ['--version'], { encoding: 'utf8', env: ENV }).trim();
}

/** Runs podman; rejects with its stderr. */
export async function podman(args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  try {
    const p = run('podman', [...args], { env: ENV, maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 120_000 });
    if (options.input !== undefined) {
      p.child.stdin?.end(options.input);
    }
    return (await p).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`podman ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`);
  }
}

/** Runs podman, ignoring failure (teardown). */
export async function podmanQuiet(args: readonly string[]): Promise<void> {
  await podman(args).catch(() => undefined);
}

const decode = (b64: string): string => Buffer.from(b64, 'base64').toString('utf8');

export interface PodmanPlay {
  /** Objects to play, in order. */
  readonly objects: KubeObject[];
  /** The pod's name (`<statefulset>-0`). */
  readonly pod: string;
  /** Named volumes podman will create (PVCs, ConfigMap volumes), to remove afterwards. */
  readonly volumes: string[];
}

/**
 * Turns an environment's synthesized objects and its key Secrets into what podman 4.3 can play: the
 * StatefulSet's pod template as a Pod, the Secrets as ConfigMaps, sshd on 127.0.0.1.
 */
export function toPodmanPlay(rendered: readonly KubeObject[], secrets: readonly KubeObject[]): PodmanPlay {
  const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
  const sts = rendered.find((o) => o.kind === 'StatefulSet');
  if (!sts) throw new Error('the rendered environment has no StatefulSet');
  const template = clone((sts as unknown as { spec: { template: { metadata: KubeObject['metadata']; spec: Record<string, unknown> } } }).spec.template);
  const secretNames = new Set(secrets.map((s) => s.metadata.name));
  const volumes: string[] = [];

  const podSpec = template.spec as { volumes?: Record<string, unknown>[]; containers: Record<string, unknown>[] };
  // Under --network host podman refuses port mappings ("PortMappings can only be used with Bridge");
  // the ports are on 127.0.0.1 already.
  for (const c of podSpec.containers) delete c.ports;
  for (const v of podSpec.volumes ?? []) {
    const secret = v.secret as { secretName: string; items?: unknown; defaultMode?: number } | undefined;
    if (secret) {
      if (!secretNames.has(secret.secretName)) throw new Error(`the pod mounts Secret '${secret.secretName}', which kubedev keys did not make`);
      delete v.secret;
      v.configMap = { name: secret.secretName, items: secret.items, defaultMode: secret.defaultMode };
    }
    const cm = v.configMap as { name: string } | undefined;
    if (cm) volumes.push(cm.name);
    const pvc = v.persistentVolumeClaim as { claimName: string } | undefined;
    if (pvc) volumes.push(pvc.claimName);
  }

  const out: KubeObject[] = [];
  for (const o of rendered) {
    if (o.kind === 'PersistentVolumeClaim') out.push(clone(o));
    if (o.kind === 'ConfigMap') {
      const cm = clone(o) as KubeObject & { data: Record<string, string> };
      for (const [k, text] of Object.entries(cm.data)) {
        if (k === 'sshd_config') cm.data[k] = text.replace(/^ListenAddress .*$/m, 'ListenAddress 127.0.0.1');
      }
      out.push(cm);
    }
  }
  for (const s of secrets) {
    const data = (s as unknown as { data: Record<string, string> }).data;
    out.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: s.metadata.name, namespace: s.metadata.namespace, labels: s.metadata.labels },
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, decode(v)])),
    } as KubeObject);
  }
  const pod = `${sts.metadata.name}-0`;
  out.push({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod, namespace: sts.metadata.namespace, labels: template.metadata?.labels, annotations: template.metadata?.annotations },
    spec: template.spec,
  } as KubeObject);
  return { objects: out, pod, volumes };
}

/**
 * A free port for the sidecar's sshd, below the kernel's ephemeral range (ip_local_port_range,
 * 32768-60999 on Linux): on the host network an ephemeral port can be taken at any moment by some
 * process's outgoing connection, and sshd would then fail to bind it.
 */
export async function sidecarPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + crypto.randomInt(12_000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('found no free port between 20000 and 32000 on 127.0.0.1');
}

