/**
 * The attach record: everything `kubedev sync`/`kubedev up` need to reach an environment, written
 * as the JSON annotation `kubedev.io/attach` on the environment's workload. It is the one source of
 * truth between synthesis and the runner; bump ATTACH_RECORD_VERSION on any incompatible change.
 */
import { validateAttachRecord } from './attach-validate';
import { SyncMode } from './dev-environment-spec';
import { KubeObject } from './k8s';
import { TakeOverTarget } from './takeover';

/** The annotation that carries the record. */
export const ATTACH_ANNOTATION = 'kubedev.io/attach';

/** The record's format version. */
export const ATTACH_RECORD_VERSION = 1;

/** One folder mirrored from the developer's machine into the environment. */
export interface AttachFolder {
  /** Local folder, relative to the directory `kubedev` runs in (or absolute). */
  readonly local: string;
  /** Absolute path inside the dev container (and the sidecar, which mounts the same volume there). */
  readonly remote: string;
  /** gitignore-syntax patterns neither sent nor deleted remotely (includes caches inside the folder). */
  readonly ignore: readonly string[];
  /** @default 'mirror' */
  readonly mode?: SyncMode;
  /** Patterns that flow only container -> laptop (`two-way`). @default [] */
  readonly remoteOwns?: readonly string[];
  /** Patterns that flow only laptop -> container (`two-way`). @default [] */
  readonly localOwns?: readonly string[];
}

export interface AttachRecord {
  readonly version: number;
  /** The environment's name. */
  readonly name: string;
  readonly namespace: string;
  /** The workload that runs it. */
  readonly workload: { readonly kind: string; readonly name: string };
  /** The stable pod name, when the workload has one (StatefulSet: `<name>-0`). */
  readonly pod?: string;
  /** Labels that select the environment's pod. */
  readonly selector: Readonly<Record<string, string>>;
  /** The developer's container (where the files are used). */
  readonly container: string;
  /** The sync sidecar's container (where sshd runs). */
  readonly sidecar: string;
  readonly ssh: {
    readonly port: number;
    readonly user: string;
    /** Secret holding the sidecar's host key; its public half is under `publicKey`. */
    readonly hostKeySecret: string;
    readonly hostKeyPublicKey: string;
    /** Secret holding `authorized_keys` for the developer's client key. */
    readonly authorizedKeysSecret: string;
  };
  /** The remote workspace: the dev container's working directory. */
  readonly workspace: string;
  readonly folders: readonly AttachFolder[];
  /** Ports the environment declares, to forward. */
  readonly ports: readonly { readonly name: string; readonly port: number; readonly protocol: string }[];
  /**
   * The dev process the supervisor runs (empty command: interactive, `up` opens a shell), and the
   * folder both containers share for its control FIFO. Absent in records of earlier kubedevs.
   */
  readonly process?: AttachProcess;
  /** onSync hooks in declared order; `run` is shown, never sent: the runner asks the supervisor for hook <index>. */
  readonly hooks?: readonly AttachHook[];
  /** Reverse forwards: 127.0.0.1:<local> on the developer's machine, reachable in the pod at 127.0.0.1:<remote>. */
  readonly reverse?: readonly AttachReverse[];
  /**
   * A replace-mode twin's original, when the synthesized output does not scale it to 0 itself:
   * `kubedev up` scales it to 0 (keeping its count in `kubedev.io/replicas`), `kubedev down` restores it.
   */
  readonly takeOver?: TakeOverTarget;
}

export interface AttachProcess {
  readonly command: readonly string[];
  readonly control: string;
}

export interface AttachHook {
  readonly paths: readonly string[];
  readonly run?: string;
  readonly restart?: true;
}

export interface AttachReverse {
  readonly name: string;
  readonly remote: number;
  readonly local: number;
}

/** Thrown when a record is missing or malformed. */
export class AttachRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AttachRecordError';
  }
}

/**
 * Reads and checks the record carried by a workload object.
 * @param where names the source in messages, e.g. `dist/app.k8s.yaml`.
 */
export function readAttachRecord(workload: KubeObject, where: string): AttachRecord {
  const raw = workload.metadata.annotations?.[ATTACH_ANNOTATION];
  const id = `${workload.kind} '${workload.metadata.name}' in ${where}`;
  if (raw === undefined) {
    throw new AttachRecordError(`${id} has no '${ATTACH_ANNOTATION}' annotation. Synthesize it from a kubedev DevEnvironment.`);
  }
  let record: AttachRecord;
  try {
    record = JSON.parse(raw) as AttachRecord;
  } catch (e) {
    throw new AttachRecordError(`${id}: annotation '${ATTACH_ANNOTATION}' is not JSON (${(e as Error).message}). Synthesize the file again.`);
  }
  if (typeof record !== 'object' || record === null || record.version !== ATTACH_RECORD_VERSION) {
    throw new AttachRecordError(
      `${id}: attach record version ${JSON.stringify((record as AttachRecord | null)?.version)} is not supported (this kubedev reads version ${ATTACH_RECORD_VERSION}). Synthesize the file again with this kubedev, or use the kubedev that wrote it.`,
    );
  }
  // Every field, as lib validates what a user writes: a forged record is bad input, never a command.
  const problems = validateAttachRecord(record);
  if (problems.length === 1) throw new AttachRecordError(`${id}: ${problems[0]}`);
  if (problems.length > 1) throw new AttachRecordError(`${id}: ${problems.length} problems in the attach record:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return record;
}

/**
 * Finds environments in a list of objects (e.g. a parsed `dist/*.k8s.yaml`).
 * @returns every record, keyed by environment name.
 */
export function findAttachRecords(objects: readonly KubeObject[], where: string): Map<string, AttachRecord> {
  const found = new Map<string, AttachRecord>();
  for (const o of objects) {
    if (o?.metadata?.annotations?.[ATTACH_ANNOTATION] !== undefined) {
      const r = readAttachRecord(o, where);
      found.set(r.name, r);
    }
  }
  return found;
}

/**
 * Picks one environment by name, with a message that lists the ones there are.
 */
export function pickAttachRecord(objects: readonly KubeObject[], name: string, where: string): AttachRecord {
  const all = findAttachRecords(objects, where);
  const r = all.get(name);
  if (r) return r;
  const names = [...all.keys()];
  throw new AttachRecordError(
    names.length === 0
      ? `${where} holds no kubedev environment. Synthesize one with 'npm run synth' and pass its file to --env.`
      : `${where} holds no environment named '${name}' (it holds: ${names.join(', ')}). Pass one of those to --name.`,
  );
}
