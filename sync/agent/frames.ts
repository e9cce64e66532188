/**
 * The agent's wire: the client sends JSON lines (the request, its go once the agent said Started, then
 * signals); the agent sends
 * frames of one type byte and a 4-byte big-endian length: the run's stdout and stderr bytes, its exit
 * code, or a refusal (the client then runs in its own process).
 */

export const Frame = {
  Stdout: 1,
  Stderr: 2,
  Exit: 3,
  /** The agent will not run this request (busy, a folder it cannot enter): the client runs it itself. */
  Decline: 4,
  /**
   * The agent will take the run (sent at once: a client that gets neither this nor a refusal soon runs
   * it itself). The run begins only when the client answers `{"go":true}`: a client that gave up
   * waiting never sends it, so a late agent and the client never run it both.
   */
  Started: 5,
} as const;
export type Frame = (typeof Frame)[keyof typeof Frame];

/** What a client asks for. */
export interface AgentRequest {
  readonly v: 1;
  readonly argv: readonly string[];
  readonly cwd: string;
  /** Whether the client's stdout and stderr are terminals, and the terminal's width. */
  readonly tty: { readonly stdout: boolean; readonly stderr: boolean; readonly columns?: number };
}

/** A later line from the client. */
export interface AgentSignal {
  readonly signal: 'SIGINT' | 'SIGTERM';
}

/** The client's answer to Started: the run may begin (it will not run it itself). */
export interface AgentGo {
  readonly go: true;
}

export function frame(type: Frame, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into frames; the rest of an unfinished frame waits for more bytes. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly on: (type: Frame, body: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 5 + len) return;
      const type = this.buf.readUInt8(0) as Frame;
      const body = this.buf.subarray(5, 5 + len);
      this.buf = this.buf.subarray(5 + len);
      this.on(type, body);
    }
  }
}

/** Splits a byte stream into lines of JSON; a line that is not JSON is passed as undefined. */
export class LineReader {
  private text = '';

  constructor(private readonly on: (value: unknown) => void) {}

  push(chunk: Buffer): void {
    this.text += chunk.toString('utf8');
    for (let nl = this.text.indexOf('\n'); nl >= 0; nl = this.text.indexOf('\n')) {
      const line = this.text.slice(0, nl);
      this.text = this.text.slice(nl + 1);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        value = undefined;
      }
      this.on(value);
    }
    if (this.text.length > 1024 * 1024) {
      this.text = '';
      this.on(undefined);
    }
  }
}
