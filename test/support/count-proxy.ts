/**
 * A TCP proxy on 127.0.0.1 that counts the bytes crossing it each way (optionally delaying each chunk,
 * as bench/delay-proxy.ts does), and a known_hosts file naming the proxy's port with the server's key:
 * what a test needs to measure bytes on the wire of a real SSH connection.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Sshd } from './sshd';
import { tempDir } from './trees';

export interface CountProxy {
  readonly port: number;
  /** known_hosts holding the server's key for `[127.0.0.1]:port`. */
  readonly knownHosts: string;
  /** Bytes from the client to the server, and back, since the start or the last reset. */
  readonly sent: () => number;
  readonly received: () => number;
  reset(): void;
  close(): Promise<void>;
}

export async function startCountProxy(sshd: Sshd, delayMs = 0): Promise<CountProxy> {
  const sockets = new Set<net.Socket>();
  let up = 0;
  let down = 0;
  const relay = (from: net.Socket, to: net.Socket, count: (n: number) => void): void => {
    from.on('data', (chunk: Buffer) => {
      count(chunk.length);
      const write = (): void => void (to.destroyed || to.write(chunk));
      if (delayMs > 0) setTimeout(write, delayMs);
      else write();
    });
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => to.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(sshd.port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
    }
    relay(client, upstream, (n) => (up += n));
    relay(upstream, client, (n) => (down += n));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const knownHosts = path.join(tempDir('count-proxy'), 'known_hosts');
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${sshd.hostPublicKey}\n`);
  return {
    port,
    knownHosts,
    sent: () => up,
    received: () => down,
    reset: () => {
      up = 0;
      down = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        fs.rmSync(path.dirname(knownHosts), { recursive: true, force: true });
      }),
  };
}
