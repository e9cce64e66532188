/**
 * `kubedev up` without a cluster: a fake kubectl (test/support/fake-kubectl.ts) answers the API calls
 * and relays port-forwards to a real OpenSSH sshd on 127.0.0.1, which runs as a non-root user with the
 * environment's own sshd_config and the keys `kubedev keys` made. Everything after the Kubernetes API
 * is real: keys, forwards, SSH, the mirror, files compared byte for byte.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { AttachRecord, readAttachRecord } from '../lib/attach';
import { renderDevEnvironment } from '../lib/dev-environment';
import { runKeys } from '../sync/cli/keys';
import { UsageError } from '../sync/errors';
import { keyPaths } from '../sync/attach/key-store';
import { fetchPod, fixFor, podState } from '../sync/attach/pod';
import {
  SSH_PORT, captureKeys, cleanups, envFile, fake, pod, project, refused, remote, spec, startSidecar, startUp, tmp, world, writeEnv,
} from './support/up-harness';
import { freePort } from './support/sshd';
import { differences, eventually, snapshot, writeTree } from './support/trees';

describe('kubedev up', () => {
  test('waits for the sidecar, forwards SSH and the declared ports, mirrors, follows changes, and stops cleanly', async () => {
    // A declared port, forwarded to an echo server standing in for the app in the dev container.
    const echo = net.createServer((c) => c.pipe(c));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => echo.close(() => r())));
    // The pod's port number: one free right now, so locally it is the same (echo+1 was often taken on a busy machine).
    const appPort = await freePort();
    writeEnv(spec({ ports: [{ name: 'http', port: appPort }] }));
    const sshd = await startSidecar();
    writeTree(path.join(project, 'src'), { 'index.js': 'console.log(1)\n', 'lib/util.js': 'module.exports = 2\n', 'run.sh': { content: '#!/bin/sh\n', mode: 0o755 }, 'debug.log': 'ignored' });
    world({
      pods: { 'team-web/api-0': [pod({ reason: 'ContainerCreating' }), pod({ reason: 'ContainerCreating' }), pod('ready', { reason: 'CrashLoopBackOff' })] },
      forward: { [SSH_PORT]: sshd.port, [appPort]: (echo.address() as net.AddressInfo).port },
    });

    const up = startUp();
    const ready = await up.waitFor('ready', 30_000);
    const local = path.join(project, 'src');
    const skipLog = (rel: string): boolean => rel === 'debug.log';
    expect(differences(snapshot(local, skipLog), snapshot(remote))).toEqual([]);
    expect(fs.existsSync(path.join(remote, 'debug.log'))).toBe(false);
    expect(up.stderr()).toContain("pod team-web/api-0: container 'sync' waiting: ContainerCreating");
    expect(up.stderr()).toContain('pod team-web/api-0 is running (sidecar ready; dev container waiting: CrashLoopBackOff)');

    // The declared port is forwarded on 127.0.0.1 under its own number.
    expect(ready.ports).toEqual({ http: appPort });
    const echoed = await new Promise<string>((resolve, reject) => {
      const c = net.connect(appPort, '127.0.0.1', () => c.write('ping'));
      let got = '';
      c.on('data', (d) => {
        got += d.toString();
        if (got.length >= 4) {
          c.destroy();
          resolve(got);
        }
      });
      c.on('error', reject);
    });
    expect(echoed).toBe('ping');

    // A change is mirrored.
    fs.writeFileSync(path.join(local, 'index.js'), 'console.log(2)\n');
    fs.rmSync(path.join(local, 'lib'), { recursive: true });
    await eventually(() => differences(snapshot(local, skipLog), snapshot(remote)), 10_000, 'after an edit');
    // The batch's 'synced' line may come a moment after its last write landed (the runner is another process).
    await eventually(() => (up.events.some((e) => e.event === 'synced') ? [] : ["no 'synced' event"]), 5_000, 'the synced event');

    // The kubectl calls kubedev made, in order.
    const verbs = fake.calls().map((c) => c.args.slice(0, 3).join(' '));
    expect(verbs.slice(0, 2)).toEqual(['get secret api-ssh-host-keys', 'get pod api-0']);
    const forwards = fake.calls().filter((c) => c.args[0] === 'port-forward').map((c) => c.args);
    expect(forwards).toEqual([
      ['port-forward', '-n', 'team-web', 'pod/api-0', '--address', '127.0.0.1', `${ready.ssh}:${SSH_PORT}`],
      ['port-forward', '-n', 'team-web', 'pod/api-0', '--address', '127.0.0.1', `${appPort}:${appPort}`],
    ]);

    // Ctrl-C: resolves, and the forwards are closed.
    await up.stop();
    expect(await refused(ready.ssh as number)).toBe(true);
    expect(await refused(appPort)).toBe(true);
    expect(up.stderr()).toMatch(/kubedev: stopped api: \d+ files, .* mirrored, 0 errors\n$/);
  });

  test('a port-forward that ends (pod restarted) is restarted on the same port, and the mirror carries on', async () => {
    const sshd = await startSidecar();
    writeTree(path.join(project, 'src'), { a: 'a' });
    world({ pods: { 'team-web/api-0': [pod('ready')] }, forward: { [SSH_PORT]: sshd.port } });
    const up = startUp();
    const ready = await up.waitFor('ready', 30_000);
    // Kill the fake kubectl port-forward, as when the pod goes away.
    const pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${ready.ssh}:${SSH_PORT}`);
      } catch {
        return false;
      }
    });
    expect(pids.length).toBe(1);
    process.kill(Number(pids[0]), 'SIGKILL');
    sshd.killSessions();
    fs.writeFileSync(path.join(project, 'src', 'b'), 'b');
    await eventually(() => differences(snapshot(path.join(project, 'src')), snapshot(remote)), 20_000, 'after the forward restarted');
    expect(up.stderr()).toContain('ssh port-forward ended');
    await up.stop();
  });
});

describe('kubedev up: every failure names the fault and the fix', () => {
  test('no keys', async () => {
    const p = keyPaths('team-web', 'api');
    await expect(startUp().done).rejects.toThrow(
      new UsageError(`no key for team-web/api: ${p.clientKey}, ${p.knownHosts} missing. Make the keys and their Secrets: kubedev keys --env ${envFile} --name api --apply`),
    );
    expect(fake.calls()).toEqual([]);
  });

  test('no such environment in the file', async () => {
    await expect(startUp({ name: 'web' }).done).rejects.toThrow(new UsageError(`${envFile} holds no environment named 'web' (it holds: api). Pass one of those to --name.`));
  });

  test('a sync folder that is not there', async () => {
    await captureKeys();
    fs.rmSync(path.join(project, 'src'), { recursive: true });
    await expect(startUp().done).rejects.toThrow(new UsageError(`sync folder 'src' (for ${remote}) is not a folder under ${project}. Run kubedev up from the project folder, or pass --root DIR.`));
  });

  test('no kubeconfig', async () => {
    await captureKeys();
    process.env.KUBECONFIG = path.join(tmp, 'nope');
    await expect(startUp().done).rejects.toThrow(
      new UsageError(
        `no kubeconfig: KUBECONFIG names '${path.join(tmp, 'nope')}', and none exists. Point KUBECONFIG at your cluster's config file, or fetch it (e.g. 'gcloud container clusters get-credentials CLUSTER', 'aws eks update-kubeconfig --name CLUSTER', 'az aks get-credentials -n CLUSTER -g GROUP').`,
      ),
    );
  });

  test('the key Secrets are not on the cluster', async () => {
    await captureKeys();
    fake.setWorld({ secrets: ['team-web/api-ssh-host-keys'] });
    await expect(startUp().done).rejects.toThrow(
      new UsageError(`the key Secret 'api-ssh-authorized-keys' is missing in namespace 'team-web'. Create it: kubedev keys --env ${envFile} --name api --apply`),
    );
  });

  test('a role that may not read the key Secrets still attaches (the check is skipped)', async () => {
    const sshd = await startSidecar();
    writeTree(path.join(project, 'src'), { a: 'a' });
    world({ secretsForbidden: true, pods: { 'team-web/api-0': [pod('ready')] }, forward: { [SSH_PORT]: sshd.port } });
    const up = startUp();
    await up.waitFor('ready', 30_000);
    expect(differences(snapshot(path.join(project, 'src')), snapshot(remote))).toEqual([]);
    await up.stop();
  });

  test('the pod is not found before the timeout', async () => {
    await captureKeys();
    world({ pods: {} });
    await expect(startUp({ timeout: 0.3 }).done).rejects.toThrow(
      "pod 'team-web/api-0' was not found after 0 s. Apply the environment (kubectl apply -f dist/<app>.k8s.yaml), then check its workload: kubectl get statefulset -n team-web api",
    );
  });

  test('the pod is not ready before the timeout: the waiting reason and its fix', async () => {
    await captureKeys();
    world({ pods: { 'team-web/api-0': [pod({ reason: 'ImagePullBackOff', message: 'Back-off pulling image "ghcr.io/kubedev/sync-sidecar:0.1.0"' })] } });
    await expect(startUp({ timeout: 1 }).done).rejects.toThrow(
      `pod 'team-web/api-0' is not ready after 1 s: container 'sync' waiting: ImagePullBackOff (Back-off pulling image "ghcr.io/kubedev/sync-sidecar:0.1.0"). The image cannot be pulled: check its name and the pull secret; the sidecar image is built from sync/sidecar/Containerfile and pushed to your registry. Details: kubectl describe pod -n team-web api-0`,
    );
  });

  test('a refused port-forward', async () => {
    await captureKeys();
    world({
      pods: { 'team-web/api-0': [pod('ready')] },
      forwardError: 'error: error upgrading connection: pods "api-0" is forbidden: User "alice" cannot create resource "pods/portforward" in API group "" in the namespace "team-web"',
    });
    await expect(startUp().done).rejects.toThrow(
      `port-forward refused by the cluster (error: error upgrading connection: pods "api-0" is forbidden: User "alice" cannot create resource "pods/portforward" in API group "" in the namespace "team-web"). Your role must allow 'create' on pods/portforward in namespace 'team-web': ask your cluster admin for the kubedev developer role (DeveloperAccess)`,
    );
  });

  test('a sidecar whose host key is not the one kubedev pinned', async () => {
    const sshd = await startSidecar();
    // Keys made again (elsewhere): the local known_hosts no longer matches the running sidecar.
    await runKeys({ env: envFile, name: 'api', rotate: true }, { stdout: new PassThrough(), stderr: new PassThrough() });
    world({ pods: { 'team-web/api-0': [pod('ready')] }, forward: { [SSH_PORT]: sshd.port } });
    const up = startUp();
    await expect(up.done).rejects.toThrow(/host key .* If the environment's keys were made again elsewhere, take the current ones: kubedev keys --env .* --name api --apply, then restart the pod$/);
    expect(fs.readdirSync(remote)).toEqual([]);
  });
});

describe('what kubedev up says about a pod that is not ready', () => {
  // The record of the environment above, as `up` reads it.
  const record = (): AttachRecord => readAttachRecord(renderDevEnvironment(spec()).find((o) => o.kind === 'StatefulSet')!, 'test');
  const flags = '--env dist/app.k8s.yaml --name api';

  test('a missing Secret or volume points at kubedev keys --apply', async () => {
    const s = podState(record(), pod({ reason: 'CreateContainerConfigError', message: 'secret "api-ssh-host-keys" not found' }) as never);
    expect(s.waiting).toBe("container 'sync' waiting: CreateContainerConfigError (secret \"api-ssh-host-keys\" not found)");
    expect(fixFor(record(), s, flags)).toBe(
      'A Secret, ConfigMap or volume it mounts may be missing; the key Secrets come from: kubedev keys --env dist/app.k8s.yaml --name api --apply. Details: kubectl describe pod -n team-web api-0',
    );
  });

  test('an unschedulable pod names the scheduler message', async () => {
    const unscheduled = {
      metadata: { name: 'api-0' },
      status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient memory.' }] },
    };
    const s = podState(record(), unscheduled as never);
    expect(s.waiting).toBe('not scheduled: Unschedulable (0/3 nodes are available: 3 Insufficient memory.)');
    expect(fixFor(record(), s, flags)).toBe('No node can take it (resources, node selector, tolerations or quota). Details: kubectl describe pod -n team-web api-0');
  });

  test('a crashing sidecar points at its previous logs; a crashing dev container does not block', async () => {
    const s = podState(record(), pod({ reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' }) as never);
    expect(s.sidecarReady).toBe(false);
    expect(fixFor(record(), s, flags)).toBe("The container keeps exiting; its last words: kubectl logs -n team-web api-0 -c sync --previous");
    const devCrashing = podState(record(), pod('ready', { reason: 'CrashLoopBackOff' }) as never);
    expect(devCrashing.sidecarReady).toBe(true);
    expect(devCrashing.dev).toBe('waiting: CrashLoopBackOff');
  });

  test('a record without a stable pod name finds the pod by its labels, skipping one being deleted', async () => {
    const { pod: _pod, ...rest } = record();
    const bySelector: AttachRecord = rest;
    const old = { metadata: { name: 'api-7f9-old', deletionTimestamp: '2026-01-01T00:00:00Z' }, status: { phase: 'Running' } };
    const current = { ...(pod('ready') as { status: unknown }), metadata: { name: 'api-7f9-new' } };
    fake.setWorld({ podList: [old, current] });
    const found = await fetchPod(bySelector, {});
    expect(found?.metadata?.name).toBe('api-7f9-new');
    expect(fake.calls().map((c) => c.args)).toEqual([['get', 'pods', '-n', 'team-web', '-l', 'kubedev.io/environment=api', '-o', 'json']]);
    expect(podState(bySelector, found).sidecarReady).toBe(true);
  });
});
