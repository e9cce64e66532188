/**
 * kubectl as a child process: the one way kubedev talks to a cluster (`kubedev keys --apply`,
 * `kubedev up`). Using the user's own kubectl means the user's kubeconfig, contexts and credential
 * plugins (gke-gcloud-auth-plugin, aws eks get-token, kubelogin...) work unchanged, the RBAC verbs are
 * the ones `kubectl port-forward` documents, and kubedev adds no Kubernetes client dependency.
 *
 * `KUBEDEV_KUBECTL` overrides the binary (tests put a fake one there or first on PATH).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Thrown when kubectl cannot be run or reports a failure; `message` names the cause and the fix. */
export class KubectlError extends Error {
  /** What kubectl said, for callers that recognise a case (e.g. NotFound). */
  public readonly stderr: string;
  public readonly kind: 'missing' | 'no-kubeconfig' | 'unreachable' | 'forbidden' | 'not-found' | 'failed';
  constructor(message: string, kind: KubectlError['kind'], stderr = '') {
    super(message);
    this.name = 'KubectlError';
    this.kind = kind;
    this.stderr = stderr;
  }
}

export interface KubectlOptions {
  readonly signal?: AbortSignal;
  /** Written to kubectl's stdin. */
  readonly input?: string;
  /** `--context` for every call. @default the kubeconfig's current context */
  readonly context?: string;
  /** Environment. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

export interface KubectlResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** The kubectl binary to run. */
export function kubectlBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.KUBEDEV_KUBECTL || 'kubectl';
}

const INSTALL_KUBECTL = "Install kubectl (https://kubernetes.io/docs/tasks/tools/), or set KUBEDEV_KUBECTL to its path";

/**
 * Checks that kubectl will find a cluster configuration: a file in $KUBECONFIG, ~/.kube/config, or
 * in-cluster credentials. Throws a KubectlError naming the fix otherwise, before kubectl is run.
 */
export function checkKubeconfig(env: NodeJS.ProcessEnv = process.env): void {
  if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(path.delimiter).filter((f) => f !== '');
    if (files.some((f) => fs.existsSync(f))) return;
    throw new KubectlError(
      `no kubeconfig: KUBECONFIG names ${files.map((f) => `'${f}'`).join(', ')}, and none exists. ` +
        "Point KUBECONFIG at your cluster's config file, or fetch it (e.g. 'gcloud container clusters get-credentials CLUSTER', 'aws eks update-kubeconfig --name CLUSTER', 'az aks get-credentials -n CLUSTER -g GROUP').",
      'no-kubeconfig',
    );
  }
  const home = env.HOME || os.homedir();
  if (fs.existsSync(path.join(home, '.kube', 'config'))) return;
  if (env.KUBERNETES_SERVICE_HOST && fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) return;
  throw new KubectlError(
    `no kubeconfig: KUBECONFIG is not set and ${path.join(home, '.kube', 'config')} does not exist. ` +
      "Fetch your cluster's credentials (e.g. 'gcloud container clusters get-credentials CLUSTER', 'aws eks update-kubeconfig --name CLUSTER', 'az aks get-credentials -n CLUSTER -g GROUP') or set KUBECONFIG to a config file.",
    'no-kubeconfig',
  );
}

/** Turns kubectl's stderr into a KubectlError that says what to do. */
export function classify(args: readonly string[], code: number | null, stderr: string): KubectlError {
  const said = stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(-3).join(' / ') || `exit code ${code}`;
  const cmd = `kubectl ${args.join(' ')}`;
  if (/Unable to connect to the server|connection to the server .* was refused|no such host|i\/o timeout|connect: connection refused|dial tcp/i.test(stderr)) {
    return new KubectlError(`cannot reach the cluster (${cmd}: ${said}). Check the context and that the cluster is up: kubectl config current-context && kubectl cluster-info`, 'unreachable', stderr);
  }
  if (/forbidden/i.test(stderr)) {
    return new KubectlError(`the cluster refused '${cmd}' (${said}). Ask your cluster admin to bind you the kubedev developer role in that namespace (DeveloperAccess), then check with: kubectl auth can-i --list -n NAMESPACE`, 'forbidden', stderr);
  }
  if (/NotFound|not found/.test(stderr)) {
    return new KubectlError(`${cmd}: ${said}`, 'not-found', stderr);
  }
  return new KubectlError(`'${cmd}' failed: ${said}`, 'failed', stderr);
}

export function withContext(args: readonly string[], context: string | undefined): string[] {
  return context ? ['--context', context, ...args] : [...args];
}

/** Runs kubectl to completion; resolves with its output, rejects with a KubectlError. */
export function kubectl(args: readonly string[], options: KubectlOptions = {}): Promise<KubectlResult> {
  const env = options.env ?? process.env;
  const full = withContext(args, options.context);
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(options.signal.reason ?? new Error('aborted'));
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(kubectlBinary(env), full, { env, stdio: ['pipe', 'pipe', 'pipe'], signal: options.signal });
    } catch (e) {
      reject(e);
      return;
    }
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin!.on('error', () => undefined); // kubectl may exit before reading everything
    child.stdin!.end(options.input ?? '');
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new KubectlError(`kubectl not found ('${kubectlBinary(env)}' is not on PATH). ${INSTALL_KUBECTL}`, 'missing'));
      else reject(e);
    });
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else if (options.signal?.aborted) reject(options.signal.reason ?? new Error('aborted'));
      else reject(classify(full, code, stderr));
    });
  });
}

/** Spawns a long-running kubectl (port-forward); the caller owns the process. */
export function spawnKubectl(args: readonly string[], options: KubectlOptions = {}): ChildProcess {
  const env = options.env ?? process.env;
  return spawn(kubectlBinary(env), withContext(args, options.context), { env, stdio: ['ignore', 'pipe', 'pipe'] });
}
