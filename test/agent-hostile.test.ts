/**
 * The agent (sync/agent/) against what others can plant and what goes wrong around it: a socket path
 * the kernel would cut short, an upgraded kubedev whose files keep their dates, a kept connection whose
 * server stopped answering. Runs as users start them (bin/kubedev.js, compiled build/), a real sshd.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { agentPids, BUILD_AGENT, flags, folders, logins, run, runtime, sockets, synced, until, useAgentSshd, withAgent } from './support/agent';
import { Frame } from '../sync/agent/frames';
import { Agent } from '../sync/agent/server';
import { differences, snapshot, tempDir, writeTree } from './support/trees';

const suite = useAgentSshd();
const REPO = path.resolve(__dirname, '..');

/** How many sftp-server processes serve the suite's sshd sessions now. */
function sftpServers(): number {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null);
  const below = new Set(suite.sshd().sessionPids());
  for (let grew = true; grew; ) {
    grew = false;
    for (const [, pid, ppid] of rows) if (below.has(Number(ppid)) && !below.has(Number(pid))) grew = Boolean(below.add(Number(pid)));
  }
  return rows.filter(([, pid, , args]) => below.has(Number(pid)) && /sftp-server/.test(args)).length;
}

/** What the agent at `socket` answers `line` with (all it sends until it hangs up). */
function answer(socket: string, line: string): Promise<Buffer> {
  return new Promise<Buffer>((resolve) => {
    const s = net.connect(socket);
    const got: Buffer[] = [];
    s.on('data', (b: Buffer) => got.push(b));
    s.on('error', () => undefined);
    s.once('close', () => resolve(Buffer.concat(got)));
    s.write(`${line}\n`);
  });
}

/** The socket path a run with `env` looks for (where.ts, compiled). */
function socketFor(env: NodeJS.ProcessEnv, gid?: number): string {
  return execFileSync(process.execPath, ['-e', "process.stdout.write(String(require('./build/sync/agent/where.js').socketPath()))"], { env, cwd: REPO, encoding: 'utf8', gid });
}

test('a socket path longer than the kernel takes (108 bytes) means no agent: never a cut name outside the private folder', async () => {
  // No XDG_RUNTIME_DIR: the folder is <TMPDIR>/kubedev-<uid>; TMPDIR here is long and open to all
  // (sticky, as /tmp), so anyone may make a name in it. Cut to 108 bytes (no room for a NUL), the socket's path would
  // end inside TMPDIR itself, where another user's listener may wait.
  const base = tempDir('agent-shared');
  const shared = path.join(base, 'x'.repeat(100 - base.length - 1));
  fs.mkdirSync(shared);
  fs.chmodSync(shared, 0o1777);
  suite.dirs.push(path.dirname(shared));
  const { env } = runtime({ XDG_RUNTIME_DIR: undefined, TMPDIR: shared });
  delete env.XDG_RUNTIME_DIR;
  const full = `${path.join(shared, `kubedev-${process.getuid?.() ?? 0}`)}/agent-0123456789a.sock`;
  const cut = Buffer.from(full).subarray(0, 108).toString();
  expect(path.dirname(cut)).toBe(shared); // the cut name is TMPDIR's, not the private folder's
  // Another user's listener at the cut name: it would read the run's request and could answer
  // "exit 0" for a run that never happened.
  const heard: string[] = [];
  const planted = net.createServer((s) => s.on('data', (b: Buffer) => heard.push(b.toString())));
  await new Promise<void>((resolve) => planted.listen(cut, resolve));
  try {
    const { local, remote } = folders();
    writeTree(local, { 'a.txt': 'x' });
    for (let i = 0; i < 2; i++) {
      const r = await run(flags(local, remote), env);
      expect(r.code).toBe(0);
      expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
    }
    expect(heard).toEqual([]);
    expect(socketFor(env)).toBe('undefined');
  } finally {
    await new Promise((resolve) => planted.close(resolve));
  }
});

