/**
 * A stand-in `kubectl` for tests of `kubedev keys` and `kubedev up` (there is no cluster here). It is a
 * real executable put first on PATH; it answers the few calls kubedev makes from a JSON "world" file
 * and logs every call. `port-forward` is real: it listens on 127.0.0.1 and relays each connection to
 * a real local server (the sshd harness), the way kubectl relays to the pod.
 *
 * World (JSON, rewritten by tests between calls if they like):
 *   workloads: KubeObject[]                       answered to `get statefulsets.apps,deployments.apps -l`
 *   pods: { "<ns>/<name>": Pod[] }                successive `get pod` calls walk the list, then stay on the last
 *   secrets: string[]                             "<ns>/<name>" that exist (`get secret`)
 *   forward: { "<remote port>": <local target port> }   where port-forward relays to
 *   forwardError?: string                         port-forward prints this on stderr and exits 1
 *   failAll?: string                              every call prints this on stderr and exits 1
 *   podList: Pod[]                                answered to `get pods -l` (items)
 *   secretsForbidden?: boolean                    `get secret` answers Forbidden
 *   deployments, statefulsets: { "<ns>/<name>": object }   `get deployment|statefulset NAME -o json`;
 *                                                 `patch deployment|statefulset NAME --type json -p OPS` applies OPS
 *                                                 (add, replace, remove, test) and writes the result back
 *                                                 `scale deployment|statefulset NAME --replicas=N` sets spec.replicas
 *   forbidden?: string[]                         '<verb> <kind>' calls that answer Forbidden ('patch deployment')
 *   patchConflicts?: number                      the first N patches fail as if the object changed meanwhile
 *   logsFile?: string                             `logs` prints this file (`--tail=N` lines of it); with -f follows it until killed
 *   exec?: { local?: boolean; stdout?: string; code?: number }   `exec ... -- CMD`: runs CMD here (local) or prints stdout, exits code
 *   missing?: string[]                            "<kind>/<name>" that `scale`/`delete` answer NotFound for
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface FakeWorld {
  workloads?: unknown[];
  pods?: Record<string, unknown[]>;
  secrets?: string[];
  forward?: Record<string, number>;
  forwardError?: string;
  failAll?: string;
  /** Answered to `get pods -l` (pods found by label, for records without a stable pod name). */
  podList?: unknown[];
  /** `get secret` answers Forbidden (a role without read access to Secrets). */
  secretsForbidden?: boolean;
  /** Deployments by "<ns>/<name>", read and patched (take-over and release). */
  deployments?: Record<string, unknown>;
  /** StatefulSets by "<ns>/<name>", likewise. */
  statefulsets?: Record<string, unknown>;
  /** '<verb> <kind>' calls that answer Forbidden, e.g. 'patch deployment'. */
  forbidden?: string[];
  /** The first N patches fail with a failed test operation (the object changed meanwhile). */
  patchConflicts?: number;
  logsFile?: string;
  exec?: { local?: boolean; stdout?: string; code?: number };
  missing?: string[];
}

export interface FakeKubectl {
  /** Folder to put first on PATH. */
  readonly bin: string;
  readonly worldFile: string;
  readonly logFile: string;
  /** Environment for a child or for process.env: PATH, KUBECONFIG (an empty file) and the fake's files. */
  readonly env: NodeJS.ProcessEnv;
  setWorld(world: FakeWorld): void;
  /** Every call so far: its arguments and what it read on stdin. */
  calls(): { args: string[]; stdin: string }[];
  remove(): void;
}

