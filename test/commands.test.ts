/**
 * `kubedev exec`, `kubedev logs` and `kubedev down` as a user runs them (a child process), against the
 * fake kubectl: the calls they make, what they print, their exit codes, and every bad flag exiting 2
 * with the flag named.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { renderDevEnvironment } from '../lib/dev-environment';
import { devModeOf } from '../lib/dev-mode';
import { sessionFile } from '../sync/attach/leave';
import { startCli } from './support/cli';
import { FakeKubectl, makeFakeKubectl } from './support/fake-kubectl';
import { tempDir } from './support/trees';

let tmp: string;
let envFile: string;
let fake: FakeKubectl;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  tmp = tempDir('commands');
  envFile = path.join(tmp, 'app.k8s.yaml');
  const objects = renderDevEnvironment({ name: 'api', namespace: 'team-web', owner: 'alice', image: 'node:20', command: ['node', 'server.js'] });
  fs.writeFileSync(envFile, objects.map((o) => stringify(o)).join('---\n'));
  fake = makeFakeKubectl();
  env = { ...fake.env, XDG_CONFIG_HOME: path.join(tmp, 'config') };
});

afterEach(() => {
  fake.remove();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = startCli(args, { env });
  const code = await cli.exit(30_000);
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

const target = (): string[] => ['--env', envFile, '--name', 'api'];

describe('kubedev exec', () => {
  test("runs the command in the dev container and exits with the command's code", async () => {
    fake.setWorld({ exec: { local: true } });
    const r = await run(['exec', ...target(), '--', 'sh', '-c', 'echo hello; exit 3']);
    expect(r).toMatchObject({ code: 3, stdout: 'hello\n' });
    expect(fake.calls().map((c) => c.args)).toEqual([['exec', '-n', 'team-web', 'api-0', '-c', 'dev', '--', 'sh', '-c', 'echo hello; exit 3']]);
  });

  test('-i passes stdin', async () => {
    fake.setWorld({ exec: { stdout: 'ok\n' } });
    expect((await run(['exec', ...target(), '-i', '--', 'cat'])).code).toBe(0);
    expect(fake.calls()[0].args.slice(0, 2)).toEqual(['exec', '-i']);
  });

  test('bad usage exits 2 and names the flag or the fix', async () => {
    expect(await run(['exec', ...target()])).toMatchObject({ code: 2, stderr: 'kubedev: no command: give it after --, e.g. kubedev exec --name api -- npm test\n' });
    expect(await run(['exec', ...target(), '-it', '--', 'bash'])).toMatchObject({ code: 2, stderr: 'kubedev: -t (--tty) needs a terminal on stdin; leave -t out when piping or scripting\n' });
    const bogus = await run(['exec', ...target(), '--bogus', '--', 'ls']);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain("unknown option '--bogus'");
    const noName = await run(['exec', '--env', envFile, '--', 'ls']);
    expect(noName.code).toBe(2);
    expect(noName.stderr).toContain("required option '--name <name>' not specified");
    expect(fake.calls()).toEqual([]);
  });
});

describe('kubedev logs', () => {
  test("prints the dev container's log, the last --tail lines", async () => {
    const log = path.join(tmp, 'dev.log');
    fs.writeFileSync(log, 'a\n[kubedev] started 1\nlistening\n');
    fake.setWorld({ logsFile: log });
    expect(await run(['logs', ...target(), '--tail', '2'])).toMatchObject({ code: 0, stdout: '[kubedev] started 1\nlistening\n' });
    expect(fake.calls()[0].args).toEqual(['logs', '-n', 'team-web', 'api-0', '-c', 'dev', '--tail=2']);
  });

  test('-f follows until Ctrl-C', async () => {
    const log = path.join(tmp, 'dev.log');
    fs.writeFileSync(log, 'one\n');
    fake.setWorld({ logsFile: log });
    const cli = startCli(['logs', ...target(), '-f'], { env });
    const deadline = Date.now() + 20_000;
    while (!cli.stdout().includes('one\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    fs.appendFileSync(log, 'two\n');
    while (!cli.stdout().includes('two\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    cli.child.kill('SIGINT');
    expect(await cli.exit(10_000)).toBe(0);
    expect(cli.stdout()).toBe('one\ntwo\n');
  });

  test('no log yet: the cause and the fix; a bad --tail exits 2', async () => {
    fake.setWorld({});
    const r = await run(['logs', ...target()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('kubedev: cannot read the log of team-web/api-0 (Error from server (BadRequest): container "dev" in pod "api-0" is waiting to start: ContainerCreating). Check the pod runs: kubedev up --name api');
    const bad = await run(['logs', ...target(), '--tail', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("option '--tail <lines>' argument 'many' is invalid. 'many' is not a number of lines (-1 for all).");
  });
});

describe('kubedev down', () => {
  test('ends the running up, stops the dev process, leaves the volumes', async () => {
    // A stand-in for a running `kubedev up`: a process that exits on SIGTERM, recorded in the session file.
    const up = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const file = sessionFile('team-web', 'api', env);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${up.pid}\n`);
    const exited = new Promise((r) => up.once('exit', r));
    fake.setWorld({ exec: {} });
    const r = await run(['down', ...target()]);
    expect(r.code).toBe(0);
    await exited;
    expect(r.stderr).toBe(`kubedev: stopped kubedev up (pid ${up.pid})\nkubedev: stopped the dev process\n`);
    expect(fs.existsSync(file)).toBe(false);
    expect(fake.calls().map((c) => c.args)).toEqual([
      ['exec', '-n', 'team-web', 'api-0', '-c', 'dev', '--', 'sh', '-c', "test -p /etc/kubedev/control/control || exit 3; printf 'stop\\n' > /etc/kubedev/control/control"],
    ]);
  });

  test('nothing running: says so, exits 0', async () => {
    fake.setWorld({ exec: { code: 3 } });
    expect(await run(['down', ...target()])).toMatchObject({
      code: 0, stderr: 'kubedev: no kubedev up was running for team-web/api\nkubedev: no dev process was running (no pod, or no supervisor)\n',
    });
  });

  test('--volumes --yes scales to 0 and deletes the PVCs by label', async () => {
    fake.setWorld({ exec: {} });
    const r = await run(['down', ...target(), '--volumes', '--yes']);
    expect(r.code).toBe(0);
    expect(fake.calls().map((c) => c.args).slice(1)).toEqual([
      ['scale', 'statefulset/api', '-n', 'team-web', '--replicas=0'],
      ['delete', 'pvc', '-n', 'team-web', '-l', 'kubedev.io/environment=api', '--wait=false'],
    ]);
  });

  test('--volumes without a terminal or --yes, and --yes alone, exit 2 before any call', async () => {
    expect(await run(['down', ...target(), '--volumes'])).toMatchObject({
      code: 2, stderr: 'kubedev: --volumes deletes the workspace and caches; with no terminal to ask on, confirm with --yes\n',
    });
    expect(await run(['down', ...target(), '--yes'])).toMatchObject({ code: 2, stderr: 'kubedev: --yes only confirms --volumes; pass both, or neither\n' });
    expect(fake.calls()).toEqual([]);
  });
});

describe('kubedev down: a replace-mode twin', () => {
  test('the original is released (its count restored from kubedev.io/replicas) after the dev process stops', async () => {
    const original = {
      apiVersion: 'apps/v1', kind: 'Deployment',
      metadata: { name: 'shop', namespace: 'team-web', resourceVersion: '7', annotations: { 'kubedev.io/replicas': '3', 'kubedev.io/held-by': 'shop-dev' } },
      spec: {
        replicas: 0, selector: { matchLabels: { app: 'shop' } },
        template: { metadata: { labels: { app: 'shop' } }, spec: { containers: [{ name: 'shop', image: 'shop:1' }] } },
      },
    };
    const twin = renderDevEnvironment(devModeOf(original, { owner: 'alice', image: 'node:20', mode: 'replace', scaleOriginal: 'up' }));
    fs.writeFileSync(envFile, twin.map((o) => stringify(o)).join('---\n'));
    fake.setWorld({
      exec: {},
      deployments: { 'team-web/shop': original },
      statefulsets: { 'team-web/shop-dev': { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'shop-dev', namespace: 'team-web', resourceVersion: '1' }, spec: { replicas: 1 } } },
    });
    const r = await run(['down', '--env', envFile, '--name', 'shop-dev']);
    expect(r.code).toBe(0);
    const verbs = fake.calls().map((c) => `${c.args[0]} ${c.args[1]}`);
    expect(verbs[0]).toBe('exec -n');
    expect(verbs.slice(1)).toEqual(expect.arrayContaining(['get deployment']));
    const w = JSON.parse(fs.readFileSync(fake.worldFile, 'utf8')) as { deployments: Record<string, { spec: { replicas: number } }> };
    expect(w.deployments['team-web/shop'].spec.replicas).toBe(3);
  });
});
