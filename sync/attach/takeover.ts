/**
 * The run-time half of replace mode: `kubedev up` takes the original Deployment over (scales it to 0,
 * keeping its replica count in the annotation `kubedev.io/replicas`) and `kubedev down` releases it
 * (restores that count, removes the annotation). The twins holding it are listed in
 * `kubedev.io/replaced-by`, so two developers' twins of one original never restore it under each other.
 *
 * Each change is one JSON patch of the Deployment guarded by a `test` of its resourceVersion: the
 * count, the annotations and the scale change together or not at all, and a patch that raced another
 * writer is read again and retried. RBAC: `get` and `patch` of that Deployment (by resourceNames in
 * DeveloperAccess.takeOver; the team developer Role has them for the namespace's Deployments).
 */
import { REPLACED_BY_ANNOTATION, REPLICAS_ANNOTATION, TakeOverTarget } from '../../lib/takeover';
import { KubectlError, kubectl } from './kubectl';

export interface TakeOverOptions {
  readonly signal?: AbortSignal;
  /** kubectl --context. @default the kubeconfig's current context */
  readonly context?: string;
  /** How many times a patch that raced another writer is tried again. @default DEFAULT_PATCH_ATTEMPTS */
  readonly attempts?: number;
}

/** Tries of one change when the Deployment changes between read and patch. */
export const DEFAULT_PATCH_ATTEMPTS = 5;

/** What takeOver() or release() did, with one line for the developer. */
export interface TakeOverResult {
  readonly target: TakeOverTarget;
  /** The count kept in `kubedev.io/replicas` (takeOver), or restored (release); undefined when none was kept. */
  readonly replicas?: number;
  /** Whether the cluster was changed. */
  readonly changed: boolean;
  /** Twins still holding the original after the call. */
  readonly holders: readonly string[];
  readonly message: string;
}

/** Thrown when the original cannot be taken over or released; `message` names the cause and the fix. */
export class TakeOverError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TakeOverError';
  }
}

