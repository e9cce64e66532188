/**
 * Connection.open makes the TCP connection before it reads the key and loads ssh2 (transport.ts): a
 * failure in that gap must read as before. Nothing listening: "cannot connect"; a server that hangs
 * up at once: "closed during the handshake"; an unreadable key still names the key, whatever the
 * socket did; an abort rejects with its reason; none of them leaves a socket open.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { AuthError, Connection, ConnectionError } from '../sync/engine/transport';
import { freePort } from './support/sshd';
import { tempDir } from './support/trees';

let dir: string;
let key: string;

beforeAll(() => {
  dir = tempDir('connect-early');
  key = path.join(dir, 'id');
  // A real key: a failure must come from the socket, not from parsing the key.
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function options(port: number, identity = key): Parameters<typeof Connection.open>[0] {
  return { host: '127.0.0.1', port, user: 'nobody', identity, knownHosts: path.join(dir, 'known_hosts'), readyTimeoutMs: 5000 };
}

/** A server that accepts and hangs up at once (`hangUp`), or holds what it accepts; it counts them. */
async function server(hangUp: boolean): Promise<{ port: number; drained: () => Promise<boolean>; close: () => Promise<void> }> {
  let accepted = 0;
  const srv = net.createServer((s) => {
    accepted++;
    if (hangUp) s.destroy();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const count = (): Promise<number> => new Promise((r, j) => srv.getConnections((e, n) => (e ? j(e) : r(n))));
  return {
    port: (srv.address() as net.AddressInfo).port,
    // Whether it accepted a connection and every one has gone since (waits up to 3 s).
    drained: async () => {
      for (const deadline = Date.now() + 3000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) if (accepted > 0 && (await count()) === 0) return true;
      return false;
    },
    close: () => new Promise((r) => srv.close(() => r())),
  };
}

test('nothing listening: a ConnectionError naming the refusal (retried by the session)', async () => {
  const port = await freePort();
  const e = await Connection.open(options(port)).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ConnectionError);
  expect((e as Error).message).toMatch(new RegExp(`^cannot connect to nobody@127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
});

test('a server that hangs up at once: a ConnectionError, not a hang', async () => {
  const srv = await server(true);
  try {
    const t0 = Date.now();
    const e = await Connection.open(options(srv.port)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConnectionError);
    expect((e as Error).message).toMatch(/nobody@127\.0\.0\.1:\d+ (closed during the handshake|.*ECONNRESET)/);
    expect(Date.now() - t0).toBeLessThan(4000); // well before the ready timeout
  } finally {
    await srv.close();
  }
});

test('an unreadable key is an AuthError naming it, and the socket opened meanwhile is closed', async () => {
  const srv = await server(false);
  try {
    const e = await Connection.open(options(srv.port, path.join(dir, 'missing-key'))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AuthError);
    expect((e as Error).message).toMatch(/identity '.*missing-key' is unreadable \(ENOENT\)/);
    expect(await srv.drained()).toBe(true);
  } finally {
    await srv.close();
  }
});

test('aborted before the handshake: rejects with the reason, the socket closed', async () => {
  const srv = await server(false);
  try {
    const ctl = new AbortController();
    ctl.abort(new Error('stop now'));
    const e = await Connection.open({ ...options(srv.port), signal: ctl.signal }).catch((x: unknown) => x);
    expect((e as Error).message).toBe('stop now');
    expect(await srv.drained()).toBe(true);
  } finally {
    await srv.close();
  }
});
