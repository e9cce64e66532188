/**
 * One SSH connection to a stock OpenSSH server (ssh2): the host key checked against known_hosts before
 * authentication (so before any byte of the user's files), exec channels for `sh`/`tar`/`find`, and
 * one lazily opened SFTP session.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { ssh2Client } from './ssh2-lite';
import { checkHostKey, HostKeyVerdict } from './known-hosts';

export interface ConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Path of the private key. */
  readonly identity: string;
  /** Path of the known_hosts file. */
  readonly knownHosts: string;
  /** @default 10000 */
  readonly readyTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Fatal: the host key is unknown or changed; never retried. */
export class HostKeyError extends Error {
  constructor(readonly verdict: HostKeyVerdict) {
    super(verdict.reason ?? 'host key refused');
    this.name = 'HostKeyError';
  }
}

/** Fatal: the server refused our key, or the configuration cannot work; never retried. */
export class AuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthError';
  }
}

/** The connection dropped or could not be made: retried with backoff. */
export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionError';
  }
}

/** A remote command failed (exit status, stderr): disk full, permission denied, not a folder... */
export class RemoteError extends Error {
  constructor(message: string, readonly code: number | null, readonly stderr: string) {
    super(message);
    this.name = 'RemoteError';
  }
}

export interface ExecResult {
  readonly code: number | null;
  readonly signal?: string;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** An authenticated SSH connection no session holds: what a pool keeps between runs. */
export interface IdleLink {
  readonly client: Client;
  readonly where: string;
  readonly fingerprint: string;
  readonly sftp?: Promise<SFTPWrapper>;
  readonly execOpenMs: number;
}

/**
 * Keeps connections between runs (the agent, sync/agent/pool.ts); a plain process has none. A session
 * closing its connection hands it to the pool when nothing is left open on it; the next session opened
 * with the same options (host, port, user, the same key and known_hosts texts) takes it instead of
 * connecting.
 */
export interface ConnectionPool {
  take(o: ConnectOptions): IdleLink | undefined;
  /** True when the pool keeps the link (it is then not ended). */
  keep(o: ConnectOptions, link: IdleLink): boolean;
}

let pool: ConnectionPool | undefined;

/** How long a kept connection's server may take to answer before a new connection is made instead. */
const KEPT_ANSWER_MS = 1_000;

/**
 * Whether the server behind a kept connection answers a request within `ms` (one round trip): one
 * that died without a FIN (a dropped link, a stopped server) would otherwise hold the run until
 * ssh2's keepalive gives up. The request has no effect: it cancels a forward nobody asked for.
 */
function answers(client: Client, ms: number): Promise<boolean> {
  const quiet = (): void => undefined;
  client.on('error', quiet); // nobody else listens while it is being checked
  return new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    try {
      client.unforwardIn('127.0.0.1', 0, () => {
        clearTimeout(t);
        resolve(true);
      });
    } catch {
      clearTimeout(t);
      resolve(false);
    }
  }).finally(() => client.removeListener('error', quiet));
}

/** Sets (or with undefined, removes) the process's connection pool. */
export function setConnectionPool(p: ConnectionPool | undefined): void {
  pool = p;
}

export class Connection {
  private sftpP?: Promise<SFTPWrapper>;
  private closed = false;
  private dropReason?: Error;
  /**
   * The quickest exec channel opening seen (ms from the request to the command running: two round trips
   * and a process start); Infinity before the first. The bulk path compresses on a distant link.
   */
  execOpenMs = Infinity;
  /**
   * Where each remote root led on the server (its physical path) when it was listed: the scripts that
   * write there check they reach that place (remote-place.ts). Set by the session from the listing.
   */
  readonly listedRoots = new Map<string, Buffer>();
  private readonly dropListeners = new Set<(e: Error) => void>();
  /** Exec channels not yet closed (a connection with one open is never pooled). */
  private openChannels = 0;
  /** The options it was opened with, when a pool may keep it. */
  private poolAs?: ConnectOptions;
  private readonly onError = (e: Error): void => this.dropped(new ConnectionError(`connection to ${this.where} failed: ${e.message}`));
  private readonly onClose = (): void => this.dropped(new ConnectionError(`connection to ${this.where} closed`));

  /**
   * @param fingerprint `SHA256:...` of the host key the handshake accepted
   */
  private constructor(private readonly client: Client, readonly where: string, readonly fingerprint: string) {
    client.on('error', this.onError);
    client.on('close', this.onClose);
  }

  /** Connects, checking the host key first. Rejects with HostKeyError, AuthError or ConnectionError. */
  static async open(o: ConnectOptions): Promise<Connection> {
    const idle = pool?.take(o);
    if (idle && !(await answers(idle.client, KEPT_ANSWER_MS))) {
      // Died silently while kept (keepalive would take 15-20 s to say so): ended, a new one made.
      idle.client.on('error', () => undefined);
      idle.client.destroy();
    } else if (idle) {
      const conn = new Connection(idle.client, idle.where, idle.fingerprint);
      conn.sftpP = idle.sftp;
      conn.execOpenMs = idle.execOpenMs;
      conn.poolAs = o;
      return conn;
    }
    const conn = await Connection.connect(o);
    if (pool) conn.poolAs = o;
    return conn;
  }