test('a kept connection whose server stopped answering (a dead link, no FIN) is not waited on: the run connects anew within a second or so', async () => {
  const { env, local, remote, before } = await withAgent({ 'a.txt': 'x' });
  await until(() => expect(sftpServers()).toBeGreaterThan(0), 10_000); // the warm-up's connection is kept, with its SFTP session
  // The agent's kept connection: its server process stops (as a link that died silently: the
  // kernel still holds the TCP connection, nothing answers). ssh2's keepalive takes 15-20 s to see it.
  expect(suite.sshd().signalSessions('SIGSTOP')).toBe(1);
  try {
    fs.writeFileSync(path.join(local, 'a.txt'), 'changed, longer');
    const t0 = Date.now();
    const r = await run(flags(local, remote), env);
    expect(r.code).toBe(0);
    expect(synced(r.stdout).files).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(logins()).toBe(before + 3); // the first run, the agent's warm-up, this run's new connection
    expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
  } finally {
    suite.sshd().signalSessions('SIGCONT');
  }
});

test('a kubedev reinstalled in place whose files keep their dates (npm packs them all at 1985-10-26) meets a new agent, never the old one', async () => {
  const main = path.join(BUILD_AGENT, 'server.js');
  const npmDate = new Date('1985-10-26T08:15:00Z');
  fs.utimesSync(main, npmDate, npmDate);
  const { env, local, remote, before } = await withAgent({ 'a.txt': 'x' });
  const old = socketFor(env);
  // What an install does: every file written anew (a new inode), then dated as the package says.
  fs.copyFileSync(main, `${main}.new`);
  fs.renameSync(`${main}.new`, main);
  fs.utimesSync(main, npmDate, npmDate);
  expect(socketFor(env)).not.toBe(old);
  const r = await run(flags(local, remote), env);
  expect(r.code).toBe(0);
  expect(logins()).toBe(before + 3); // run in its own process, not by the old agent over its connection
});

test('a client whose working folder was removed runs as it would without an agent (no stack trace)', async () => {
  const { env, local, remote } = await withAgent({ 'a.txt': 'x' });
  const results = [];
  for (const e of [{ ...env, KUBEDEV_AGENT: 'off' }, env]) {
    fs.writeFileSync(path.join(local, 'a.txt'), `changed by ${e.KUBEDEV_AGENT}`);
    const gone = tempDir('agent-gone');
    const r = await run(flags(local, remote), e, { cwd: gone, started: () => fs.rmSync(gone, { recursive: true }) });
    expect(r.stderr).not.toMatch(/\n\s+at /);
    results.push({ code: r.code, files: r.code === 0 ? synced(r.stdout).files : -1 });
  }
  expect(results).toEqual([
    { code: 0, files: 1 },
    { code: 0, files: 1 },
  ]);
  expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
});

test('a client killed (SIGKILL) mid-run: the agent stops that run within a moment and serves the next one', async () => {
  const { dir, env, local, remote, before } = await withAgent({ 'a.txt': 'x' });
  const [pid] = agentPids(dir);
  const big: Record<string, string> = {};
  for (let i = 0; i < 60; i++) big[`d${i % 6}/f${i}.bin`] = `${i}`.repeat(1_000_000);
  writeTree(local, big);
  let killedAt = 0;
  // Killed once the transfer is seen on the remote (a timer would miss a run that ends first).
  const killed = await run(flags(local, remote), env, {
    started: (c) => {
      const poll = setInterval(() => {
        if (!fs.readdirSync(remote).some((n) => n !== 'a.txt')) return;
        clearInterval(poll);
        killedAt = Date.now();
        c.kill('SIGKILL');
      }, 2);
      c.on('exit', () => clearInterval(poll));
    },
  });
  expect(killed.signal).toBe('SIGKILL');
  // The agent says 'busy' while that run still goes on.
  const [sock] = sockets(dir);
  let busyMs = -1;
  for (let i = 0; i < 200 && busyMs < 0; i++) {
    const reply = await answer(sock, '{"v":1,"argv":["keys"],"cwd":"/","tty":{}}');
    if (!reply.subarray(5).toString().includes('busy')) busyMs = Date.now() - killedAt;
    else await new Promise((r) => setTimeout(r, 50));
  }
  const next = await run(flags(local, remote), env);
  expect(next.code).toBe(0);
  expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
  expect(agentPids(dir)).toEqual([pid]);
  expect(busyMs).toBeGreaterThanOrEqual(0);
  expect(busyMs).toBeLessThan(5_000); // measured: 245 ms (the batch in flight ends, the connection with it)
  expect(synced(next.stdout).files).toBeGreaterThan(0);
  // The killed run's connection had channels open: ended, not kept; the next run made one more.
  expect(logins() - before).toBeLessThanOrEqual(3);
});

