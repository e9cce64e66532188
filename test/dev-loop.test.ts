/**
 * The inner loop of `kubedev up` end to end without a cluster: the fake kubectl, the real sshd as the
 * sidecar, and lib's real supervisor (dash) as the dev container's entrypoint. The runner starts the
 * process after the first mirror, streams its output, asks for the onSync steps of each batch over
 * SSH, and reports hooks and crashes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DevEnvironmentSpec } from '../lib/dev-environment';
import { FakeDevContainer, startSupervisor } from './support/supervisor';
import { SSH_PORT, cleanups, fake, pod, project, remote, spec, startSidecar, startUp, tmp, world, writeEnv } from './support/up-harness';

/** Retries an assertion until it holds; fails with its last message after `ms`. */
async function until(check: () => void, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      check();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The process: prints the served version, then waits; exits 3 when told to crash (a file in the control folder). */
const SERVER = 'echo "serving $(cat version.txt)"; while [ ! -e "$KUBEDEV_CONTROL/crash" ]; do sleep 0.05; done; rm -f "$KUBEDEV_CONTROL/crash"; exit 3';

async function setUp(extra: Partial<DevEnvironmentSpec>): Promise<{ dev: FakeDevContainer; up: ReturnType<typeof startUp> }> {
  const s = spec({ command: ['sh', '-c', SERVER], ...extra });
  writeEnv(s);
  const sshd = await startSidecar();
  fs.writeFileSync(path.join(project, 'src', 'version.txt'), '1\n');
  const dev = startSupervisor(s, path.join(tmp, 'pod'), sshd, remote);
  cleanups.push(() => dev.stop());
  world({ pods: { 'team-web/api-0': [pod('ready')] }, forward: { [SSH_PORT]: sshd.port }, logsFile: dev.logFile });
  const up = startUp({ controlDir: dev.control });
  return { dev, up };
}

const outputs = (events: Record<string, unknown>[]): unknown[] => events.filter((e) => e.event === 'output').map((e) => e.line);
const processEvents = (events: Record<string, unknown>[], kind: string): Record<string, unknown>[] => events.filter((e) => e.event === 'process' && e.kind === kind);

describe('kubedev up: the dev process', () => {
  test('starts after the first mirror, streams output, runs the package.json hook once, restarts on a change, survives a crash', async () => {
    const { dev, up } = await setUp({
      onSync: [
        { paths: ['package.json', 'package-lock.json'], run: 'echo installing; echo ran >> "$KUBEDEV_CONTROL/installs"' },
        { paths: ['*.txt'], restart: true },
      ],
    });
    await up.waitFor('ready', 30_000);
    // The workspace was empty when the supervisor started: it waited, and up's start after the first
    // mirror is the first one, so the process never crashed on missing files.
    await until(() => expect(outputs(up.events)).toContain('serving 1'), 15_000);
    expect(dev.log()).toContain(`[kubedev] waiting for the first mirror: ${remote} is empty`);
    expect(dev.log()).not.toContain('[kubedev] crashed');
    // The supervisor writes its 'started' line after the fork: the process's first output may come first (seen in CI).
    await until(() => expect(dev.log().match(/\[kubedev\] started \d+/g)).toEqual(['[kubedev] started 1']), 5_000);

    fs.writeFileSync(path.join(project, 'src', 'package.json'), '{}\n');
    await until(() => expect(up.events.filter((e) => e.event === 'process' && e.kind === 'hook' && e.step === 'run:0' && e.state === 'ok')).toHaveLength(1), 15_000);
    expect(outputs(up.events)).toContain('installing');

    fs.writeFileSync(path.join(project, 'src', 'version.txt'), '2\n');
    await until(() => expect(outputs(up.events)).toContain('serving 2'), 15_000);
    // package.json did not change again: its hook ran exactly once.
    expect(fs.readFileSync(path.join(dev.control, 'installs'), 'utf8')).toBe('ran\n');

    // A crash is reported and the process restarted (after 1 s).
    const started = processEvents(up.events, 'started').length;
    fs.writeFileSync(path.join(dev.control, 'crash'), '');
    await until(() => expect(processEvents(up.events, 'crashed')).toHaveLength(1), 10_000);
    expect(processEvents(up.events, 'crashed')[0]).toMatchObject({ code: 3, retryInSeconds: 1 });
    await until(() => expect(processEvents(up.events, 'started').length).toBe(started + 1), 10_000);
    expect(up.stderr()).toContain('dev process crashed (exit code 3); restarting in 1 s');

    await up.stop();
    await dev.stop();
    expect(dev.log()).toMatch(/\[kubedev\] stopped \d+\n$/);
  }, 60_000);

  test('a failing hook is reported with its output and the mirror goes on', async () => {
    const { up } = await setUp({ onSync: [{ paths: ['*.json'], run: 'echo broken lockfile; exit 4' }] });
    await up.waitFor('ready', 30_000);
    fs.writeFileSync(path.join(project, 'src', 'a.json'), '{}\n');
    await until(() => expect(up.stderr()).toContain("onSync #1 (echo broken lockfile; exit 4) failed with exit code 4; the mirror goes on. Its output is above and kept in /etc/kubedev/control/hook-0.log"), 15_000);
    expect(outputs(up.events)).toContain('broken lockfile');
    fs.writeFileSync(path.join(project, 'src', 'b.txt'), 'still mirrored\n');
    await until(() => expect(fs.readFileSync(path.join(remote, 'b.txt'), 'utf8')).toBe('still mirrored\n'), 15_000);
  }, 60_000);

  test('no process declared and a terminal: up opens a shell in the dev container and ends with its exit code', async () => {
    writeEnv(spec());
    const sshd = await startSidecar();
    world({ pods: { 'team-web/api-0': [pod('ready')] }, forward: { [SSH_PORT]: sshd.port }, exec: { code: 7 } });
    const up = startUp({ shell: true });
    expect(await up.done).toBe(7);
    expect(up.stderr()).toContain('no dev process declared: opening a shell in the dev container (exit it to stop kubedev up)');
    expect(fake.calls().find((c) => c.args[0] === 'exec')?.args).toEqual([
      'exec', '-i', '-t', '-n', 'team-web', 'api-0', '-c', 'dev', '--', 'sh', '-c', 'command -v bash >/dev/null 2>&1 && exec bash || exec sh',
    ]);
  }, 60_000);

  test('a pod without the supervisor: the hook request names the cause and the fix, and the mirror goes on', async () => {
    const s = spec({ command: ['node', 'server.js'], onSync: [{ paths: ['*.js'], restart: true }] });
    writeEnv(s);
    const sshd = await startSidecar();
    const control = path.join(tmp, 'no-supervisor');
    fs.mkdirSync(control);
    world({ pods: { 'team-web/api-0': [pod('ready')] }, forward: { [SSH_PORT]: sshd.port } });
    const up = startUp({ controlDir: control });
    await up.waitFor('ready', 30_000);
    await until(() => expect(up.stderr()).toContain(`onSync: the dev container runs no kubedev supervisor (no control FIFO in ${control}). Apply the environment as this kubedev synthesizes it, then run kubedev up again`), 15_000);
    fs.writeFileSync(path.join(project, 'src', 'x.js'), '1\n');
    await until(() => expect(fs.existsSync(path.join(remote, 'x.js'))).toBe(true), 15_000);
  }, 60_000);
});