  private static async connect(o: ConnectOptions): Promise<Connection> {
    const where = `${o.user}@${o.host}:${o.port}`;
    // The TCP connection first: the server accepts it and starts its side of the handshake while the
    // key is read and ssh2 loads. A failure meanwhile is kept and reported as ssh2 would report it.
    const sock = net.connect({ host: o.host, port: o.port });
    let early: Error | undefined;
    sock.on('error', (e) => (early ??= new ConnectionError(`cannot connect to ${where}: ${e.message}`)));
    sock.once('close', () => (early ??= new ConnectionError(`connection to ${where} closed during the handshake`)));
    // Small SSH packets (SFTP requests, channel opens) must not wait for Nagle's algorithm.
    sock.setNoDelay(true);
    let privateKey: Buffer;
    try {
      privateKey = await fs.promises.readFile(o.identity);
      o.signal?.throwIfAborted();
      if (early) throw early;
    } catch (e) {
      sock.destroy();
      if (e === early || o.signal?.aborted) throw e;
      throw new AuthError(`identity '${o.identity}' is unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}). Pass --identity with the private key the server accepts`);
    }
    let client: Client;
    try {
      client = new (ssh2Client())();
    } catch (e) {
      sock.destroy();
      throw e;
    }
    let verdict: HostKeyVerdict | undefined;
    return new Promise<Connection>((resolve, reject) => {
      let settled = false;
      const onAbort = (): void => {
        client.end();
        finish(o.signal?.reason instanceof Error ? o.signal.reason : new Error('aborted'));
      };
      const finish = (err: Error | undefined, conn?: Connection): void => {
        if (settled) return;
        settled = true;
        o.signal?.removeEventListener('abort', onAbort);
        if (err) {
          client.removeAllListeners('ready');
          client.on('error', () => undefined);
          client.end();
          reject(err);
        } else resolve(conn as Connection);
      };
      o.signal?.addEventListener('abort', onAbort, { once: true });
      client.once('ready', () => {
        const conn = new Connection(client, where, verdict?.fingerprint ?? '');
        finish(undefined, conn);
      });
      client.once('error', (e: Error & { level?: string }) => {
        if (verdict && !verdict.ok) return finish(new HostKeyError(verdict));
        if (e.level === 'client-authentication') {
          return finish(new AuthError(`${where} refused the key '${o.identity}' (${e.message}). Add its public half to the server's authorized_keys, or pass the right --identity and --user`));
        }
        if (/private key|parse|Unsupported key|passphrase/i.test(e.message)) {
          return finish(new AuthError(`identity '${o.identity}' cannot be used: ${e.message}. Pass an unencrypted OpenSSH private key with --identity`));
        }
        finish(new ConnectionError(`cannot connect to ${where}: ${e.message}`));
      });
      client.once('close', () => finish(verdict && !verdict.ok ? new HostKeyError(verdict) : new ConnectionError(`connection to ${where} closed during the handshake`)));
      try {
        client.connect({
          sock,
          host: o.host,
          port: o.port,
          username: o.user,
          privateKey,
          // The key straight away: without this, ssh2 first asks for 'none' (a round trip, and the
          // server's work for it) only to learn that the key is what it takes.
          authHandler: ['publickey'],
          readyTimeout: o.readyTimeoutMs ?? 10_000,
          keepaliveInterval: 5_000,
          keepaliveCountMax: 3,
          hostVerifier: (key: Buffer) => {
            verdict = checkHostKey(o.knownHosts, o.host, o.port, key);
            return verdict.ok;
          },
        });
      } catch (e) {
        finish(new AuthError(`identity '${o.identity}' cannot be used: ${(e as Error).message}. Pass an unencrypted OpenSSH private key with --identity`));
      }
    });
  }

  /** Registers a listener for the connection dropping; returns its remover. */
  onDrop(fn: (e: Error) => void): () => void {
    if (this.dropReason) {
      queueMicrotask(() => fn(this.dropReason as Error));
      return () => undefined;
    }
    this.dropListeners.add(fn);
    return () => this.dropListeners.delete(fn);
  }

  get alive(): boolean {
    return !this.dropReason && !this.closed;
  }

  private dropped(e: Error): void {
    if (this.dropReason) return;
    this.dropReason = e;
    for (const fn of this.dropListeners) fn(e);
    this.dropListeners.clear();
  }

  private assertAlive(): void {
    if (this.dropReason) throw this.dropReason;
    if (this.closed) throw new ConnectionError(`connection to ${this.where} is closed`);
  }

  /** The SSH connection under this object: the same for every run a pool hands it to. */
  get link(): object {
    return this.client;
  }

  /**
   * An exec channel that may outlive this object: not counted as open (the connection is still pooled,
   * the channel going on with it; an agent's watcher of a kept listing, kept-remote.ts).
   */
  sideChannel(command: string): Promise<ClientChannel> {
    this.assertAlive();
    return new Promise((resolve, reject) => {
      this.client.exec(command, (err, ch) => (err ? reject(new ConnectionError(`cannot run a command on ${this.where}: ${err.message}`)) : resolve(ch)));
    });
  }

