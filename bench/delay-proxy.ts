/**
 * A TCP proxy on 127.0.0.1 that delays every chunk by `delayMs` in each direction (so a round trip
 * costs 2 x delayMs), keeping order, and counts the bytes each way: a stand-in for a cluster 20-80 ms
 * away, with nothing leaving the machine.
 *
 * The bench runs it in a process of its own (`node delay-proxy.js TARGET_PORT DELAY_MS`), so that the
 * harness's own work (reading events, polling files) never holds a packet back. That process prints
 * `{"port":N}` once listening, then answers each stdin line `bytes` with `{"up":N,"down":N}` (client ->
 * server, server -> client, since start) and `reset` with the same after zeroing the counters.
 */
import * as net from 'node:net';
import * as readline from 'node:readline';

export interface DelayProxy {
  readonly port: number;
  /** Bytes client -> server (`up`) and server -> client (`down`) since start or the last reset. */
  bytes(): { up: number; down: number };
  reset(): void;
  close(): Promise<void>;
}

function delayed(from: net.Socket, to: net.Socket, delayMs: number, count: (n: number) => void): void {
  const forward = (f: () => void): void => {
    if (delayMs > 0) setTimeout(f, delayMs);
    else f();
  };
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    forward(() => {
      if (!to.destroyed) to.write(chunk);
    });
  });
  from.on('end', () => forward(() => to.end()));
  from.on('error', () => to.destroy());
  from.on('close', () => forward(() => to.destroy()));
}

export async function startDelayProxy(targetPort: number, delayMs: number): Promise<DelayProxy> {
  const sockets = new Set<net.Socket>();
  const counts = { up: 0, down: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
    }
    delayed(client, upstream, delayMs, (n) => (counts.up += n));
    delayed(upstream, client, delayMs, (n) => (counts.down += n));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    bytes: () => ({ ...counts }),
    reset: () => {
      counts.up = 0;
      counts.down = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function main(): Promise<void> {
  const [target, delay] = process.argv.slice(2).map(Number);
  if (!Number.isInteger(target) || !Number.isFinite(delay)) throw new Error('usage: delay-proxy TARGET_PORT DELAY_MS');
  const proxy = await startDelayProxy(target, delay);
  process.stdout.write(`${JSON.stringify({ port: proxy.port })}\n`);
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (l) => {
    const b = proxy.bytes();
    if (l.trim() === 'reset') proxy.reset();
    process.stdout.write(`${JSON.stringify(b)}\n`);
  });
  lines.on('close', () => void proxy.close().then(() => process.exit(0)));
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`delay-proxy: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
