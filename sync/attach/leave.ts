/**
 * Leaving an environment (`kubedev down`) and the running-session file that makes it possible: `up`
 * writes its pid to `<config>/kubedev/sessions/<namespace>/<name>.pid` (0600) while it runs; `down`
 * ends that `up` (SIGTERM: it finishes the batch in flight and closes its forwards), stops the dev
 * process through the supervisor, and with `--volumes` scales the environment to 0 and deletes its
 * PersistentVolumeClaims (found by the environment's label).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AttachRecord } from '../../lib/attach';
import { CONTROL_FIFO, CONTROL_DIR } from '../../lib/dev-process';
import { ENVIRONMENT_LABEL } from '../../lib/dev-environment-spec';
import { configDir } from './key-store';
import { KubectlError, kubectl } from './kubectl';

export function sessionFile(namespace: string, name: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(configDir(env), 'sessions', namespace, `${name}.pid`);
}

/** Records this process as the running `up` of the environment; returns the function that removes the record. */
export function recordSession(record: AttachRecord): () => void {
  const file = sessionFile(record.namespace, record.name);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, `${process.pid}\n`, { mode: 0o600 });
  return () => {
    try {
      if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file);
    } catch {
      // already gone
    }
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Ends the running `up` of the environment, if any; resolves to its pid, or undefined when none ran. */
export async function endSession(record: AttachRecord, timeoutMs = 15_000): Promise<number | undefined> {
  const file = sessionFile(record.namespace, record.name);
  const pid = Number(fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : NaN);
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) {
    fs.rmSync(file, { force: true });
    return undefined;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) {
      throw new Error(`kubedev up (pid ${pid}) did not stop within ${timeoutMs / 1000} s of SIGTERM. Stop it yourself (kill ${pid}), then run kubedev down again`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  fs.rmSync(file, { force: true });
  return pid;
}

/**
 * Asks the supervisor to stop the dev process (it stays stopped until the next `up`). Resolves to
 * false when there is no pod or no supervisor (nothing runs), and rejects on other kubectl failures.
 */
export async function stopDevProcess(record: AttachRecord, options: { context?: string; signal?: AbortSignal }): Promise<boolean> {
  const fifo = `${CONTROL_DIR}/${CONTROL_FIFO}`;
  const script = `test -p ${fifo} || exit 3; printf 'stop\\n' > ${fifo}`;
  try {
    await kubectl(['exec', '-n', record.namespace, record.pod ?? `${record.name}-0`, '-c', record.container, '--', 'sh', '-c', script], options);
    return true;
  } catch (e) {
    if (e instanceof KubectlError && (e.kind === 'not-found' || /exit code 3/.test(e.message))) return false;
    throw e;
  }
}

/** Scales the environment's workload to 0 and deletes its PVCs (workspace and caches). */
export async function deleteVolumes(record: AttachRecord, options: { context?: string; signal?: AbortSignal }): Promise<void> {
  const kind = record.workload.kind === 'Deployment' ? 'deployment' : 'statefulset';
  await kubectl(['scale', `${kind}/${record.workload.name}`, '-n', record.namespace, '--replicas=0'], options);
  await kubectl(['delete', 'pvc', '-n', record.namespace, '-l', `${ENVIRONMENT_LABEL}=${record.name}`, '--wait=false'], options);
}
