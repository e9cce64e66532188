/**
 * The agent: a user's background process that runs `kubedev sync --once` for the `kubedev` processes
 * that ask (sync/agent/client.ts), keeping its SSH connections between runs (pool.ts) and its code
 * compiled and warm. A served run skips module loading, the CLI's set-up and the SSH handshake. It
 * lists the remote side in full; the local side too, unless the agent's watcher of that folder saw
 * nothing change since the last run listed it (engine/kept-scan.ts: then that listing is taken).
 *
 *   node build/sync/agent/server.js <socket> [<request JSON to warm up with>]
 *
 * - Listens on a socket in a folder only the user can enter (where.ts); the socket itself is 0600.
 * - One run at a time: a request while one runs is declined, and its client runs it itself.
 * - A run's working folder is its client's (the agent's own is `/` between runs); its output, exit
 *   code and signals travel over the socket; the client closing the socket stops the run as SIGINT
 *   would (after the batch in flight).
 * - Leaves after `KUBEDEV_AGENT_PERSIST` seconds (600) without a run, or as soon as its socket is
 *   removed or replaced (a newer agent took the name), ending its idle connections.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { main } from '../cli/main';
import { NotServed } from '../errors';
import { registerSync, resolveSessions, SyncCommandOptions } from '../cli/sync';
import { trimMemoryAfterStart } from '../engine/memory';
import { Connection, setConnectionPool } from '../engine/transport';
import { KeptScans, setKeptScans } from '../engine/kept-scan';
import { AgentRequest, Frame, frame, LineReader } from './frames';
import { AgentPool } from './pool';
import { persistSeconds } from './where';

/** Quiet time after a run before its heap is given back. */
const TRIM_AFTER_MS = 1_000;
/** How often the agent checks that its socket is still its own. */
const CHECK_MS = 5_000;
/**
 * How long the agent waits for a client's go after Started (a client answers at once; one stopped
 * with Ctrl-Z would hold the agent busy): then it declines, and the client, if it comes back, runs the
 * command itself.
 */
const GO_MS = 10_000;

function isRequest(v: unknown): v is AgentRequest {
  const r = v as AgentRequest | undefined;
  return (
    typeof r === 'object' &&
    r !== null &&
    r.v === 1 &&
    Array.isArray(r.argv) &&
    r.argv.every((a) => typeof a === 'string') &&
    r.argv[0] === 'sync' &&
    r.argv.includes('--once') &&
    typeof r.cwd === 'string' &&
    typeof r.tty === 'object' &&
    r.tty !== null
  );
}