  /** Opens an exec channel. */
  channel(command: string): Promise<ClientChannel> {
    this.assertAlive();
    return new Promise((resolve, reject) => {
      const off = this.onDrop(reject);
      const t0 = performance.now();
      this.client.exec(command, (err, ch) => {
        off();
        if (err) return reject(this.dropReason ?? new ConnectionError(`cannot run a command on ${this.where}: ${err.message}`));
        this.execOpenMs = Math.min(this.execOpenMs, performance.now() - t0);
        this.openChannels++;
        ch.once('close', () => this.openChannels--);
        resolve(ch);
      });
    });
  }

  /**
   * Runs `command`; `stdin` (if any) is piped in with back-pressure. Resolves with the exit status;
   * rejects with ConnectionError if the connection drops first. With `onStdout`, the output goes to
   * it as it arrives (the result's `stdout` is then empty). Stderr is kept up to `stderrMax` characters
   * (64 Ki): words for the user, unless the command writes data there.
   */
  async exec(command: string, stdin?: Readable | Buffer | string, options: { signal?: AbortSignal; onStdout?: (b: Buffer) => void; stderrMax?: number } = {}): Promise<ExecResult> {
    const ch = await this.channel(command);
    const out: Buffer[] = [];
    let err = '';
    ch.on('data', options.onStdout ?? ((b: Buffer) => out.push(b)));
    ch.stderr.setEncoding('utf8');
    ch.stderr.on('data', (s: string) => {
      if (err.length < (options.stderrMax ?? 64 * 1024)) err += s;
    });
    let offDrop: () => void = () => undefined;
    const done = new Promise<ExecResult>((resolve, reject) => {
      offDrop = this.onDrop(reject);
      ch.once('close', (code: number | null, signal?: string) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
    });
    try {
      if (stdin === undefined) ch.end();
      else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) ch.end(stdin);
      else {
        const dropped = new Promise<never>((_, reject) => {
          const off = this.onDrop(reject);
          done.finally(off).catch(() => undefined);
        });
        await Promise.race([pipeline(stdin, ch, { end: true, signal: options.signal }), dropped]).catch(async (e) => {
          // EPIPE-like errors while the remote already exited: report the remote's words instead.
          const r = await Promise.race([done, new Promise<undefined>((res) => setTimeout(() => res(undefined), 2000))]).catch(() => undefined);
          if (r && r.code !== 0) return;
          throw this.dropReason ?? e;
        });
      }
      return await done;
    } finally {
      offDrop();
    }
  }

  /** The connection's SFTP session (opened once). */
  sftp(): Promise<SFTPWrapper> {
    this.assertAlive();
    this.sftpP ??= new Promise<SFTPWrapper>((resolve, reject) => {
      const off = this.onDrop(reject);
      this.client.sftp((err, s) => {
        off();
        if (err) reject(new ConnectionError(`cannot start SFTP on ${this.where}: ${err.message}. The server must enable the sftp subsystem`));
        else resolve(s);
      });
    });
    return this.sftpP;
  }

  /**
   * A reverse forward: asks the server to listen on its 127.0.0.1:`port` and hands each connection
   * made there to `accept`. Rejects when the server refuses (its PermitListen does not name the port).
   */
  forwardIn(port: number, accept: (stream: ClientChannel) => void): Promise<void> {
    this.assertAlive();
    this.poolAs = undefined; // the server keeps listening for this connection: never handed on
    if (!this.routing) {
      this.routing = true;
      this.client.on('tcp connection', (info, take, refuse) => {
        const to = this.forwarded.get(info.destPort);
        if (to) to(take());
        else refuse();
      });
    }
    return new Promise((resolve, reject) => {
      this.client.forwardIn('127.0.0.1', port, (err) => {
        if (err) reject(new ConnectionError(`${this.where} refused to listen on its 127.0.0.1:${port} (${err.message})`));
        else {
          this.forwarded.set(port, accept);
          resolve();
        }
      });
    });
  }

  private readonly forwarded = new Map<number, (stream: ClientChannel) => void>();
  private routing = false;

  /** Drops the connection at once (a hung operation): every pending request fails with ConnectionError. */
  destroy(reason: string): void {
    this.dropped(new ConnectionError(reason));
    this.client.destroy();
  }

  /** Ends the connection (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.poolAs && !this.dropReason && this.openChannels === 0) {
      // Given to the pool: this object lets go of the client (its late calls fail as closed).
      this.client.removeListener('error', this.onError);
      this.client.removeListener('close', this.onClose);
      this.dropListeners.clear();
      if (pool?.keep(this.poolAs, { client: this.client, where: this.where, fingerprint: this.fingerprint, sftp: this.sftpP, execOpenMs: this.execOpenMs })) return;
      this.client.on('error', this.onError);
      this.client.on('close', this.onClose);
    }
    await new Promise<void>((resolve) => {
      if (this.dropReason) return resolve();
      const t = setTimeout(resolve, 1000);
      this.client.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.client.end();
    });
  }
}
