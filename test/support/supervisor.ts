/**
 * The dev container without a cluster: lib's supervisor script run by dash as the sidecar's user (so
 * the sshd harness can write its control FIFO, as the two containers share uid and fsGroup), with the
 * environment's hook scripts from its ConfigMap, its output appended to a file the fake kubectl's
 * `logs -f` follows.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DevEnvironmentSpec, renderDevEnvironment } from '../../lib/dev-environment';
import { SUPERVISOR_FILE } from '../../lib/dev-process';
import { KubeObject } from '../../lib/k8s';

export interface FakeDevContainer {
  readonly control: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  log(): string;
  /** TERM, as the kubelet stops the container; resolves when the supervisor has exited. */
  stop(): Promise<void>;
}

/**
 * `pid1`: run it as the first process of a new PID namespace, as in a container (root only): orphans
 * are then its children, as they are in the dev container.
 */
export function startSupervisor(spec: DevEnvironmentSpec, dir: string, owner: { uid: number; gid: number }, cwd: string, o: { pid1?: boolean } = {}): FakeDevContainer {
  const objects: KubeObject[] = renderDevEnvironment(spec);
  const cm = objects.find((o) => o.kind === 'ConfigMap') as KubeObject & { data: Record<string, string> };
  const sts = objects.find((o) => o.kind === 'StatefulSet') as KubeObject & { spec: { template: { spec: { containers: { args?: string[] }[] } } } };
  const hooks = path.join(dir, 'supervisor');
  const control = path.join(dir, 'control');
  fs.mkdirSync(hooks, { recursive: true });
  fs.mkdirSync(control, { recursive: true });
  for (const [k, v] of Object.entries(cm.data)) if (k === SUPERVISOR_FILE || k.startsWith('hook-')) fs.writeFileSync(path.join(hooks, k), v, { mode: 0o444 });
  fs.chownSync(control, owner.uid, owner.gid);
  const logFile = path.join(dir, 'dev.log');
  const fd = fs.openSync(logFile, 'a');
  fs.chownSync(logFile, owner.uid, owner.gid);
  const args = sts.spec.template.spec.containers[0].args ?? [];
  const argv = ['dash', path.join(hooks, SUPERVISOR_FILE), ...args];
  if (o.pid1) argv.unshift('unshare', '--pid', '--fork', '--mount-proc', '--kill-child=SIGTERM');
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    uid: owner.uid,
    gid: owner.gid,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KUBEDEV_CONTROL: control, KUBEDEV_HOOKS: hooks },
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    control,
    logFile,
    child,
    log: () => fs.readFileSync(logFile, 'utf8'),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // unshare ignores TERM while it waits: the supervisor (its one child) gets it, as from the kubelet.
        const pid1 = o.pid1 ? Number(fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]) : 0;
        if (pid1 > 0) process.kill(pid1, 'SIGTERM');
        else child.kill('SIGTERM');
      }
      await exited;
    },
  };
}
