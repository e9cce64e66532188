/**
 * The inner loop inside `kubedev up`: stream the dev process's output, start it once the first mirror
 * is on the remote, and after every batch ask the supervisor for the onSync steps the batch's paths
 * trigger. A failing hook or an unreachable supervisor is reported; the mirror goes on.
 */
import { AttachRecord } from '../../lib/attach';
import { CONTROL_DIR } from '../../lib/dev-process';
import { ConnectOptions } from '../engine/transport';
import { ProcessEvent, ProcessLog, SupervisorControl, hookSteps } from './process';
import { StatusLine } from './status';

export interface DevLoopOptions {
  readonly record: AttachRecord;
  readonly connect: ConnectOptions;
  readonly status: StatusLine;
  readonly json: boolean;
  readonly context?: string;
  /** Tests: the control folder as the sshd harness sees it. @default the record's */
  readonly controlDir?: string;
}

/** A hook's description for messages: `onSync #2 (npm ci)`. */
function describeStep(record: AttachRecord, step: string): string {
  if (step === 'restart') return 'restart of the dev process';
  const i = Number(step.slice('run:'.length));
  return `onSync #${i + 1} (${record.hooks?.[i]?.run ?? '?'})`;
}

export class DevLoop {
  private readonly control: SupervisorControl;
  private readonly log: ProcessLog;
  private readonly hasCommand: boolean;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly o: DevLoopOptions) {
    this.control = new SupervisorControl(o.connect, o.controlDir ?? o.record.process?.control ?? CONTROL_DIR);
    this.log = new ProcessLog(o.record, { context: o.context, tail: 0 });
    this.hasCommand = (o.record.process?.command.length ?? 0) > 0;
  }

  /** Whether the environment declares a process (else `up` may open a shell). */
  get interactive(): boolean {
    return !this.hasCommand;
  }

  /** Follows the container's log (the supervisor's events, the process's output). */
  startLog(): void {
    const { status, json } = this.o;
    this.log.on('output', (line) => {
      if (json) status.event('output', { line });
      else status.output(line);
    });
    this.log.on('event', (e) => this.report(e));
    this.log.on('end', (info) => {
      if (!this.closed) status.say(`the dev container's log ended${info.stderr.trim() ? ` (${info.stderr.trim()})` : ''}; the mirror goes on. See it with kubedev logs -f`);
    });
    this.log.start();
  }

  /** After the first mirror: hooks for what it changed, then (re)start the process so it runs the mirrored files. */
  firstMirror(paths: readonly string[] | undefined, changed: boolean): void {
    const runs = changed ? hookSteps(this.o.record.hooks ?? [], paths).filter((s) => s !== 'restart') : [];
    const steps = this.hasCommand ? [...runs, 'restart'] : runs;
    this.send(steps);
  }

  /** After a batch reached the remote. */
  synced(paths: readonly string[] | undefined): void {
    this.send(hookSteps(this.o.record.hooks ?? [], paths));
  }

  private send(steps: string[]): void {
    if (steps.length === 0 || this.closed) return;
    // One request at a time, in batch order.
    this.queue = this.queue.then(async () => {
      try {
        const id = await this.control.batch(steps);
        this.o.status.event('hooks', { batch: id, steps });
      } catch (e) {
        this.o.status.say(`onSync: ${(e as Error).message}`);
        this.o.status.event('warning', { message: (e as Error).message });
      }
    });
  }

  private report(e: ProcessEvent): void {
    const { status, record } = this.o;
    status.event('process', { ...e });
    switch (e.kind) {
      case 'started':
        status.say(`dev process started: ${(record.process?.command ?? []).join(' ')}`);
        break;
      case 'exited':
        status.say('dev process exited with code 0; it starts again on the next restart hook or kubedev up');
        break;
      case 'crashed':
        status.say(`dev process crashed (exit code ${e.code}); restarting in ${e.retryInSeconds} s. Its output is above; kubedev logs shows it again`);
        break;
      case 'hook':
        if (e.state === 'failed') {
          status.say(`${describeStep(record, e.step)} failed with exit code ${String(e.code)}; the mirror goes on. Its output is above and kept in ${CONTROL_DIR}/hook-${e.step.slice(4)}.log (kubedev exec --name ${record.name} -- cat it)`);
        } else if (e.state === 'ok') {
          status.say(`${describeStep(record, e.step)} done`);
        }
        break;
      case 'refused':
        status.say(`the supervisor refused '${e.request}' (this kubedev and the environment's disagree: synthesize and apply it again)`);
        break;
      default:
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await Promise.allSettled([this.log.close(), this.control.close()]);
  }
}
