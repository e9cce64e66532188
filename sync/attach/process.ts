/**
 * The dev process, seen from the runner: which onSync steps a batch triggers, requests to the
 * supervisor over SSH (a line written into its control FIFO, in the sidecar that shares the folder),
 * and its output and events read from the dev container's log (`kubectl logs -f`).
 *
 * Why the FIFO and a second SSH connection: the runner already holds SSH to the sidecar, so a request
 * costs one exec channel (a few ms), where `kubectl exec` into the dev container costs an API round
 * trip and a process (100+ ms) and needs the exec right on every save. The connection is separate
 * from the mirror's so a request never waits behind a large tar stream on the same TCP connection.
 * The supervisor reads only `restart`, `stop`, `start` and `batch <id> run:<n>|restart`: the runner
 * (or anyone with the SSH key) can make it do what the environment declares, never run a command.
 */
import { EventEmitter } from 'node:events';
import { ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';
import ignore from 'ignore';
import { AttachHook, AttachRecord } from '../../lib/attach';
import { CONTROL_FIFO, EVENT_PREFIX } from '../../lib/dev-process';
import { Connection, ConnectOptions } from '../engine/transport';
import { spawnKubectl } from './kubectl';

/** What the supervisor reports, parsed from its `[kubedev] ...` log lines. */
export type ProcessEvent =
  | { readonly kind: 'started' | 'stopped'; readonly gen: number }
  | { readonly kind: 'exited'; readonly gen: number; readonly code: number }
  | { readonly kind: 'crashed'; readonly gen: number; readonly code: number; readonly retryInSeconds: number }
  | { readonly kind: 'hook'; readonly batch: string; readonly step: string; readonly state: 'running' | 'ok' | 'failed'; readonly code?: number }
  | { readonly kind: 'batch-done'; readonly batch: string }
  | { readonly kind: 'refused'; readonly request: string }
  | { readonly kind: 'note'; readonly text: string };

/** One log line: an event of the supervisor, or the process's (or a hook's) own output. */
export function parseProcessLine(line: string): { event: ProcessEvent } | { output: string } {
  if (!line.startsWith(EVENT_PREFIX)) return { output: line };
  const text = line.slice(EVENT_PREFIX.length);
  const w = text.split(' ');
  const num = (s: string | undefined): number => Number(s);
  switch (w[0]) {
    case 'started':
    case 'stopped':
      return { event: { kind: w[0], gen: num(w[1]) } };
    case 'exited':
      return { event: { kind: 'exited', gen: num(w[1]), code: num(w[2]) } };
    case 'crashed':
      return { event: { kind: 'crashed', gen: num(w[1]), code: num(w[2]), retryInSeconds: num(w[3]) } };
    case 'hook':
      if (w[3] === 'running' || w[3] === 'ok' || w[3] === 'failed') {
        return { event: { kind: 'hook', batch: w[1], step: w[2], state: w[3], code: w[3] === 'failed' ? num(w[4]) : undefined } };
      }
      break;
    case 'batch':
      if (w[2] === 'done') return { event: { kind: 'batch-done', batch: w[1] } };
      break;
    case 'refused':
      return { event: { kind: 'refused', request: w.slice(1).join(' ') } };
    default:
  }
  return { event: { kind: 'note', text } };
}

/**
 * The steps a batch triggers, in declared order, each hook once: `run:<index>` or `restart` (once per
 * batch, at its first place). `paths` undefined means anything may have changed: every hook matches.
 */
export function hookSteps(hooks: readonly AttachHook[], paths: readonly string[] | undefined): string[] {
  const steps: string[] = [];
  hooks.forEach((h, i) => {
    if (paths !== undefined) {
      const m = ignore().add([...h.paths]);
      if (!paths.some((p) => p !== '' && m.ignores(p))) return;
    }
    const step = h.restart ? 'restart' : `run:${i}`;
    if (!steps.includes(step)) steps.push(step);
  });
  return steps;
}

/** Thrown when the supervisor cannot be reached: names the cause and the fix. */
export class SupervisorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SupervisorError';
  }
}

