/**
 * Waiting for an environment's pod: polls `kubectl get pod` until the sync sidecar is ready. Only the
 * sidecar has to be ready to mirror files: a dev container whose command needs the files (e.g.
 * `pip install -r requirements.txt`) may well crash until the first mirror lands, so its state is
 * reported, not waited for.
 */
import { AttachRecord } from '../../lib/attach';
import { delay } from '../engine/connect';
import { KubectlError, kubectl } from './kubectl';

interface ContainerStatusJson {
  name: string;
  ready?: boolean;
  restartCount?: number;
  state?: {
    waiting?: { reason?: string; message?: string };
    running?: { startedAt?: string };
    terminated?: { reason?: string; exitCode?: number; message?: string };
  };
}

interface PodJson {
  metadata?: { name?: string; deletionTimestamp?: string; creationTimestamp?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: ContainerStatusJson[];
    initContainerStatuses?: ContainerStatusJson[];
  };
}

/** What kubedev knows of the pod at one moment. */
export interface PodState {
  /** The pod's name, when one was found. */
  readonly pod?: string;
  readonly found: boolean;
  readonly phase: string;
  readonly sidecarReady: boolean;
  /** One line: why the sidecar is not ready yet (container waiting reason, scheduling), or ''. */
  readonly waiting: string;
  /** The waiting reason alone (e.g. ImagePullBackOff), for the fix. */
  readonly reason: string;
  /** The dev container in one word or two: running, waiting: CrashLoopBackOff, ... */
  readonly dev: string;
}

function containerState(c: ContainerStatusJson | undefined): { word: string; reason: string; detail: string } {
  if (!c || !c.state) return { word: 'not started', reason: '', detail: '' };
  if (c.state.waiting) return { word: `waiting: ${c.state.waiting.reason ?? 'unknown'}`, reason: c.state.waiting.reason ?? '', detail: c.state.waiting.message ?? '' };
  if (c.state.terminated) {
    const t = c.state.terminated;
    return { word: `terminated: ${t.reason ?? 'exit'} (exit code ${t.exitCode ?? '?'})`, reason: t.reason ?? 'Terminated', detail: t.message ?? '' };
  }
  return { word: c.ready === false ? 'running, not ready' : 'running', reason: c.ready === false ? 'NotReady' : '', detail: '' };
}

/** Reads a pod's JSON into a PodState for the record's containers. */
export function podState(record: AttachRecord, pod: PodJson | undefined): PodState {
  if (!pod) return { found: false, phase: 'NotFound', sidecarReady: false, waiting: 'pod not found', reason: 'NotFound', dev: 'not found' };
  const status = pod.status ?? {};
  const statuses = status.containerStatuses ?? [];
  const sidecar = statuses.find((c) => c.name === record.sidecar);
  const dev = statuses.find((c) => c.name === record.container);
  const phase = status.phase ?? 'Unknown';
  const sidecarReady = phase === 'Running' && sidecar?.ready === true && !pod.metadata?.deletionTimestamp;
  let waiting = '';
  let reason = '';
  if (!sidecarReady) {
    const scheduled = (status.conditions ?? []).find((c) => c.type === 'PodScheduled');
    const init = (status.initContainerStatuses ?? []).find((c) => c.state?.waiting || (c.state?.terminated && c.state.terminated.exitCode !== 0));
    if (scheduled && scheduled.status === 'False') {
      reason = scheduled.reason ?? 'Unschedulable';
      waiting = `not scheduled: ${reason}${scheduled.message ? ` (${scheduled.message})` : ''}`;
    } else if (init) {
      const s = containerState(init);
      reason = s.reason;
      waiting = `init container '${init.name}' ${s.word}${s.detail ? ` (${s.detail})` : ''}`;
    } else if (sidecar) {
      const s = containerState(sidecar);
      reason = s.reason;
      waiting = `container '${record.sidecar}' ${s.word}${s.detail ? ` (${s.detail})` : ''}`;
    } else {
      reason = status.reason ?? phase;
      waiting = `${phase}${status.message ? ` (${status.message})` : ''}`;
    }
  }
  return { pod: pod.metadata?.name, found: true, phase, sidecarReady, waiting, reason, dev: containerState(dev).word };
}

