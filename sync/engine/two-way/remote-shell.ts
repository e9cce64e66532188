/**
 * A long-lived `sh` on the server, over one channel of the session's connection: the two-way pass runs
 * its listings and stats there. Opening an exec channel costs several round trips and a fork of the
 * server's session process (measured on 127.0.0.1, loaded: 150-220 ms each; a command on an open shell:
 * 1-2 ms), and a two-way pass runs on every remote change.
 *
 * Commands are sent at once and run in order (pipelined: a command sent while another runs costs no
 * round trip of its own). Each runs in a subshell (its `exit` and `cd` stay there) with stdin from
 * /dev/null (the shell's stdin is the channel: only the runner writes there, and no command can read
 * the next one) and its stdout framed by `NUL <marker> <exit code> NUL`, the marker random per command
 * (a name cannot hold a NUL, so no listing can end a frame early); the bytes after a frame belong to
 * the next command. Stderr is collected loosely (for messages only; exit codes decide). The shell
 * ending, or the connection, rejects what is pending with a ConnectionError; the next pass opens a new
 * shell.
 */
import * as crypto from 'node:crypto';
import { ClientChannel } from 'ssh2';
import { Connection, ConnectionError } from '../transport';
import { helperStart } from './swap-helper';

export interface ShellResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

interface Pending {
  readonly end: Buffer;
  resolve(r: ShellResult): void;
  reject(e: Error): void;
}

export class RemoteShell {
  private chunks: Buffer[] = [];
  private size = 0;
  private tail = Buffer.alloc(0);
  private stderr = '';
  /** Commands sent and not answered yet, oldest first. */
  private waiting: Pending[] = [];
  private ended?: Error;
  /**
   * The shell reads its commands one byte at a time: bash does from a pipe (about 2 µs a byte measured
   * here: a 64 KiB binary save swapped in as printf text took 370 ms, dash 35 ms); dash reads blocks.
   * Known once the shell's first answer came (a probe sent at open, no process); undefined until then.
   */
  bytewise?: boolean;
  /**
   * The swap helper (swap-helper.ts) runs beside the shell: true once it said it is ready, false when it
   * could not start or stopped answering (`helperGone`), undefined until its start has answered.
   */
  helper?: boolean;

  private constructor(private readonly ch: ClientChannel, private readonly where: string) {
    ch.on('data', (b: Buffer) => this.onData(b));
    ch.stderr.on('data', (b: Buffer) => {
      if (this.stderr.length < 16 * 1024) this.stderr += b.toString('utf8');
    });
    ch.on('error', () => undefined);
    ch.once('close', () => this.end(new ConnectionError(`the remote shell on ${where} ended`)));
  }

  /**
   * Opens the shell over `conn` (one channel) and starts its swap helper unless `helper` is false;
   * `command` is for tests (another shell than the server's sh).
   */
  static async open(conn: Connection, command = 'exec sh', helper = true): Promise<RemoteShell> {
    const ch = await conn.channel(command);
    const shell = new RemoteShell(ch, conn.where);
    conn.onDrop((e) => shell.end(e));
    shell.run('[ -z "${BASH_VERSION:-}" ] || echo bytewise').then(
      (r) => (shell.bytewise = r.stdout.includes('bytewise')),
      () => undefined,
    );
    if (!helper) shell.helper = false;
    else
      shell.run(helperStart(), false).then(
        (r) => (shell.helper ??= r.stdout.toString() === 'ready'),
        () => undefined,
      );
    return shell;
  }

  /** The swap helper did not answer a swap: the session's swaps take the sh path from now on. */
  helperGone(): void {
    this.helper = false;
  }

  get alive(): boolean {
    return !this.ended;
  }

  /**
   * Runs `script` (sh) and resolves with its exit code and stdout; sent at once, run in call order.
   * `own` (the default): in a subshell reading /dev/null. Not: in the shell itself (the helper's start).
   */
  run(script: string, own = true): Promise<ShellResult> {
    if (this.ended) return Promise.reject(this.ended);
    const marker = `KUBEDEV-END-${crypto.randomBytes(8).toString('hex')}`;
    return new Promise<ShellResult>((resolve, reject) => {
      this.waiting.push({ end: Buffer.from(`\0${marker} `), resolve, reject });
      this.ch.write(own ? `(\n${script}\n) </dev/null; printf '\\0%s %d\\0' ${marker} $?\n` : `${script}\nprintf '\\0%s %d\\0' ${marker} $?\n`);
    });
  }

  private onData(b: Buffer): void {
    for (let rest = b; rest.length > 0; ) {
      const p = this.waiting[0];
      if (!p) return; // nothing asked: a login shell's greeting
      this.chunks.push(rest);
      this.size += rest.length;
      // The frame's end is looked for in the new bytes and the few before them (never the whole output again).
      const look = Buffer.concat([this.tail, rest]);
      this.tail = look.subarray(Math.max(0, look.length - p.end.length - 32));
      const at = look.indexOf(p.end);
      if (at < 0) return;
      const close = look.indexOf(0, at + p.end.length);
      if (close < 0) return;
      this.waiting.shift();
      const all = Buffer.concat(this.chunks, this.size);
      const code = Number(look.subarray(at + p.end.length, close).toString('latin1'));
      p.resolve({ code, stdout: all.subarray(0, all.length - (look.length - at)), stderr: this.stderr });
      this.chunks = [];
      this.size = 0;
      this.tail = Buffer.alloc(0);
      this.stderr = '';
      rest = look.subarray(close + 1); // the next command's output
    }
  }

  private end(e: Error): void {
    if (this.ended) return;
    this.ended = e;
    for (const p of this.waiting.splice(0)) p.reject(e);
    this.ch.close();
  }

  close(): void {
    this.end(new ConnectionError(`the remote shell on ${this.where} was closed`));
  }
}