const SCRIPT = String.raw`#!/usr/bin/env node
'use strict';
const fs = require('fs');
const net = require('net');
const args = process.argv.slice(2);
const worldFile = process.env.FAKE_KUBECTL_WORLD;
const logFile = process.env.FAKE_KUBECTL_LOG;
const world = () => JSON.parse(fs.readFileSync(worldFile, 'utf8'));
const flag = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const fail = (msg) => { process.stderr.write(msg + '\n'); process.exit(1); };

let stdin = '';
const readStdin = () => new Promise((res) => {
  if (args[0] !== 'apply') return res('');
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => (stdin += d));
  process.stdin.on('end', () => res(stdin));
});

(async () => {
  await readStdin();
  fs.appendFileSync(logFile, JSON.stringify({ args, stdin }) + '\n');
  const w = world();
  if (w.failAll) fail(w.failAll);
  const ns = flag('-n') || 'default';
  const verb = args[0];
  if (verb === 'get' && args[1] === 'statefulsets.apps,deployments.apps') {
    const sel = flag('-l') || '';
    const [k, v] = sel.split('=');
    const items = (w.workloads || []).filter((o) => o.metadata.namespace === ns && o.metadata.labels && o.metadata.labels[k] === v);
    process.stdout.write(JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    return;
  }
  if (verb === 'get' && args[1] === 'pod') {
    const key = ns + '/' + args[2];
    const list = (w.pods || {})[key];
    if (!list || list.length === 0) fail('Error from server (NotFound): pods "' + args[2] + '" not found');
    const countFile = worldFile + '.' + key.replace('/', '_') + '.n';
    const n = fs.existsSync(countFile) ? Number(fs.readFileSync(countFile, 'utf8')) : 0;
    fs.writeFileSync(countFile, String(n + 1));
    process.stdout.write(JSON.stringify(list[Math.min(n, list.length - 1)]));
    return;
  }
  if (verb === 'get' && args[1] === 'pods') {
    process.stdout.write(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: w.podList || [] }));
    return;
  }
  if (verb === 'get' && args[1] === 'secret') {
    if (w.secretsForbidden) fail('Error from server (Forbidden): secrets "' + args[2] + '" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "' + ns + '"');
    const names = [];
    for (let i = 2; i < args.length; i++) {
      if (args[i].startsWith('-')) i++; // a flag and its value
      else names.push(args[i]);
    }
    const missing = names.filter((a) => !(w.secrets || []).includes(ns + '/' + a));
    if (missing.length > 0) fail('Error from server (NotFound): secrets "' + missing[0] + '" not found');
    process.stdout.write(names.map((a) => 'secret/' + a).join('\n') + '\n');
    return;
  }
  if (verb === 'apply') {
    const names = [...stdin.matchAll(/^kind: (\w+)\nmetadata:\n  name: ([\w.-]+)/gm)].map((m) => m[1].toLowerCase() + '/' + m[2] + ' created');
    process.stdout.write(names.join('\n') + '\n');
    return;
  }
  if (verb === 'port-forward') {
    if (w.forwardError) fail(w.forwardError);
    const maps = args.slice(1).filter((a) => /^\d*:\d+$/.test(a));
    const servers = [];
    for (const m of maps) {
      const [local, remote] = m.split(':');
      const target = (w.forward || {})[remote];
      const srv = net.createServer((c) => {
        const up = net.connect(target, '127.0.0.1');
        c.pipe(up); up.pipe(c);
        const end = () => { c.destroy(); up.destroy(); };
        c.on('error', end); up.on('error', end); c.on('close', end); up.on('close', end);
      });
      await new Promise((res, rej) => { srv.once('error', rej); srv.listen(Number(local || 0), '127.0.0.1', res); })
        .catch(() => fail('Unable to listen on port ' + local + ': Listeners failed to create with the following errors: [unable to create listener: Error listen tcp4 127.0.0.1:' + local + ': bind: address already in use]\nerror: unable to listen on any of the requested ports: [{' + local + ' ' + remote + '}]'));
      servers.push(srv);
      process.stdout.write('Forwarding from 127.0.0.1:' + srv.address().port + ' -> ' + remote + '\n');
    }
    const stop = () => { for (const s of servers) s.close(); process.exit(0); };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    setInterval(() => undefined, 1 << 30);
    return;
  }
  if ((verb === 'get' || verb === 'patch') && (args[1] === 'deployment' || args[1] === 'statefulset')) {
    const key = ns + '/' + args[2];
    const plural = args[1] + 's';
    if ((w.forbidden || []).includes(verb + ' ' + args[1])) fail('Error from server (Forbidden): ' + plural + '.apps "' + args[2] + '" is forbidden: User "alice" cannot ' + verb + ' resource "' + plural + '" in API group "apps" in the namespace "' + ns + '"');
    const found = (w[plural] || {})[key];
    if (!found) fail('Error from server (NotFound): ' + plural + '.apps "' + args[2] + '" not found');
    if (verb === 'get') { process.stdout.write(JSON.stringify(found)); return; }
    if (flag('--type') !== 'json') fail('fake kubectl: only --type=json patches');
    if (w.patchConflicts > 0) {
      w.patchConflicts -= 1;
      fs.writeFileSync(worldFile, JSON.stringify(w));
      fail('The request is invalid: the server rejected our request due to an error in our request');
    }
    const doc = JSON.parse(JSON.stringify(found));
    const walk = (path) => {
      const parts = path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
      let at = doc;
      for (const p of parts.slice(0, -1)) { if (at[p] === undefined) fail('The request is invalid: missing path ' + path); at = at[p]; }
      return [at, parts[parts.length - 1]];
    };
    for (const op of JSON.parse(flag('-p'))) {
      const [at, last] = walk(op.path);
      if (op.op === 'test' && JSON.stringify(at[last]) !== JSON.stringify(op.value)) fail('The request is invalid: the server rejected our request due to an error in our request');
      if (op.op === 'add' || op.op === 'replace') at[last] = op.value;
      if (op.op === 'remove') { if (!(last in at)) fail('The request is invalid: missing path ' + op.path); delete at[last]; }
    }
    doc.metadata.resourceVersion = String(Number(doc.metadata.resourceVersion || '1') + 1);
    w[plural][key] = doc;
    fs.writeFileSync(worldFile, JSON.stringify(w));
    process.stdout.write(args[1] + '.apps/' + args[2] + ' patched\n');
    return;
  }
  if (verb === 'scale' && (args[1] === 'deployment' || args[1] === 'statefulset')) {
    const plural = args[1] + 's';
    if ((w.forbidden || []).includes('scale ' + args[1])) fail('Error from server (Forbidden): ' + plural + '.apps "' + args[2] + '" is forbidden: User "alice" cannot patch resource "' + plural + '/scale" in API group "apps" in the namespace "' + ns + '"');
    const found = (w[plural] || {})[ns + '/' + args[2]];
    if (!found) fail('Error from server (NotFound): ' + plural + '.apps "' + args[2] + '" not found');
    found.spec = { ...found.spec, replicas: Number((args.find((a) => a.startsWith('--replicas=')) || '').slice(11)) };
    fs.writeFileSync(worldFile, JSON.stringify(w));
    process.stdout.write(args[1] + '.apps/' + args[2] + ' scaled\n');
    return;
  }
  if (verb === 'logs') {
    const tail = Number((args.find((a) => a.startsWith('--tail=')) || '--tail=-1').slice(7));
    const file = w.logsFile;
    if (!file || !fs.existsSync(file)) fail('Error from server (BadRequest): container "dev" in pod "' + args[3] + '" is waiting to start: ContainerCreating');
    let text = fs.readFileSync(file, 'utf8');
    if (tail >= 0) text = tail === 0 ? '' : text.split('\n').slice(-tail - 1).join('\n');
    process.stdout.write(text);
    if (!args.includes('-f')) return;
    let at = fs.statSync(file).size;
    setInterval(() => {
      const size = fs.statSync(file).size;
      if (size <= at) return;
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(size - at);
      fs.readSync(fd, buf, 0, buf.length, at);
      fs.closeSync(fd);
      at = size;
      process.stdout.write(buf);
    }, 20);
    process.on('SIGTERM', () => process.exit(0));
    return;
  }
  if (verb === 'exec') {
    const cmd = args.slice(args.indexOf('--') + 1);
    const e = w.exec || {};
    if (e.local) {
      const r = require('child_process').spawnSync(cmd[0], cmd.slice(1), { stdio: 'inherit' });
      process.exit(r.status === null ? 1 : r.status);
    }
    process.stdout.write(e.stdout || '');
    process.exit(e.code || 0);
  }
  if (verb === 'scale' || verb === 'delete') {
    const names = args.slice(1).filter((a) => /^[a-z.]+\/[a-z0-9.-]+$/.test(a));
    const gone = names.find((n) => (w.missing || []).includes(n));
    if (gone) fail('Error from server (NotFound): ' + gone.split('/')[0] + ' "' + gone.split('/')[1] + '" not found');
    process.stdout.write(names.map((n) => n + (verb === 'scale' ? ' scaled' : ' deleted')).join('\n') + '\n');
    return;
  }
  fail('fake kubectl: no answer for: kubectl ' + args.join(' '));
})();
`;

/** Writes the fake into a new temporary folder. */
export function makeFakeKubectl(world: FakeWorld = {}): FakeKubectl {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubedev-fake-kubectl-'));
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'kubectl'), SCRIPT, { mode: 0o755 });
  const worldFile = path.join(dir, 'world.json');
  const logFile = path.join(dir, 'calls.jsonl');
  const kubeconfig = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\n');
  fs.writeFileSync(logFile, '');
  const setWorld = (w: FakeWorld): void => {
    for (const f of fs.readdirSync(dir)) if (f.endsWith('.n')) fs.rmSync(path.join(dir, f));
    fs.writeFileSync(worldFile, JSON.stringify(w));
  };
  setWorld(world);
  return {
    bin,
    worldFile,
    logFile,
    env: {
      PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`,
      KUBECONFIG: kubeconfig,
      FAKE_KUBECTL_WORLD: worldFile,
      FAKE_KUBECTL_LOG: logFile,
    },
    setWorld,
    calls: () => fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { args: string[]; stdin: string }),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
