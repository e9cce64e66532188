/**
 * A `kubectl` for the e2e suite that answers from podman, so `kubedev up` can run against the real pod:
 * the few calls `up` makes are mapped onto podman (there is no Kubernetes API here, only a pod runtime).
 *   get secret A B -n NS -o name     the Secret exists if podman holds the volume played for it
 *   get pod NAME -n NS -o json       podman pod inspect + inspect of its containers, as Pod status
 *   port-forward ... pod/NAME L:R    a relay from 127.0.0.1:L to 127.0.0.1:R (the pod is on the host network)
 *   logs -n NS POD -c C [--tail=N] [-f]   podman logs of the container <POD>-<C>
 *   exec [-i] -n NS POD -c C -- CMD...    podman exec [-i] <POD>-<C> CMD...
 * Anything else fails loudly. Every call is logged to $KUBECTL_PODMAN_LOG.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SCRIPT = String.raw`#!/usr/bin/env node
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const args = process.argv.slice(2);
fs.appendFileSync(process.env.KUBECTL_PODMAN_LOG, JSON.stringify(args) + '\n');
const flag = (n) => { const i = args.indexOf(n); return i >= 0 ? args[i + 1] : undefined; };
const fail = (m) => { process.stderr.write(m + '\n'); process.exit(1); };
const podman = (a) => execFileSync('podman', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const positional = () => { const out = []; for (let i = 2; i < args.length; i++) { if (args[i].startsWith('-')) i++; else out.push(args[i]); } return out; };

if (args[0] === 'get' && args[1] === 'secret') {
  const names = positional();
  for (const n of names) {
    try { podman(['volume', 'exists', n]); } catch { fail('Error from server (NotFound): secrets "' + n + '" not found'); }
  }
  process.stdout.write(names.map((n) => 'secret/' + n).join('\n') + '\n');
} else if (args[0] === 'get' && args[1] === 'pod') {
  const name = args[2];
  let pod;
  try { pod = JSON.parse(podman(['pod', 'inspect', name])); } catch { fail('Error from server (NotFound): pods "' + name + '" not found'); }
  const ids = (pod.Containers || []).filter((c) => c.Id !== pod.InfraContainerID).map((c) => c.Id);
  const ctrs = ids.length ? JSON.parse(podman(['inspect', ...ids])) : [];
  const statuses = ctrs.map((c) => ({
    name: c.Name.startsWith(name + '-') ? c.Name.slice(name.length + 1) : c.Name,
    ready: c.State.Running === true,
    restartCount: c.RestartCount || 0,
    state: c.State.Running ? { running: { startedAt: c.State.StartedAt } } : c.State.Status === 'exited' ? { terminated: { reason: 'Error', exitCode: c.State.ExitCode } } : { waiting: { reason: 'ContainerCreating' } },
  }));
  const running = pod.State === 'Running' && statuses.every((s) => s.ready);
  process.stdout.write(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: flag('-n') }, status: { phase: running ? 'Running' : 'Pending', containerStatuses: statuses } }));
} else if (args[0] === 'port-forward') {
  const maps = args.slice(1).filter((a) => /^\d*:\d+$/.test(a));
  (async () => {
    const servers = [];
    for (const m of maps) {
      const [local, remote] = m.split(':');
      const srv = net.createServer((c) => {
        const up = net.connect(Number(remote), '127.0.0.1');
        c.pipe(up); up.pipe(c);
        const end = () => { c.destroy(); up.destroy(); };
        c.on('error', end); up.on('error', end); c.on('close', end); up.on('close', end);
      });
      await new Promise((res, rej) => { srv.once('error', rej); srv.listen(Number(local || 0), '127.0.0.1', res); })
        .catch(() => fail('error: unable to listen on any of the requested ports: [{' + local + ' ' + remote + '}]'));
      servers.push(srv);
      process.stdout.write('Forwarding from 127.0.0.1:' + srv.address().port + ' -> ' + remote + '\n');
    }
    const stop = () => { for (const s of servers) s.close(); process.exit(0); };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    setInterval(() => undefined, 1 << 30);
  })();
} else if (args[0] === 'logs' || args[0] === 'exec') {
  const pod = args[args.indexOf('-n') + 2];
  const ctr = pod + '-' + flag('-c');
  const dashdash = args.indexOf('--');
  const a = args[0] === 'logs'
    ? ['logs', ...(args.includes('-f') ? ['-f'] : []), ...args.filter((x) => x.startsWith('--tail=')), ctr]
    : ['exec', ...(args.slice(1, dashdash).includes('-i') ? ['-i'] : []), ctr, ...args.slice(dashdash + 1)];
  const child = require('child_process').spawn('podman', a, { stdio: 'inherit' });
  process.on('SIGTERM', () => { child.kill('SIGTERM'); });
  child.on('exit', (code) => process.exit(code === null ? 1 : code));
} else {
  fail('kubectl (podman stand-in): no answer for: kubectl ' + args.join(' '));
}
`;

export interface KubectlPodman {
  /** Environment for `kubedev up`: PATH with this kubectl first, an (empty) KUBECONFIG, the log. */
  readonly env: NodeJS.ProcessEnv;
  calls(): string[][];
  remove(): void;
}

export function makeKubectlPodman(): KubectlPodman {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-kubectl-podman-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.writeFileSync(path.join(dir, 'bin', 'kubectl'), SCRIPT, { mode: 0o755 });
  const log = path.join(dir, 'calls.jsonl');
  fs.writeFileSync(log, '');
  const kubeconfig = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\n');
  return {
    env: { PATH: `${path.join(dir, 'bin')}${path.delimiter}${process.env.PATH ?? ''}`, KUBECONFIG: kubeconfig, KUBECTL_PODMAN_LOG: log },
    calls: () => fs.readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as string[]),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
