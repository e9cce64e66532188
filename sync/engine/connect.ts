/**
 * Opening a session's connection, with the retry rule both sessions (mirror and two-way) share: a
 * connection error is retried with jittered backoff (200 ms doubling, at most `maxBackoffMs`); a host
 * key or authentication refusal, or any other fault, is thrown at once.
 */
import { Connection, ConnectionError, ConnectOptions } from './transport';

/** Sleeps, or rejects when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Whether an error means the connection is gone (retry) rather than a fault to report. */
export function isTransient(e: unknown): boolean {
  return e instanceof ConnectionError;
}

export interface ConnectHooks {
  /** Runs on each new connection before it counts as made (keep it, prepare the remote, start a watcher). */
  setup(conn: Connection): Promise<void>;
  reconnecting(info: { attempt: number; delayMs: number; reason: string }): void;
}

/**
 * Connects, retrying connection errors (during `setup` too) `attempts` times (0: until `signal`
 * aborts). Resolves with the connection once `setup` is done.
 */
export async function connectWithBackoff(o: Omit<ConnectOptions, 'signal'> & { readonly maxBackoffMs?: number }, attempts: number, signal: AbortSignal, hooks: ConnectHooks): Promise<Connection> {
  let wait = 200;
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    try {
      const conn = await Connection.open({ ...o, signal });
      await hooks.setup(conn);
      return conn;
    } catch (e) {
      if (!(e instanceof ConnectionError) || signal.aborted) throw e;
      if (attempts > 0 && attempt >= attempts) throw e;
      const delayMs = Math.min(wait, o.maxBackoffMs ?? 10_000) * (0.8 + Math.random() * 0.4);
      hooks.reconnecting({ attempt, delayMs: Math.round(delayMs), reason: e.message });
      await delay(delayMs, signal);
      wait *= 2;
    }
  }
}