export interface WaitOptions {
  readonly context?: string;
  /** Give up after this long. */
  readonly timeoutMs: number;
  /** @default 1000 */
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
  /** Called whenever the state's one-line description changes. */
  readonly onState?: (state: PodState) => void;
  /** The flags that name the environment, for the fixes in messages. */
  readonly flags: string;
}

/** Thrown when the pod is not ready in time; the message says why and what to do. */
export class PodNotReadyError extends Error {
  readonly state: PodState;
  constructor(message: string, state: PodState) {
    super(message);
    this.name = 'PodNotReadyError';
    this.state = state;
  }
}

/** Fetches the environment's pod once: by its stable name, or the newest running one its labels select. */
export async function fetchPod(record: AttachRecord, options: { context?: string; signal?: AbortSignal }): Promise<PodJson | undefined> {
  const ns = record.namespace;
  if (record.pod) {
    try {
      const out = await kubectl(['get', 'pod', record.pod, '-n', ns, '-o', 'json'], options);
      return JSON.parse(out.stdout) as PodJson;
    } catch (e) {
      if (e instanceof KubectlError && e.kind === 'not-found') return undefined;
      throw e;
    }
  }
  const selector = Object.entries(record.selector).map(([k, v]) => `${k}=${v}`).join(',');
  const out = await kubectl(['get', 'pods', '-n', ns, '-l', selector, '-o', 'json'], options);
  const items = ((JSON.parse(out.stdout) as { items?: PodJson[] }).items ?? []).filter((p) => !p.metadata?.deletionTimestamp);
  // The newest pod that is running, else the newest at all (kubectl lists by name, not by age).
  const age = (p: PodJson): string => p.metadata?.creationTimestamp ?? '';
  items.sort((a, b) => age(a).localeCompare(age(b)));
  return [...items].reverse().find((p) => p.status?.phase === 'Running') ?? items[items.length - 1];
}

/** The fix for a pod that is not ready, by reason. */
export function fixFor(record: AttachRecord, state: PodState, flags: string): string {
  const ns = record.namespace;
  const pod = state.pod ?? record.pod ?? `-l ${Object.entries(record.selector).map(([k, v]) => `${k}=${v}`).join(',')}`;
  const describe = `kubectl describe pod -n ${ns} ${pod}`;
  if (!state.found) {
    return `Apply the environment (kubectl apply -f dist/<app>.k8s.yaml), then check its workload: kubectl get ${record.workload.kind.toLowerCase()} -n ${ns} ${record.workload.name}`;
  }
  switch (state.reason) {
    case 'ErrImagePull':
    case 'ImagePullBackOff':
    case 'InvalidImageName':
      return `The image cannot be pulled: check its name and the pull secret; the sidecar image is built from sync/sidecar/Containerfile and pushed to your registry. Details: ${describe}`;
    case 'CreateContainerConfigError':
    case 'ContainerCreating':
      return `A Secret, ConfigMap or volume it mounts may be missing; the key Secrets come from: kubedev keys ${flags} --apply. Details: ${describe}`;
    case 'CrashLoopBackOff':
    case 'Error':
      return `The container keeps exiting; its last words: kubectl logs -n ${ns} ${pod} -c ${record.sidecar} --previous`;
    case 'Unschedulable':
      return `No node can take it (resources, node selector, tolerations or quota). Details: ${describe}`;
    default:
      return `Details: ${describe}`;
  }
}

/** Polls until the sidecar is ready; rejects with a PodNotReadyError after the timeout. */
export async function waitForPod(record: AttachRecord, options: WaitOptions): Promise<PodState> {
  const deadline = Date.now() + options.timeoutMs;
  let last = '';
  for (;;) {
    const state = podState(record, await fetchPod(record, options));
    const line = `${state.phase}|${state.waiting}|${state.dev}`;
    if (line !== last) {
      last = line;
      options.onState?.(state);
    }
    if (state.sidecarReady) return state;
    if (Date.now() >= deadline) {
      const name = `${record.namespace}/${state.pod ?? record.pod ?? record.name}`;
      const secs = Math.round(options.timeoutMs / 1000);
      const what = state.found ? `is not ready after ${secs} s: ${state.waiting}` : `was not found after ${secs} s`;
      throw new PodNotReadyError(`pod '${name}' ${what}. ${fixFor(record, state, options.flags)}`, state);
    }
    await delay(Math.min(options.intervalMs ?? 1000, Math.max(0, deadline - Date.now())), options.signal);
  }
}
