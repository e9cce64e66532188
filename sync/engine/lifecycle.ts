/**
 * What the mirror session (session.ts) and the two-way session (two-way/session.ts) share of their
 * lifecycle: the `done` promise, the host key's fingerprint, the start preamble (the abort signal, the
 * local root checked and its identity taken), a failure that stops the session once, and an idempotent
 * close. Each session brings its own start work (`run`) and its own `shutdown`.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { RootIdentity, rootIdentity } from './safety';

// The events every session emits (its own event map adds the rest).
type Base = { error: [Error] };

export abstract class SessionLifecycle<Events extends Record<keyof Events, unknown[]> & Base> extends EventEmitter<Events> {
  protected closing?: Promise<void>;
  protected fatal?: Error;
  /** The first pass is done ('ready' emitted). */
  protected started = false;
  /** Aborted on close: backoff sleeps and watcher start-up end; the batch in flight finishes. */
  protected readonly abort = new AbortController();
  protected hostFingerprint?: string;
  /** The local root as it was at start (a root moved or replaced later halts the session). */
  protected rootId?: RootIdentity;
  private readonly doneP: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;

  protected constructor() {
    super();
    this.doneP = new Promise<void>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    this.doneP.catch(() => undefined);
  }

  /** Settles when the session ends: resolves on close(), rejects with the fatal error. */
  get done(): Promise<void> {
    return this.doneP;
  }

  /** Fingerprint of the server's host key once connected. */
  get fingerprint(): string | undefined {
    return this.hostFingerprint;
  }

  /** Stops: the work in flight finishes, the watchers stop, the connection closes. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.abort.abort(new Error('closed'));
      await this.shutdown();
      if (this.fatal) this.rejectDone(this.fatal);
      else this.resolveDone();
    })();
    return this.closing;
  }

  /** Stops the watchers and the scheduler and closes the connection (close() and a failed start). */
  protected abstract shutdown(): Promise<void>;

  /**
   * The start preamble around `run`: `signal` closes the session, the local root must be a folder
   * (its identity is kept), and a start that fails shuts down and settles `done` with the error.
   */
  protected async starting<T>(localRoot: string, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
    const onAbort = (): void => void this.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const st = await fs.promises.stat(localRoot).catch(() => undefined);
      if (!st?.isDirectory()) throw new Error(`local folder '${localRoot}' does not exist or is not a folder. Pass an existing folder to --local`);
      this.rootId = rootIdentity(localRoot);
      return await run();
    } catch (e) {
      const err = this.fatal ?? (e as Error);
      await this.shutdown();
      this.rejectDone(err);
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A fatal error: reported once (as an 'error' event when anyone listens), then the session closes. */
  protected fail(e: Error): void {
    if (this.fatal || this.closing) return;
    this.fatal = e;
    const self = this as unknown as EventEmitter<Base>;
    if (self.listenerCount('error') > 0) self.emit('error', e);
    void this.close();
  }
}
