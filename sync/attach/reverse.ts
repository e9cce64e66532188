/**
 * Reverse forwards while `up` runs: the sidecar's sshd listens on the pod's 127.0.0.1:<remote> (and
 * only there, and only on the declared ports: see lib/sshd.ts), and each connection made there from
 * the dev container is relayed to 127.0.0.1:<local> on the developer's machine — a debugger, a local
 * service. The connection is kubedev's own; when it drops, the forwards are made again with backoff.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { AttachReverse } from '../../lib/attach';
import { Connection, ConnectOptions } from '../engine/transport';

export interface ReverseEvents {
  /** All forwards are listening (again). */
  listening: [];
  /** A connection from the pod found nothing on the local port, or the forwards failed; the text says what to do. */
  warning: [message: string];
}

export class ReverseForwards extends EventEmitter<ReverseEvents> {
  private conn?: Connection;
  private closed = false;
  private retry?: NodeJS.Timeout;
  private readonly warned = new Set<number>();

  constructor(private readonly connect: ConnectOptions, private readonly forwards: readonly AttachReverse[]) {
    super();
  }

  /** Opens the forwards; rejects when the server refuses one (then nothing is left open). */
  async start(): Promise<void> {
    const conn = await Connection.open(this.connect);
    try {
      for (const f of this.forwards) await conn.forwardIn(f.remote, (stream) => this.relay(f, stream));
    } catch (e) {
      await conn.close();
      throw new Error(`${(e as Error).message}. The environment's sshd_config must allow it: synthesize and apply the environment again, then restart its pod`);
    }
    this.conn = conn;
    conn.onDrop(() => this.again(1000));
    this.emit('listening');
  }

  private again(delayMs: number): void {
    if (this.closed) return;
    this.retry = setTimeout(() => {
      this.start().catch((e: Error) => {
        this.emit('warning', `reverse forwards: ${e.message}; retrying`);
        this.again(Math.min(delayMs * 2, 30_000));
      });
    }, delayMs);
  }

  private relay(f: AttachReverse, stream: NodeJS.ReadWriteStream & { destroy(): void }): void {
    const local = net.connect(f.local, '127.0.0.1');
    local.once('connect', () => this.warned.delete(f.local));
    local.on('error', (e: NodeJS.ErrnoException) => {
      if (!this.warned.has(f.local)) {
        this.warned.add(f.local);
        this.emit('warning', `reverse forward '${f.name}': the pod connected to 127.0.0.1:${f.remote}, but nothing answers on 127.0.0.1:${f.local} here (${e.code ?? e.message}). Start the local service on port ${f.local}`);
      }
      stream.destroy();
    });
    stream.on('error', () => local.destroy());
    stream.pipe(local).pipe(stream);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.conn?.close();
  }
}
