/**
 * Reverse forwards: `up` asks the sidecar's sshd to listen on the pod's loopback at the declared
 * port and relays what arrives there to the developer's machine. The sshd (lib's sshd_config, run as
 * the non-root user) refuses any port it was not told about.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { Client } from 'ssh2';
import { keyPaths } from '../sync/attach/key-store';
import { freeLocalPort } from '../sync/attach/up';
import { SSH_PORT, cleanups, pod, spec, startSidecar, startUp, world, writeEnv } from './support/up-harness';

function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(text));
    let got = '';
    c.on('data', (d) => {
      got += d.toString();
      if (got.length >= text.length) {
        c.destroy();
        resolve(got);
      }
    });
    c.on('error', reject);
    c.on('close', () => resolve(got));
  });
}

describe('kubedev up: reverse forwards', () => {
  test("a connection to the pod's loopback port reaches the developer's local service", async () => {
    const local = net.createServer((c) => c.on('data', (d) => c.write(`local:${d.toString()}`)));
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => local.close(() => r())));
    const localPort = (local.address() as net.AddressInfo).port;
    const podPort = await freeLocalPort();
    writeEnv(spec({ reverse: [{ remote: podPort, local: localPort, name: 'debug' }] }));
    const sshd = await startSidecar([podPort]);
    world({ pods: { 'team-web/api-0': [pod('ready')] }, forward: { [SSH_PORT]: sshd.port } });
    const up = startUp();
    await up.waitFor('ready', 30_000);
    expect(up.events.find((e) => e.event === 'reverse')).toMatchObject({ name: 'debug', remote: podPort, local: localPort });
    // "In the pod": the sidecar's loopback is this machine's here.
    expect(await roundTrip(podPort, 'ping')).toBe('local:ping');
    expect(up.stderr()).toContain(`reverse forwarding debug pod 127.0.0.1:${podPort} -> here 127.0.0.1:${localPort}`);

    // Nothing listening locally: the pod's connection is closed and the developer told once.
    local.close();
    await roundTrip(podPort, 'x').catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (!up.stderr().includes(`nothing answers on 127.0.0.1:${localPort} here`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(up.stderr()).toContain(`reverse forward 'debug': the pod connected to 127.0.0.1:${podPort}, but nothing answers on 127.0.0.1:${localPort} here`);
    await up.stop();
  }, 60_000);

  test('the sidecar refuses to listen on a port that was not declared', async () => {
    const declared = await freeLocalPort();
    writeEnv(spec({ reverse: [{ remote: declared }] }));
    const sshd = await startSidecar([declared]);
    const keys = keyPaths('team-web', 'api');
    const c = new Client();
    cleanups.push(() => void c.end());
    await new Promise<void>((resolve, reject) => {
      c.once('ready', () => resolve());
      c.once('error', reject);
      c.connect({ host: '127.0.0.1', port: sshd.port, username: sshd.user, privateKey: fs.readFileSync(keys.clientKey) });
    });
    const other = await freeLocalPort();
    const err = await new Promise<Error | undefined>((resolve) => c.forwardIn('127.0.0.1', other, (e) => resolve(e)));
    expect(err?.message).toBe('Unable to bind to 127.0.0.1:' + other);
    // A wildcard bind is narrowed to loopback (GatewayPorts no): nothing listens on other addresses.
    const ok = await new Promise<Error | undefined>((resolve) => c.forwardIn('0.0.0.0', declared, (e) => resolve(e)));
    fs.writeFileSync('/tmp/sshd-rev.log', sshd.log());
    expect(ok).toBeUndefined();
  }, 60_000);
});
