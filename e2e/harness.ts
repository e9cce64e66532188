/**
 * What the podman e2e suites share: the kubedev CLI as a child process with its JSON events, and an
 * environment's pod played with the host's node mounted into the dev container (the dev image, Debian
 * minbase, has none; same Debian release as the host, so the same libc).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { KubeObject } from '../lib/k8s';
import { podman, podmanQuiet, toPodmanPlay } from './podman';

const REPO = path.resolve(__dirname, '..');
const TSX = pathToFileURL(require.resolve('tsx')).href;
const NODE = '/usr/bin/node';

export type CliEvent = Record<string, unknown>;

export interface CliRun {
  readonly proc: ChildProcess;
  readonly events: CliEvent[];
  readonly exit: Promise<number | null>;
  stderr(): string;
  /** The first event `pred` accepts, waiting up to `ms`; throws with the command's stderr otherwise. */
  waitFor(pred: (e: CliEvent) => boolean, what: string, ms?: number): Promise<CliEvent>;
}

/** Runs `kubedev ARGS` from the TypeScript sources (no build needed), collecting its --json events. */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): CliRun {
  const proc = spawn(process.execPath, ['--import', TSX, path.join(REPO, 'e2e', 'kubedev-cli.ts'), ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: CliEvent[] = [];
  let err = '';
  let buf = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) events.push(JSON.parse(buf.slice(0, i)) as CliEvent);
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const name = `kubedev ${args[0]}`;
  const waitFor = async (pred: (e: CliEvent) => boolean, what: string, ms = 60_000): Promise<CliEvent> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const e = events.find(pred);
      if (e) return e;
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`no ${what} from ${name}:\n${err}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { proc, events, exit, stderr: () => err, waitFor };
}

export interface PlayedPod {
  readonly playFile: string;
  readonly volumes: string[];
}

/** Plays the rendered environment (with the Secrets `kubedev keys` printed) on the host network, node mounted in the dev container. */
export async function playWithHostNode(rendered: readonly KubeObject[], keysYaml: string, dir: string): Promise<PlayedPod> {
  const play = toPodmanPlay(rendered, parseAllDocuments(keysYaml).map((d) => d.toJS() as KubeObject));
  const pod = play.objects.find((o) => o.kind === 'Pod') as unknown as { spec: { volumes: unknown[]; containers: { volumeMounts: unknown[] }[] } };
  pod.spec.volumes.push({ name: 'host-node', hostPath: { path: NODE, type: 'File' } });
  pod.spec.containers[0].volumeMounts.push({ name: 'host-node', mountPath: '/usr/local/bin/node', readOnly: true });
  const playFile = path.join(dir, 'play.yaml');
  fs.writeFileSync(playFile, play.objects.map((o) => stringify(o)).join('---\n'));
  await podmanQuiet(['volume', 'rm', '-f', ...play.volumes]);
  await podman(['kube', 'play', '--network', 'host', playFile]);
  return { playFile, volumes: play.volumes };
}

/** afterAll: kills what still runs, removes the pod and its volumes and the scratch folder. */
export async function cleanUp(procs: readonly (ChildProcess | undefined)[], pod: string, volumes: readonly string[], dir: string): Promise<void> {
  for (const p of procs) if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await podmanQuiet(['pod', 'rm', '-f', '-t', '0', pod]);
  if (volumes.length > 0) await podmanQuiet(['volume', 'rm', '-f', ...volumes]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
