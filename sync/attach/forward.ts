/**
 * `kubectl port-forward` to the environment's pod, on 127.0.0.1 only: the sidecar's SSH port and the
 * environment's declared ports. Explicit local ports, so a forward restarted after the pod or the
 * connection went away comes back on the same port and the mirror reconnects to it by itself.
 */
import { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { delay } from '../engine/connect';
import { spawnKubectl } from './kubectl';

export interface ForwardMapping {
  /** What it is, for messages: 'ssh', or the declared port's name. */
  readonly name: string;
  readonly remote: number;
  readonly local: number;
}

export interface PortForwardOptions {
  readonly namespace: string;
  readonly pod: string;
  readonly mappings: readonly ForwardMapping[];
  readonly context?: string;
  /** How long the first start may take. @default 30000 */
  readonly startTimeoutMs?: number;
  /** Longest wait between restarts. @default 10000 */
  readonly maxBackoffMs?: number;
  /** The flags that name the environment, for the fixes in messages. */
  readonly flags?: string;
}

export interface PortForwardEvents {
  ready: [mappings: readonly ForwardMapping[]];
  /** The forward ended (pod restarted, connection lost); restarting after `delayMs`. */
  restarting: [info: { attempt: number; delayMs: number; reason: string }];
}

/** Thrown when a forward cannot start; the message says why and what to do. */
export class ForwardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForwardError';
  }
}

/** Explains why kubectl port-forward stopped, from what it printed. */
export function explainForwardFailure(o: PortForwardOptions, stderr: string): string {
  const said = stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(-2).join(' / ') || 'no message';
  const manual = `kubectl port-forward -n ${o.namespace} pod/${o.pod} --address 127.0.0.1 ${o.mappings.map((m) => `${m.local}:${m.remote}`).join(' ')}`;
  const busy = /address already in use|unable to listen on/i.exec(stderr);
  if (busy) {
    const port = /listen on port (\d+)/.exec(stderr)?.[1] ?? /127\.0\.0\.1:(\d+): bind/.exec(stderr)?.[1];
    return `port-forward refused: local port ${port ?? '?'} on 127.0.0.1 is in use (${said}). Free it (ss -ltnp 'sport = :${port ?? 'PORT'}'), or run kubedev up with --no-ports`;
  }
  if (/forbidden/i.test(stderr)) {
    return `port-forward refused by the cluster (${said}). Your role must allow 'create' on pods/portforward in namespace '${o.namespace}': ask your cluster admin for the kubedev developer role (DeveloperAccess)`;
  }
  if (/not found/i.test(stderr)) {
    return `port-forward refused: pod '${o.namespace}/${o.pod}' is gone (${said}). Check it: kubectl get pod -n ${o.namespace} ${o.pod}`;
  }
  if (/Unable to connect to the server|connection refused|no such host|i\/o timeout/i.test(stderr)) {
    return `port-forward refused: cannot reach the cluster (${said}). Check: kubectl cluster-info`;
  }
  return `port-forward refused (${said}). Try it by hand to see more: ${manual}`;
}

/** One `kubectl port-forward` process, restarted with backoff until close(). */
export class PortForward extends EventEmitter<PortForwardEvents> {
  readonly options: PortForwardOptions;
  private child?: ChildProcess;
  private closed = false;
  private closing?: Promise<void>;
  private loop?: Promise<void>;
  private readonly abort = new AbortController();

  constructor(options: PortForwardOptions) {
    super();
    this.options = options;
  }

  /** Starts the forward; resolves once kubectl listens on every local port. */
  async start(): Promise<readonly ForwardMapping[]> {
    await this.runOnce();
    this.emit('ready', this.options.mappings);
    this.loop = this.keepAlive();
    return this.options.mappings;
  }

  /** Runs kubectl until it reports every mapping; rejects with a ForwardError if it stops first. */
  private runOnce(): Promise<void> {
    const o = this.options;
    const args = ['port-forward', '-n', o.namespace, `pod/${o.pod}`, '--address', '127.0.0.1', ...o.mappings.map((m) => `${m.local}:${m.remote}`)];
    return new Promise((resolve, reject) => {
      const child = spawnKubectl(args, { context: o.context });
      this.child = child;
      const pending = new Set(o.mappings.map((m) => m.local));
      let stderr = '';
      let out = '';
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        child.kill('SIGTERM');
        reject(new ForwardError(`port-forward to '${o.namespace}/${o.pod}' did not start within ${Math.round((o.startTimeoutMs ?? 30_000) / 1000)} s. ${explainForwardFailure(o, stderr)}`));
      }, o.startTimeoutMs ?? 30_000);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        if (settled) return; // later lines ("Handling connection for ...") are not kept
        out += d;
        for (const m of out.matchAll(/Forwarding from 127\.0\.0\.1:(\d+) ->/g)) pending.delete(Number(m[1]));
        if (pending.size === 0 && !settled) {
          settled = true;
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        stderr = (stderr + d).slice(-8192);
      });
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new ForwardError(e.code === 'ENOENT' ? "kubectl not found. Install kubectl (https://kubernetes.io/docs/tasks/tools/), or set KUBEDEV_KUBECTL to its path" : `port-forward could not start: ${e.message}`));
      });
      child.on('exit', () => {
        (child as ChildProcess & { lastStderr?: string }).lastStderr = stderr;
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new ForwardError(explainForwardFailure(o, stderr)));
      });
    });
  }

  /** After a start: wait for kubectl to end, and start it again unless closing. */
  private async keepAlive(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const child = this.child!;
      if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
      if (this.closed) return;
      const reason = ((child as ChildProcess & { lastStderr?: string }).lastStderr ?? '').trim().split('\n').pop() || 'kubectl port-forward ended';
      for (;;) {
        attempt++;
        const delayMs = Math.min(this.options.maxBackoffMs ?? 10_000, 500 * 2 ** Math.min(attempt - 1, 5));
        this.emit('restarting', { attempt, delayMs, reason });
        try {
          await delay(delayMs, this.abort.signal);
        } catch {
          return; // closed
        }
        try {
          await this.runOnce();
          attempt = 0;
          this.emit('ready', this.options.mappings);
          break;
        } catch {
          if (this.closed) return;
        }
      }
    }
  }

  /** Stops kubectl and the restart loop. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.abort.abort(new Error('closed'));
      const child = this.child;
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      await this.loop?.catch(() => undefined);
    })();
    return this.closing;
  }
}