test('a run with other groups (newgrp, sg, a new login after usermod -aG) meets another agent: what it may read differs', () => {
  if (process.getuid?.() !== 0) throw new Error('this test changes its group: run the suite as root (as CI does, for the sshd it starts as another user)');
  const { env } = runtime();
  const mine = socketFor(env);
  expect(socketFor(env)).toBe(mine);
  expect(socketFor(env, 4242)).not.toBe(mine);
});

test('a client that stops waiting before it says go (its 3 s ran out as the agent answered): the agent never begins the run, and serves the next', async () => {
  const { dir, env, local, remote } = await withAgent({ 'a.txt': 'x' });
  fs.writeFileSync(path.join(local, 'a.txt'), 'changed');
  const [sock] = sockets(dir);
  const req = JSON.stringify({ v: 1, argv: flags(local, remote), cwd: local, tty: {} });
  // The request, the agent's Started, then the client leaves without its go (as a client whose timer fired).
  const got = await new Promise<Buffer>((resolve) => {
    const s = net.connect(sock);
    const bytes: Buffer[] = [];
    s.on('error', () => undefined);
    s.on('data', (b: Buffer) => {
      bytes.push(b);
      // Left a while after Started (the old protocol began at Started: by then the run was done).
      if (Buffer.concat(bytes)[0] === Frame.Started) setTimeout(() => s.destroy(), 400);
    });
    s.once('close', () => resolve(Buffer.concat(bytes)));
    s.write(`${req}\n`);
  });
  expect(got[0]).toBe(Frame.Started);
  await new Promise((r) => setTimeout(r, 1000));
  expect(fs.readFileSync(path.join(remote, 'a.txt'), 'utf8')).toBe('x'); // not begun
  const next = await run(flags(local, remote), env);
  expect(next.code).toBe(0);
  expect(synced(next.stdout).files).toBe(1); // served (the agent was free again) and the change sent once
  expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
});

test('a run in another locale (LANG, LC_*) meets another agent: the messages it passes on are in its own language', () => {
  const { env } = runtime();
  const mine = socketFor({ ...env, LANG: 'C.UTF-8' });
  expect(socketFor({ ...env, LANG: 'C.UTF-8' })).toBe(mine);
  expect(socketFor({ ...env, LANG: 'de_DE.UTF-8' })).not.toBe(mine);
  expect(socketFor({ ...env, LANG: 'C.UTF-8', LC_MESSAGES: 'fr_FR.UTF-8' })).not.toBe(mine);
  expect(socketFor({ ...env, LANG: 'C.UTF-8', SHELL: '/bin/zsh' })).toBe(mine); // what a run does not read changes nothing
});

test('a run in another mount namespace (a container sharing the runtime folder: toolbox, distrobox) meets another agent: its paths name other files', () => {
  if (process.getuid?.() !== 0) throw new Error('this test makes a mount namespace (unshare --mount): run the suite as root');
  const { env } = runtime();
  const mine = socketFor(env);
  const script = "process.stdout.write(String(require('./build/sync/agent/where.js').socketPath()))";
  let theirs: string;
  try {
    theirs = execFileSync('unshare', ['--mount', process.execPath, '-e', script], { env, cwd: REPO, encoding: 'utf8' });
  } catch (e) {
    throw new Error(`unshare failed (${(e as Error).message}): install util-linux ('apt-get install -y util-linux')`);
  }
  expect(theirs.startsWith(path.join(env.XDG_RUNTIME_DIR as string, 'kubedev'))).toBe(true);
  expect(theirs).not.toBe(mine);
});

