/**
 * The run-time half of replace mode (an attach record with `takeOver`): `kubedev up` swaps the twin in
 * — scales the original Deployment to 0, keeping its replica count in the annotation
 * `kubedev.io/replicas`, then starts the twin, which the output writes parked at 0 replicas — and
 * `kubedev down` swaps it out — parks the twin, then restores the count and removes the annotation.
 * In that order the two never serve together (there is a gap of one pod start instead). The twins
 * holding an original are listed in `kubedev.io/replaced-by`, so two developers' twins of one original
 * never restore it under each other. For a record without `takeOver` both calls do nothing.
 *
 * Each change is one JSON patch of the Deployment guarded by a `test` of its resourceVersion: the
 * count, the annotations and the scale change together or not at all, and a patch that raced another
 * writer is read again and retried; the twin is scaled through its scale subresource. RBAC: `get` and
 * `patch` of that Deployment, `get` of the twin's StatefulSet and `get`/`patch` of its scale (by
 * resourceNames in DeveloperAccess.takeOver; the owner and the team developer Role have them).
 */
import { AttachRecord } from '../../lib/attach';
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

/** What takeOver() and release() read of an attach record. */
export type TakeOverRecord = Pick<AttachRecord, 'name' | 'namespace' | 'workload' | 'takeOver'>;

/** What takeOver() or release() did, with one line for the developer. */
export interface TakeOverResult {
  /** The original; undefined when the record takes nothing over. */
  readonly target?: TakeOverTarget;
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
  /** 'not-found': the workload does not exist; 'forbidden': RBAC refused; 'raced': it kept changing. */
  public readonly kind: 'not-found' | 'forbidden' | 'raced' | 'invalid';
  constructor(message: string, kind: TakeOverError['kind']) {
    super(message);
    this.name = 'TakeOverError';
    this.kind = kind;
  }
}

/** A workload by kind, name and namespace (the original, or the twin's StatefulSet). */
interface Workload {
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
}

interface Deployment {
  metadata: { name: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec?: { replicas?: number };
}

type Op = { op: 'add' | 'replace' | 'remove' | 'test'; path: string; value?: unknown };

const pointer = (key: string): string => `/metadata/annotations/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
const what = (t: Workload): string => `${t.kind} '${t.name}' in namespace '${t.namespace}'`;
const scaleBy = (t: TakeOverTarget): string => `kubectl scale deployment ${t.name} -n ${t.namespace} --replicas=N`;

/**
 * Swaps the twin in: scales the original to 0 (keeping its count), then starts the twin (1 replica).
 * Idempotent: a second call (or another twin's) keeps the first count, and scales to 0 again anything
 * that brought the original back up. If the twin cannot be started, the original is given back.
 */
export async function takeOver(record: TakeOverRecord, options: TakeOverOptions = {}): Promise<TakeOverResult> {
  const target = record.takeOver;
  if (!target) return nothing(record);
  const held = await holdOriginal(target, record.name, options);
  let started: boolean;
  try {
    started = await setReplicas(record, 1, options);
  } catch (e) {
    await giveBackOriginal(target, record.name, options).catch(() => undefined);
    throw e;
  }
  return started ? { ...held, changed: true, message: `${held.message} Started ${record.workload.kind} '${record.workload.name}'.` } : held;
}

/**
 * Swaps the twin out: parks it (0 replicas), then, when no other twin holds the original, restores
 * the kept count and removes both annotations. Idempotent: without the annotation there is nothing to
 * restore, and it says so.
 */
export async function release(record: TakeOverRecord, options: TakeOverOptions = {}): Promise<TakeOverResult> {
  const target = record.takeOver;
  if (!target) return nothing(record);
  let parked = false;
  try {
    parked = await setReplicas(record, 0, options);
  } catch (e) {
    // A twin already deleted is parked enough; anything else must not leave both running.
    if (!(e instanceof TakeOverError && e.kind === 'not-found')) throw e;
  }
  const given = await giveBackOriginal(target, record.name, options);
  return parked ? { ...given, changed: true, message: `Stopped ${record.workload.kind} '${record.workload.name}'; ${given.message}` } : given;
}

function nothing(record: TakeOverRecord): TakeOverResult {
  return { changed: false, holders: [], message: `environment '${record.name}' takes nothing over (it is not a replace-mode twin scaled by kubedev up).` };
}

/** Sets the twin's replicas; resolves whether it changed anything. */
async function setReplicas(record: TakeOverRecord, replicas: number, options: TakeOverOptions): Promise<boolean> {
  const twin = { kind: record.workload.kind, name: record.workload.name, namespace: record.namespace };
  const current = await read(twin, options);
  if ((current.spec?.replicas ?? 1) === replicas) return false;
  try {
    // The scale subresource: the twin's owner, and a DeveloperAccess with takeOver, may scale it but not change it.
    await kubectl(['scale', twin.kind.toLowerCase(), twin.name, '-n', twin.namespace, `--replicas=${replicas}`], options);
  } catch (e) {
    throw explain(twin, e, 'scale');
  }
  return true;
}

async function holdOriginal(target: TakeOverTarget, twin: string, options: TakeOverOptions): Promise<TakeOverResult> {
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

async function giveBackOriginal(target: TakeOverTarget, twin: string, options: TakeOverOptions): Promise<TakeOverResult> {
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
    'invalid',
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

async function read(target: Workload, options: TakeOverOptions): Promise<Deployment> {
  const kind = target.kind.toLowerCase();
  let out: string;
  try {
    out = (await kubectl(['get', kind, target.name, '-n', target.namespace, '-o', 'json'], options)).stdout;
  } catch (e) {
    throw explain(target, e, 'get');
  }
  try {
    const d = JSON.parse(out) as Deployment;
    if (typeof d?.metadata?.name === 'string') return d;
  } catch {
    // reported below
  }
  throw new TakeOverError(`kubectl get ${kind} ${target.name} -n ${target.namespace} printed something that is not a ${target.kind}. Check your kubectl: kubectl version`, 'invalid');
}

function explain(target: Workload, e: unknown, verb: 'get' | 'patch' | 'scale'): Error {
  if (!(e instanceof KubectlError)) return e as Error;
  const original = target.kind === 'Deployment';
  if (e.kind === 'not-found') {
    return new TakeOverError(original
      ? `${what(target)} does not exist, so there is nothing to scale. Apply the original first, or give the twin mode 'side-by-side'.`
      : `${what(target)} does not exist. Apply the environment first (kubectl apply -f dist/<app>.k8s.yaml).`, 'not-found');
  }
  if (e.kind === 'forbidden') {
    const needs = original ? `get and patch on it: ask your admin for the team's developer Role, or a DeveloperAccess with takeOver: ['${target.name}']`
      : `get on it and patch of its scale: ask your admin for the team's developer Role, or a DeveloperAccess with environments: ['${target.name}'] and takeOver`;
    return new TakeOverError(
      `the cluster refused to ${verb} ${what(target)} (${e.stderr.trim().split('\n').pop()}). Replace mode needs ${needs}.`,
      'forbidden',
    );
  }
  return e;
}

/** What the API server says when a JSON patch's `test` fails (the object changed since it was read). */
const RACED = /testing value|test operation|rejected our request|the object has been modified|Conflict/i;

function raceError(target: TakeOverTarget, e: KubectlError): TakeOverError {
  const said = e.stderr.trim().split('\n').pop();
  return new TakeOverError(`${what(target)} kept changing while kubedev scaled it (${said}). Is a controller (an HPA with minReplicas 0, KEDA, Argo CD, Flux) scaling it? See the README, "Take-over".`, 'raced');
}
