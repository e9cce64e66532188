/**
 * The dev process in the model: command, onSync hooks and reverse forwards — validation (exact
 * messages), rendering (the supervisor as entrypoint, hook scripts in the ConfigMap, the shared control
 * folder, sshd's reverse-forward lines) and the attach record (carried, and checked on read).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import {
  ATTACH_ANNOTATION, CONTROL_DIR, DevEnvironmentSpec, KubeObject, SUPERVISOR_SCRIPT, isInteractive, readAttachRecord, renderDevEnvironment,
  renderSshdConfig, validateDevEnvironment,
} from '../lib';
import { SSHD_BINARY } from './support/sshd';

const base: DevEnvironmentSpec = { name: 'web', namespace: 'team-web', owner: 'alice', image: 'node:20' };
const withProcess: DevEnvironmentSpec = {
  ...base,
  command: ['node', 'server.js'],
  onSync: [{ paths: ['package.json'], run: 'npm ci' }, { paths: ['*.js'], restart: true }],
  reverse: [{ remote: 9229, local: 9230, name: 'debug' }],
};

const kind = (objects: KubeObject[], k: string): any => objects.find((o) => o.kind === k);

describe('dev process: validation', () => {
  test('a valid process, hooks and reverse forward pass', () => {
    expect(validateDevEnvironment(withProcess)).toEqual([]);
  });

  test('every problem, in lib\'s message shape', () => {
    const spec = {
      ...base,
      command: ['node', ''],
      ports: [{ port: 3000 }],
      onSync: [
        { paths: [], run: 'npm ci' },
        { paths: ['a'], run: 'x', restart: true },
        { paths: ['a'], run: '  ' },
      ],
      reverse: [{ remote: 80 }, { remote: 3000, local: 70000 }, { remote: 2222 }],
    } as DevEnvironmentSpec;
    expect(validateDevEnvironment(spec)).toEqual([
      "DevEnvironment 'web': command holds an empty word or a NUL (got [\"node\",\"\"]). Give the program and its arguments as separate non-empty words, e.g. ['npm', 'run', 'dev'].",
      "DevEnvironment 'web': onSync #1 paths is not a non-empty list of one-line patterns (got []). Give gitignore-style patterns relative to the sync folder, e.g. ['package.json', 'package-lock.json'].",
      "DevEnvironment 'web': onSync #2 must have exactly one of run, restart (got {\"run\":\"x\",\"restart\":true}). Set run to a shell command (e.g. 'npm ci') or restart: true.",
      "DevEnvironment 'web': onSync #3 run is not a shell command (got '  '). Give the command as one string, e.g. 'npm ci'.",
      "DevEnvironment 'web': reverse forward 'reverse-80' remote port is outside 1024-65535 (got 80). Use an unprivileged port: the sidecar listens as a non-root user.",
      "DevEnvironment 'web': reverse forward 'reverse-3000' local port is outside 1-65535 (got 70000). Use the port your local service listens on.",
      "DevEnvironment 'web': reverse forward 'reverse-3000' remote port is already taken (the SSH port, a declared port or another reverse forward) (got 3000). Give it a port of its own.",
      "DevEnvironment 'web': reverse forward 'reverse-2222' remote port is already taken (the SSH port, a declared port or another reverse forward) (got 2222). Give it a port of its own.",
    ]);
  });

  test('restart needs a process', () => {
    expect(validateDevEnvironment({ ...base, onSync: [{ paths: ['*'], restart: true }] })).toEqual([
      "DevEnvironment 'web': onSync #1 restarts the dev process, but no command is declared (got true). Declare command (the dev process), or use run instead of restart.",
    ]);
  });

  test('wrong shapes are problems, not exceptions', () => {
    expect(validateDevEnvironment({ ...base, onSync: 'npm ci', reverse: [9229] } as unknown as DevEnvironmentSpec)).toEqual([
      "DevEnvironment 'web': onSync is not a list (got 'npm ci'). Give onSync as a list of objects, or leave it out.",
      "DevEnvironment 'web': reverse #1 is not an object (got 9229). Give each entry of reverse as an object.",
    ]);
  });

  test('no command or a bare shell is interactive', () => {
    expect(isInteractive(undefined)).toBe(true);
    expect(isInteractive(['bash'])).toBe(true);
    expect(isInteractive(['/bin/sh'])).toBe(true);
    expect(isInteractive(['sh', '-c', 'npm start'])).toBe(false);
    expect(isInteractive(['sh'], ['server.sh'])).toBe(false);
  });
});

describe('dev process: rendering', () => {
  const objects = renderDevEnvironment(withProcess);
  const sts = kind(objects, 'StatefulSet');
  const [dev, sync] = sts.spec.template.spec.containers;
  const cm = kind(objects, 'ConfigMap');

  test('the supervisor is the entrypoint and runs the command', () => {
    expect(dev.command).toEqual(['/bin/sh', '/etc/kubedev/supervisor/supervisor.sh']);
    expect(dev.args).toEqual(['node', 'server.js']);
    expect(cm.data['supervisor.sh']).toBe(SUPERVISOR_SCRIPT);
  });

  test('without a command the supervisor only waits (interactive)', () => {
    const [d] = kind(renderDevEnvironment(base), 'StatefulSet').spec.template.spec.containers;
    expect(d.command).toEqual(['/bin/sh', '/etc/kubedev/supervisor/supervisor.sh']);
    expect(d.args).toBeUndefined();
  });

  test('run hooks are scripts in the ConfigMap, mounted read-only beside the supervisor', () => {
    expect(cm.data['hook-0.sh']).toBe('npm ci\n');
    expect(cm.data['hook-1.sh']).toBeUndefined();
    const vol = sts.spec.template.spec.volumes.find((v: any) => v.name === 'kubedev-supervisor');
    expect(vol.configMap.items).toEqual([{ key: 'supervisor.sh', path: 'supervisor.sh' }, { key: 'hook-0.sh', path: 'hook-0.sh' }]);
    expect(dev.volumeMounts).toContainEqual({ name: 'kubedev-supervisor', mountPath: '/etc/kubedev/supervisor', readOnly: true });
  });

  test('both containers share the in-memory control folder; Pod Security stays restricted', () => {
    expect(dev.volumeMounts).toContainEqual({ name: 'kubedev-control', mountPath: CONTROL_DIR });
    expect(sync.volumeMounts).toContainEqual({ name: 'kubedev-control', mountPath: CONTROL_DIR });
    expect(sts.spec.template.spec.volumes).toContainEqual({ name: 'kubedev-control', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } });
    for (const c of [dev, sync]) {
      expect(c.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    }
  });

  test('sshd allows reverse forwards on the declared ports, on loopback only', () => {
    const text: string = cm.data.sshd_config;
    expect(text).toContain('AllowTcpForwarding remote\nGatewayPorts no\nPermitListen 9229\nPermitOpen none\n');
    expect(kind(renderDevEnvironment(base), 'ConfigMap').data.sshd_config).toContain('AllowTcpForwarding no\nPermitListen none\n');
  });

  test('`sshd -t` accepts the reverse-forward configuration', () => {
    const dir = fs.mkdtempSync('/tmp/kubedev-sshd-rev-');
    const key = `${dir}/host`;
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    fs.writeFileSync(`${dir}/sshd_config`, renderSshdConfig({ port: 2222, user: 'dev', hostKey: key, pidFile: `${dir}/pid`, reversePorts: [9229, 9230] }));
    expect(execFileSync(SSHD_BINARY, ['-t', '-f', `${dir}/sshd_config`], { encoding: 'utf8' })).toBe('');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('dev process: the attach record', () => {
  const sts = kind(renderDevEnvironment(withProcess), 'StatefulSet');
  const forge = (change: (r: any) => void): KubeObject => {
    const r = JSON.parse(sts.metadata.annotations[ATTACH_ANNOTATION]);
    change(r);
    return { ...sts, metadata: { ...sts.metadata, annotations: { [ATTACH_ANNOTATION]: JSON.stringify(r) } } };
  };
  const ID = "StatefulSet 'web' in x.yaml";

  test('carries the process, hooks and reverse forwards, and reads back', () => {
    const r = readAttachRecord(sts, 'x.yaml');
    expect(r.process).toEqual({ command: ['node', 'server.js'], control: CONTROL_DIR });
    expect(r.hooks).toEqual([{ paths: ['package.json'], run: 'npm ci' }, { paths: ['*.js'], restart: true }]);
    expect(r.reverse).toEqual([{ name: 'debug', remote: 9229, local: 9230 }]);
  });

  test('a record without them (an earlier kubedev) still reads', () => {
    expect(() => readAttachRecord(forge((r) => { delete r.process; delete r.hooks; delete r.reverse; }), 'x.yaml')).not.toThrow();
  });

  test('a forged control folder is refused', () => {
    expect(() => readAttachRecord(forge((r) => { r.process.control = '/home/dev/.ssh'; }), 'x.yaml')).toThrow(
      `${ID}: attach record field 'process.control' is not kubedev's control folder '/etc/kubedev/control' (got '/home/dev/.ssh'). Synthesize the file again with kubedev; never edit the record by hand.`,
    );
  });

  test('forged hooks and reverse forwards are checked as if written by the user', () => {
    expect(() => readAttachRecord(forge((r) => { r.hooks = [{ paths: ['a'], run: 'x', restart: true }]; r.reverse = [{ name: 'x', remote: 22, local: 22 }]; }), 'x.yaml')).toThrow(
      `${ID}: 2 problems in the attach record:\n`
      + "  - attach record field 'hooks[0]': onSync #1 must have exactly one of run, restart (got {\"run\":\"x\",\"restart\":true}). Set run to a shell command (e.g. 'npm ci') or restart: true.\n"
      + "  - attach record field 'reverse[0].remote': reverse forward 'x' remote port is outside 1024-65535 (got 22). Use an unprivileged port: the sidecar listens as a non-root user.",
    );
  });
});