test('a client that stops after Started (Ctrl-Z) does not hold the agent: declined after its wait for the go, free for the next', async () => {
  const dir = tempDir('agent-go');
  suite.dirs.push(dir);
  const agent = new Agent(path.join(dir, 'agent.sock'), 60_000, 300);
  expect(await agent.listen()).toBe(true);
  try {
    const req = `${JSON.stringify({ v: 1, argv: ['sync', '--once', '--port', 'ssh'], cwd: '/', tty: {} })}\n`;
    const stopped = net.connect(agent.socket);
    const got: Buffer[] = [];
    stopped.on('data', (b: Buffer) => got.push(b));
    const ended = new Promise((resolve) => stopped.once('end', resolve));
    stopped.write(req); // and never its go
    await ended;
    const frames = Buffer.concat(got);
    expect(frames[0]).toBe(Frame.Started);
    expect(frames[5]).toBe(Frame.Decline); // after Started's empty body
    stopped.destroy();
    // The next request is not declined as busy: it gets its own Started.
    const next = await new Promise<Buffer>((resolve) => {
      const c = net.connect(agent.socket);
      c.once('data', (b: Buffer) => {
        c.destroy();
        resolve(b);
      });
      c.write(req);
    });
    expect(next[0]).toBe(Frame.Started);
  } finally {
    await agent.close();
  }
});

test('an agent that is leaving (idle, or its socket replaced) declines a request that reached it meanwhile, and arms no timer again', async () => {
  const dir = tempDir('agent-leave');
  suite.dirs.push(dir);
  const agent = new Agent(path.join(dir, 'agent.sock'), 60_000);
  expect(await agent.listen()).toBe(true);
  const client = net.connect(agent.socket);
  await new Promise((resolve) => client.once('connect', resolve));
  await new Promise((resolve) => setTimeout(resolve, 100)); // accepted by the agent
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const leaving = agent.close();
  const got: Buffer[] = [];
  client.on('data', (b: Buffer) => got.push(b));
  const closed = new Promise((resolve) => client.once('close', resolve));
  client.write(`${JSON.stringify({ v: 1, argv: ['sync', '--once', '--port', 'ssh'], cwd: '/', tty: {} })}\n`);
  await closed;
  await leaving;
  expect(Buffer.concat(got)[0]).toBe(Frame.Decline);
  expect(timers()).toBeLessThan(before);
});

test("the local tar reads no TAR_OPTIONS from the run's environment (an agent's is another run's): a link is sent as a link", async () => {
  const { local, remote } = folders();
  const tree: Record<string, string> = {};
  for (let i = 0; i < 450; i++) tree[`d${i % 9}/f${i}.txt`] = `${i}`; // more than BULK_FILES: the tar path
  writeTree(local, tree);
  fs.symlinkSync('d0/f0.txt', path.join(local, 'link'));
  const { env } = runtime({ KUBEDEV_AGENT: 'off', TAR_OPTIONS: '--dereference' });
  const r = await run(flags(local, remote), env);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('"method":"tar"');
  expect(fs.lstatSync(path.join(remote, 'link')).isSymbolicLink()).toBe(true);
  expect(differences(snapshot(local), snapshot(remote))).toEqual([]);
});

test('a runtime folder whose parent others may write without the sticky bit means no agent: the checked folder could be swapped before the connect', () => {
  const open = tempDir('agent-open');
  suite.dirs.push(open);
  fs.chmodSync(open, 0o777); // others may rename what is in it (no sticky bit, unlike /tmp)
  const { env } = runtime({ TMPDIR: open });
  delete env.XDG_RUNTIME_DIR;
  expect(socketFor(env)).toBe('undefined');
  fs.chmodSync(open, 0o1777); // as /tmp: only the owner may rename it
  expect(socketFor(env).startsWith(path.join(open, 'kubedev-'))).toBe(true);
});
