/**
 * The agent (sync/agent/): `kubedev sync --once` as users run it (bin/kubedev.js, compiled build/),
 * against a real sshd. The first run happens in its own process and leaves an agent; later runs are
 * served by it over the connection it keeps (sshd logs no new login), with the same output and exit
 * codes; anything unusual sends the run back into its own process, never loses it.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { agentPids, agentReady, BIN, flags, folders, logins, run, runtime, sockets, stopAgents, synced, until, useAgentSshd, withAgent } from './support/agent';
import { differences, snapshot, tempDir, writeTree } from './support/trees';

const suite = useAgentSshd();

test('the first run leaves an agent; later runs go through it, over its connection, with the same output', async () => {
  const { dir, env } = runtime();
  const { local, remote } = folders();
  writeTree(local, { 'a.txt': 'one', 'src/b.ts': 'export const b = 1;\n' });
  const before = logins();
  const first = await run(flags(local, remote), env);
  expect(first.code).toBe(0);
  expect(synced(first.stdout).files).toBe(3); // a.txt, src, src/b.ts
  expect(logins()).toBe(before + 1);
  await agentReady(dir, before + 1); // the agent logged in once, ahead of the next run
  expect(agentPids(dir)).toHaveLength(1);

  fs.writeFileSync(path.join(local, 'a.txt'), 'two, longer');
  const second = await run(flags(local, remote), env);
  expect(second.code).toBe(0);
  expect(synced(second.stdout).files).toBe(1);
  expect(second.stderr).toMatch(/^kubedev: mirrored .* 1 sent, 0 deleted/m);
  expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
  const third = await run(flags(local, remote), env);
  expect(third.code).toBe(0);
  expect(synced(third.stdout).files).toBe(0);
  expect(logins()).toBe(before + 2); // the first run and the agent's warm-up: the next runs did not log in
});

test("the agent holds none of the descriptors its starter inherited: a wrapper waiting for one is not hung", async () => {
  // A CI step, a test runner or a make jobserver hands `kubedev` descriptors beyond 0-2 (node marks
  // only its lowest close-on-exec at start); node passes the others on to children. The agent
  // outlives the run: had it kept one, the wrapper waiting for that pipe's end would wait 60 s.
  const { dir, env } = runtime();
  const { local, remote } = folders();
  writeTree(local, { 'a.txt': 'x' });
  const before = logins();
  const child = spawn('bash', ['-c', 'exec 50>&3 3>&-; exec "$0" "$@"', process.execPath, BIN, ...flags(local, remote)], { env, stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const ended = new Promise<string>((resolve) => (child.stdio[3] as Readable).on('data', () => undefined).once('close', () => resolve('ended')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  expect(code).toBe(0);
  const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('still open 10 s after the run'), 10_000).unref());
  expect(await Promise.race([ended, timeout])).toBe('ended');
  await agentReady(dir, before + 1);
  expect(agentPids(dir)).toHaveLength(1); // the agent lives on without it
});

test('usage errors come back through the agent: exit 2, the flag named, no stack trace', async () => {
  const { dir, env } = runtime();
  const { local, remote } = folders();
  const before = logins();
  expect((await run(flags(local, remote), env)).code).toBe(0);
  await agentReady(dir, before + 1);
  const r = await run(flags(local, remote, { port: 'ssh' }), env);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("kubedev: --port must be a TCP port number from 1 to 65535 (got 'ssh')");
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stdout).toBe('');
  const missing = await run(flags('/nonexistent/kubedev', remote), env);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain("--local '/nonexistent/kubedev' is not an existing folder");
  expect(agentPids(dir)).toHaveLength(1); // one agent served all of them
});

test('another key or known_hosts text never rides on a kept connection', async () => {
  const { env, local, remote, before } = await withAgent({ 'a.txt': 'x' });
  const kh = path.join(tempDir('agent-kh'), 'known_hosts');
  suite.dirs.push(path.dirname(kh));
  fs.writeFileSync(kh, `# another file, the same key\n${fs.readFileSync(suite.sshd().knownHosts, 'utf8')}`);
  const r = await run(flags(local, remote, { 'known-hosts': kh }), env);
  expect(r.code).toBe(0);
  expect(logins()).toBe(before + 3); // the first run, the agent's warm-up, and a new login for the other text
  // A known_hosts that no longer names the server: refused, not served by the old connection.
  fs.writeFileSync(kh, '# emptied\n');
  const refused = await run(flags(local, remote, { 'known-hosts': kh }), env);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/host key|known_hosts/i);
});

test('a runtime folder others can enter, or KUBEDEV_AGENT=off: the run happens in-process, no agent is left', async () => {
  const open = runtime();
  fs.mkdirSync(path.join(open.dir, 'kubedev'), { mode: 0o755 });
  fs.chmodSync(path.join(open.dir, 'kubedev'), 0o755);
  const off = runtime({ KUBEDEV_AGENT: 'off' });
  const ci = runtime({ KUBEDEV_AGENT: undefined, CI: 'true' });
  for (const r of [open, off, ci]) {
    const { local, remote } = folders();
    writeTree(local, { 'a.txt': 'x' });
    const res = await run(flags(local, remote), r.env);
    expect(res.code).toBe(0);
    expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
  }
  await new Promise((r) => setTimeout(r, 1500));
  for (const r of [open, off, ci]) {
    expect(sockets(r.dir)).toEqual([]);
    expect(agentPids(r.dir)).toEqual([]);
  }
});

test('a stale socket, a garbage request, a busy agent: the run still happens, once', async () => {
  const { dir, env, local, remote } = await withAgent({ 'a.txt': 'x', 'b.txt': 'y' });
  const [sock] = sockets(dir);
  // Garbage: the agent hangs up (declines), and still serves the next run.
  const reply = await new Promise<Buffer>((resolve) => {
    const s = net.connect(sock);
    const got: Buffer[] = [];
    s.on('data', (b: Buffer) => got.push(b));
    s.once('close', () => resolve(Buffer.concat(got)));
    s.write('{"v":1,"argv":["keys","--help"],"cwd":"/","tty":{}}\n');
  });
  expect(reply[0]).toBe(4);
  // Two at once: one is served, the other declined and run in its own process; both mirror.
  fs.writeFileSync(path.join(local, 'a.txt'), 'changed, longer');
  const [p, q] = await Promise.all([run(flags(local, remote), env), run(flags(local, remote), env)]);
  expect([p.code, q.code]).toEqual([0, 0]);
  expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
  // The agent killed: its socket is stale; the next run happens in-process and a new agent takes over.
  stopAgents(dir);
  await until(() => expect(agentPids(dir)).toEqual([]), 5000);
  expect(sockets(dir)).toHaveLength(1);
  fs.writeFileSync(path.join(local, 'b.txt'), 'changed, longer');
  const after = await run(flags(local, remote), env);
  expect(after.code).toBe(0);
  expect(synced(after.stdout).files).toBe(1);
  await until(() => expect(agentPids(dir)).toHaveLength(1), 10_000);
});

test('an idle agent leaves after KUBEDEV_AGENT_PERSIST seconds, with its socket and connection', async () => {
  const { dir } = await withAgent({ 'a.txt': 'x' }, { KUBEDEV_AGENT_PERSIST: '2' });
  await until(() => {
    expect(agentPids(dir)).toEqual([]);
    expect(sockets(dir)).toEqual([]);
  }, 10_000);
});

test("'--once' read as another flag's value is not a one-shot run: the agent declines it, the client runs it itself", async () => {
  const { env, local, remote, before } = await withAgent({ 'a.txt': 'x' });
  // --user takes '--once' as its value: parsed, this run would watch forever inside the agent.
  const args = flags(local, remote).filter((a) => a !== '--once');
  args.splice(args.indexOf('--user'), 2);
  args.push('--user', '--once');
  const served = await run(args, env);
  const alone = await run(args, { ...env, KUBEDEV_AGENT: 'off' });
  expect(served.code).toBe(1);
  expect(served.code).toBe(alone.code);
  expect(served.stderr).toBe(alone.stderr);
  expect(served.stderr).toContain("refused the key");
  // The agent is free and serves the next run over its connection.
  fs.writeFileSync(path.join(local, 'a.txt'), 'changed, longer');
  const next = await run(flags(local, remote), env);
  expect(next.code).toBe(0);
  expect(synced(next.stdout).files).toBe(1);
  expect(logins()).toBe(before + 2);
});

test('an agent that takes the connection but never answers: the run happens in-process after a few seconds', async () => {
  const { dir, env } = runtime();
  const { local, remote } = folders();
  writeTree(local, { 'a.txt': 'x' });
  // Something listens on the socket the run looks for, and says nothing (a wedged agent).
  const socket = execFileSync(process.execPath, ['-e', "process.stdout.write(require('./build/sync/agent/where.js').socketPath())"], { env, cwd: path.resolve(__dirname, '..'), encoding: 'utf8' });
  expect(socket.startsWith(path.join(dir, 'kubedev'))).toBe(true);
  const held: net.Socket[] = [];
  const mute = net.createServer((s) => held.push(s));
  await new Promise<void>((resolve) => mute.listen(socket, resolve));
  try {
    const t0 = Date.now();
    const r = await run(flags(local, remote), env);
    expect(r.code).toBe(0);
    expect(synced(r.stdout).files).toBe(1);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(held.length).toBe(1);
    expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
  } finally {
    for (const s of held) s.destroy();
    await new Promise((resolve) => mute.close(resolve));
  }
  expect(agentPids(dir)).toEqual([]); // a wedged agent's place is not taken behind its back
});

test('a run that fails after connecting does not hand its connection on: the next run logs in anew', async () => {
  const { env, local, remote, before } = await withAgent({ 'a.txt': 'x' });
  // A remote root the server's user cannot make: exit 1 once connected.
  const failed = await run(flags(local, '/root/kubedev-no-access/ws'), env);
  expect(failed.code).toBe(1);
  expect(logins()).toBe(before + 2); // served over the kept connection
  const next = await run(flags(local, remote), env);
  expect(next.code).toBe(0);
  expect(logins()).toBe(before + 3); // that connection was ended with the failed run
});