interface Deployment {
  metadata: { name: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec?: { replicas?: number };
}

type Op = { op: 'add' | 'replace' | 'remove' | 'test'; path: string; value?: unknown };

const pointer = (key: string): string => `/metadata/annotations/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
const what = (t: TakeOverTarget): string => `Deployment '${t.name}' in namespace '${t.namespace}'`;
const scaleBy = (t: TakeOverTarget): string => `kubectl scale deployment ${t.name} -n ${t.namespace} --replicas=N`;

/**
 * Scales the original to 0 for `twin`, keeping its count. Idempotent: a second call (or another
 * twin's) keeps the first count, and scales to 0 again anything that brought the original back up.
 */
export async function takeOver(target: TakeOverTarget, twin: string, options: TakeOverOptions = {}): Promise<TakeOverResult> {
  return retried(target, options, (d) => {
    const annotations = d.metadata.annotations ?? {};
    const kept = annotations[REPLICAS_ANNOTATION];
    const holders = holdersOf(d);
    const replicas = d.spec?.replicas ?? 1;
    const count = kept === undefined ? replicas : keptCount(target, kept);
    const nextHolders = holders.includes(twin) ? holders : [...holders, twin];
    if (kept !== undefined && replicas === 0 && holders.includes(twin)) {
      return { ops: [], result: { target, replicas: count, changed: false, holders, message: `${what(target)} is already at 0 replicas for '${twin}'; kubedev down restores ${count}.` } };
    }
    const ops: Op[] = [
      ...setAnnotations(d, { [REPLICAS_ANNOTATION]: String(count), [REPLACED_BY_ANNOTATION]: nextHolders.join(',') }),
      { op: 'add', path: '/spec/replicas', value: 0 },
    ];
    const from = replicas === 0 ? '' : ` from ${replicas}`;
    return { ops, result: { target, replicas: count, changed: true, holders: nextHolders, message: `scaled ${what(target)}${from} to 0 replicas while '${twin}' replaces it; kubedev down restores ${count}.` } };
  });
}

/**
 * Gives the original back for `twin`: when no other twin holds it, restores the kept count and removes
 * both annotations. Idempotent: without the annotation there is nothing to restore, and it says so.
 */
export async function release(target: TakeOverTarget, twin: string, options: TakeOverOptions = {}): Promise<TakeOverResult> {
  return retried(target, options, (d) => {
    const kept = d.metadata.annotations?.[REPLICAS_ANNOTATION];
    const holders = holdersOf(d);
    if (kept === undefined) {
      const now = d.spec?.replicas ?? 1;
      return {
        ops: [],
        result: {
          target, changed: false, holders,
          message: `${what(target)} has no '${REPLICAS_ANNOTATION}' annotation, so kubedev has no count to restore (it runs ${now} replica${now === 1 ? '' : 's'}).` +
            (now === 0 ? ` If it should run, scale it: ${scaleBy(target)}` : ''),
        },
      };
    }
    const count = keptCount(target, kept);
    const rest = holders.filter((h) => h !== twin);
    if (rest.length > 0) {
      const ops = holders.includes(twin) ? setAnnotations(d, { [REPLACED_BY_ANNOTATION]: rest.join(',') }) : [];
      return { ops, result: { target, replicas: count, changed: ops.length > 0, holders: rest, message: `${what(target)} stays at 0 replicas: ${rest.map((h) => `'${h}'`).join(', ')} still replace${rest.length === 1 ? 's' : ''} it.` } };
    }
    const ops: Op[] = [
      { op: 'add', path: '/spec/replicas', value: count },
      { op: 'remove', path: pointer(REPLICAS_ANNOTATION) },
      ...(d.metadata.annotations?.[REPLACED_BY_ANNOTATION] !== undefined ? [{ op: 'remove', path: pointer(REPLACED_BY_ANNOTATION) } as Op] : []),
    ];
    return { ops, result: { target, replicas: count, changed: true, holders: [], message: `restored ${what(target)} to ${count} replica${count === 1 ? '' : 's'}.` } };
  });
}

function holdersOf(d: Deployment): string[] {
  return (d.metadata.annotations?.[REPLACED_BY_ANNOTATION] ?? '').split(',').map((h) => h.trim()).filter((h) => h !== '');
}

function keptCount(target: TakeOverTarget, kept: string): number {
  if (/^\d{1,6}$/.test(kept)) return Number(kept);
  throw new TakeOverError(
    `${what(target)}: annotation '${REPLICAS_ANNOTATION}' is not a replica count (got '${kept}'). Scale it by hand (${scaleBy(target)}) and remove the annotation: kubectl annotate deployment ${target.name} -n ${target.namespace} ${REPLICAS_ANNOTATION}-`,
  );
}

/** Ops that set these annotations, creating the map when the object has none. */
function setAnnotations(d: Deployment, values: Record<string, string>): Op[] {
  if (d.metadata.annotations === undefined) return [{ op: 'add', path: '/metadata/annotations', value: values }];
  return Object.entries(values).map(([k, v]) => ({ op: 'add', path: pointer(k), value: v }));
}

async function retried(
  target: TakeOverTarget, options: TakeOverOptions, plan: (d: Deployment) => { ops: Op[]; result: TakeOverResult },
): Promise<TakeOverResult> {
  const attempts = Math.max(1, options.attempts ?? DEFAULT_PATCH_ATTEMPTS);
  const base = ['-n', target.namespace];
  for (let attempt = 1; ; attempt++) {
    const d = await read(target, options);
    const { ops, result } = plan(d);
    if (ops.length === 0) return result;
    // The guard: the patch applies to the object as read, or not at all.
    const guarded: Op[] = [{ op: 'test', path: '/metadata/resourceVersion', value: d.metadata.resourceVersion }, ...ops];
    try {
      await kubectl(['patch', 'deployment', target.name, ...base, '--type', 'json', '-p', JSON.stringify(guarded)], options);
      return result;
    } catch (e) {
      const raced = e instanceof KubectlError && e.kind === 'failed' && RACED.test(e.stderr);
      if (raced && attempt < attempts) continue;
      throw raced ? raceError(target, e as KubectlError) : explain(target, e, 'patch');
    }
  }
}

async function read(target: TakeOverTarget, options: TakeOverOptions): Promise<Deployment> {
  let out: string;
  try {
    out = (await kubectl(['get', 'deployment', target.name, '-n', target.namespace, '-o', 'json'], options)).stdout;
  } catch (e) {
    throw explain(target, e, 'get');
  }
  try {
    const d = JSON.parse(out) as Deployment;
    if (typeof d?.metadata?.name === 'string') return d;
  } catch {
    // reported below
  }
  throw new TakeOverError(`kubectl get deployment ${target.name} -n ${target.namespace} printed something that is not a Deployment. Check your kubectl: kubectl version`);
}

function explain(target: TakeOverTarget, e: unknown, verb: 'get' | 'patch'): Error {
  if (!(e instanceof KubectlError)) return e as Error;
  if (e.kind === 'not-found') {
    return new TakeOverError(`${what(target)} does not exist, so there is nothing to scale. Apply the original first, or give the twin mode 'side-by-side'.`);
  }
  if (e.kind === 'forbidden') {
    return new TakeOverError(
      `the cluster refused to ${verb} ${what(target)} (${e.stderr.trim().split('\n').pop()}). Replace mode needs get and patch on it: ask your admin for the team's developer Role, or a DeveloperAccess with takeOver: ['${target.name}'].`,
    );
  }
  return e;
}

/** What the API server says when a JSON patch's `test` fails (the object changed since it was read). */
const RACED = /testing value|test operation|rejected our request|the object has been modified|Conflict/i;

function raceError(target: TakeOverTarget, e: KubectlError): TakeOverError {
  const said = e.stderr.trim().split('\n').pop();
  return new TakeOverError(`${what(target)} kept changing while kubedev scaled it (${said}). Is a controller (an HPA with minReplicas 0, KEDA, Argo CD, Flux) scaling it? See the README, "Take-over".`);
}