/** A request line is made of our own tokens only; checked again before it is quoted into a command. */
const REQUEST = /^(restart|stop|start|batch [0-9A-Za-z_-]+( (run:[0-9]+|restart))*)$/;

/** The shell command, run in the sidecar, that hands one request to the supervisor. */
export function requestCommand(controlDir: string, request: string): string {
  if (!REQUEST.test(request)) throw new Error(`not a supervisor request: ${JSON.stringify(request)}`);
  if (!/^\/[A-Za-z0-9._/-]+$/.test(controlDir)) throw new Error(`not a control folder: ${JSON.stringify(controlDir)}`);
  // Exit 3: no FIFO (no supervisor); timeout's 124: nobody reads it.
  return `timeout 5 sh -c 'test -p "$0" || exit 3; printf "%s\\n" "$1" > "$0"' '${controlDir}/${CONTROL_FIFO}' '${request}'`;
}

/** Sends requests to the supervisor over SSH to the sidecar; reconnects when the connection dropped. */
export class SupervisorControl {
  private conn?: Connection;
  private batches = 0;

  constructor(private readonly connect: ConnectOptions, private readonly controlDir: string) {}

  /** Asks for the steps of one batch; returns its id (the supervisor's events name it), or undefined when there is none. */
  async batch(steps: readonly string[], options: { signal?: AbortSignal } = {}): Promise<string | undefined> {
    if (steps.length === 0) return undefined;
    const id = `b${++this.batches}`;
    await this.request(`batch ${id} ${steps.join(' ')}`, options);
    return id;
  }

  async request(line: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (!this.conn?.alive) this.conn = await Connection.open({ ...this.connect, signal: options.signal });
    const res = await this.conn.exec(requestCommand(this.controlDir, line), undefined, options);
    if (res.code === 0) return;
    if (res.code === 3) {
      throw new SupervisorError(`the dev container runs no kubedev supervisor (no control FIFO in ${this.controlDir}). Apply the environment as this kubedev synthesizes it, then run kubedev up again`);
    }
    if (res.code === 124) {
      throw new SupervisorError(`the supervisor does not answer (its control FIFO in ${this.controlDir} is not read). See its log: kubedev logs; restarting the pod restarts it`);
    }
    throw new SupervisorError(`asking the supervisor to '${line}' failed (exit ${String(res.code)}: ${res.stderr.trim()}). Check the sidecar can write ${this.controlDir}`);
  }

  async close(): Promise<void> {
    await this.conn?.close();
    this.conn = undefined;
  }
}

export interface ProcessLogEvents {
  /** Every line as the container wrote it. */
  line: [line: string];
  output: [line: string];
  event: [event: ProcessEvent];
  /** kubectl logs ended (the pod went away, or close()); `stderr` says why. */
  end: [info: { code: number | null; stderr: string }];
}

/** The dev container's log, followed: the process's output and the supervisor's events. */
export class ProcessLog extends EventEmitter<ProcessLogEvents> {
  private child?: ChildProcess;
  private closed = false;

  constructor(private readonly record: AttachRecord, private readonly options: { context?: string; tail?: number; follow?: boolean } = {}) {
    super();
  }

  start(): void {
    const r = this.record;
    const args = ['logs', '-n', r.namespace, r.pod ?? `${r.name}-0`, '-c', r.container, `--tail=${this.options.tail ?? 20}`];
    if (this.options.follow !== false) args.push('-f');
    const child = spawnKubectl(args, { context: this.options.context });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const lines = readline.createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      this.emit('line', line);
      const parsed = parseProcessLine(line);
      if ('event' in parsed) this.emit('event', parsed.event);
      else this.emit('output', parsed.output);
    });
    child.on('error', (e) => this.emit('end', { code: null, stderr: e.message }));
    child.on('close', (code) => {
      if (!this.closed) this.emit('end', { code, stderr });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.kill('SIGTERM');
    });
  }
}