/** A stream that sends what is written to it as frames of `type` (dropped once the client is gone). */
function relay(sock: net.Socket, type: Frame, isTTY: boolean, columns: number | undefined): Writable & { isTTY?: boolean; columns?: number } {
  const w = new Writable({
    write(chunk: Buffer, _enc, cb): void {
      if (!sock.destroyed) sock.write(frame(type, chunk));
      cb();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  if (isTTY) {
    w.isTTY = true;
    w.columns = columns ?? 80;
  }
  return w;
}

export class Agent {
  private busy = false;
  private leaving = false;
  private trim?: NodeJS.Timeout;
  private idle?: NodeJS.Timeout;
  private check?: NodeJS.Timeout;
  private readonly server = net.createServer((s) => this.accept(s));
  readonly pool: AgentPool;
  /** The local listings kept between runs (engine/kept-scan.ts). */
  readonly kept = new KeptScans();
  private ino = -1;
  /** Resolves when the agent has left. */
  readonly gone: Promise<void>;
  private leave!: () => void;

  constructor(
    readonly socket: string,
    private readonly persistMs = persistSeconds() * 1000,
    private readonly goMs = GO_MS,
  ) {
    this.pool = new AgentPool(this.persistMs);
    this.gone = new Promise((resolve) => (this.leave = resolve));
  }

  /** Listens; false when another live agent already has the socket. */
  async listen(): Promise<boolean> {
    setConnectionPool(this.pool);
    setKeptScans(this.kept);
    for (let attempt = 0; attempt < 2; attempt++) {
      const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        this.server.once('error', resolve);
        this.server.listen(this.socket, () => resolve(undefined));
      });
      if (!err) {
        fs.chmodSync(this.socket, 0o600);
        this.ino = fs.statSync(this.socket).ino;
        this.check = setInterval(() => this.stillOurs(), CHECK_MS);
        this.rearm();
        return true;
      }
      if (err.code !== 'EADDRINUSE' || (await answers(this.socket))) return false;
      fs.rmSync(this.socket, { force: true }); // a stale socket: its agent is gone
    }
    return false;
  }

  /** Opens (into the pool) the connections a request names, without running it. */
  async warm(req: unknown): Promise<void> {
    if (!isRequest(req)) return;
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const cmd = new Command('kubedev').exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    let opts: SyncCommandOptions | undefined;
    registerSync(cmd, { stdout: sink, stderr: sink }, async (o) => {
      opts = o;
      return 0;
    });
    try {
      process.chdir(req.cwd);
      await cmd.parseAsync([...req.argv], { from: 'user' });
      const targets = opts ? resolveSessions(opts) : [];
      process.chdir('/');
      await Promise.all(
        targets.map(async (t) => {
          const conn = await Connection.open(t);
          await conn.sftp().catch(() => undefined);
          await conn.close();
        }),
      );
    } catch {
      // nothing warmed: the first run connects itself
    } finally {
      process.chdir('/');
    }
  }

  private accept(sock: net.Socket): void {
    sock.on('error', () => undefined);
    let started = false;
    const ac = new AbortController();
    let go: () => void = () => undefined;
    const went = new Promise<boolean>((resolve) => {
      go = () => resolve(true);
      ac.signal.addEventListener('abort', () => resolve(false));
    });
    const lines = new LineReader((v) => {
      if (!started) {
        started = true;
        void this.serve(sock, v, ac, went);
      } else if (v && typeof v === 'object' && 'go' in v && v.go === true) go();
      else if (v && typeof v === 'object' && 'signal' in v) ac.abort(new Error('stopped by the client'));
    });
    sock.on('data', (b: Buffer) => lines.push(b));
    sock.once('close', () => ac.abort(new Error('the client left')));
  }

  private async serve(sock: net.Socket, req: unknown, ac: AbortController, went: Promise<boolean>): Promise<void> {
    if (ac.signal.aborted) return; // the client gave up waiting (this agent was held up) and runs it itself
    // Leaving (idle, or its socket replaced): a request accepted meanwhile is run by its client.
    if (!isRequest(req) || this.busy || this.leaving) return void sock.end(frame(Frame.Decline, this.busy ? 'busy' : this.leaving ? 'leaving' : 'not a request this agent serves'));
    try {
      process.chdir(req.cwd);
    } catch {
      return void sock.end(frame(Frame.Decline, 'cannot enter the working folder'));
    }
    this.busy = true;
    if (this.idle) clearTimeout(this.idle);
    sock.write(frame(Frame.Started, ''));
    // Begun only on the client's go: a client that stopped waiting runs it itself, and this agent not.
    let late: NodeJS.Timeout | undefined;
    const go = await Promise.race([went, new Promise<false>((resolve) => (late = setTimeout(() => resolve(false), this.goMs)))]);
    clearTimeout(late);
    if (!go) {
      this.busy = false;
      process.chdir('/');
      this.rearm();
      return void sock.end(frame(Frame.Decline, 'no go from the client'));
    }
    let code = 1;
    let declined = false;
    const mark = this.pool.mark();
    try {
      const stdout = relay(sock, Frame.Stdout, req.tty.stdout, req.tty.columns);
      const stderr = relay(sock, Frame.Stderr, req.tty.stderr, req.tty.columns);
      code = await main(req.argv, { stdout, stderr, signal: ac.signal, onlyOnce: true });
    } catch (e) {
      declined = e instanceof NotServed;
      if (!declined && !sock.destroyed) sock.write(frame(Frame.Stderr, `kubedev: ${(e as Error).message}\n`));
    } finally {
      if (code !== 0 || ac.signal.aborted) {
        this.pool.dropKeptSince(mark);
        this.kept.forgetAll();
      }
      try {
        process.chdir('/');
      } catch {
        // '/' is always there
      }
      this.busy = false;
      this.rearm();
      this.trimSoon();
    }
    if (!sock.destroyed) sock.end(declined ? frame(Frame.Decline, 'not a one-shot run') : frame(Frame.Exit, String(code)));
  }

  /**
   * The heap a run grew (the indexes of both sides) is given back once no run came for a second:
   * between runs an agent allocates too little for V8 to collect or shrink it by itself.
   */
  private trimSoon(): void {
    if (this.trim) clearTimeout(this.trim);
    this.trim = setTimeout(() => {
      if (!this.busy && !this.leaving) trimMemoryAfterStart(() => this.busy, () => this.leaving);
    }, TRIM_AFTER_MS);
    this.trim.unref();
  }

  private rearm(): void {
    if (this.idle) clearTimeout(this.idle);
    if (this.leaving) return; // a run that ended after the agent began leaving keeps nothing alive
    this.idle = setTimeout(() => void this.close(), this.persistMs);
  }

  private stillOurs(): void {
    let ino: number | undefined;
    try {
      ino = fs.statSync(this.socket).ino;
    } catch {
      ino = undefined;
    }
    if (ino !== this.ino && !this.busy) void this.close(false);
  }

  /** Leaves: stops listening, ends idle connections, removes the socket if it is still its own. */
  async close(removeSocket = true): Promise<void> {
    if (this.leaving) return this.gone;
    this.leaving = true;
    if (this.trim) clearTimeout(this.trim);
    if (this.idle) clearTimeout(this.idle);
    if (this.check) clearInterval(this.check);
    // The kept listings first: their server watchers are ended over connections still open.
    setKeptScans(undefined);
    await this.kept.closeAll();
    setConnectionPool(undefined);
    this.pool.closeAll();
    if (removeSocket) {
      try {
        if (fs.statSync(this.socket).ino === this.ino) fs.rmSync(this.socket, { force: true });
      } catch {
        // already gone
      }
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.leave();
  }
}

/** Whether something listens on `socket` (another agent). */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function run(): Promise<void> {
  const [socket, warmup] = process.argv.slice(2);
  if (!socket) {
    process.stderr.write('kubedev agent: pass the socket path (kubedev starts its agent itself)\n');
    process.exitCode = 2;
    return;
  }
  process.chdir('/');
  const agent = new Agent(socket);
  if (!(await agent.listen())) return;
  if (warmup) {
    let req: unknown;
    try {
      req = JSON.parse(warmup);
    } catch {
      req = undefined;
    }
    await agent.warm(req);
  }
  await agent.gone;
}

if (require.main === module) void run();
