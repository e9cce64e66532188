/**
 * Merges small writes into chunks of about `size` bytes: ssh2 sends one SSH packet per write (a tar
 * header alone would be a 512-byte packet). A chunk of at least PASS_BYTES (one full SSH packet's
 * payload) goes on as it is, after what was gathered before it: copying the local tar's 64 KiB pipe
 * reads into 256 KiB blocks cost a copy of every byte sent and the garbage it left (a branch switch's
 * 84 MB), and ssh2 cuts every write into packets of at most 32 KiB anyway.
 */
import { Transform, TransformCallback } from 'node:stream';

/** ssh2's largest packet payload: a chunk this large fills packets whole without merging. */
export const PASS_BYTES = 32 * 1024;

export class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private bytes = 0;
  constructor(private readonly size: number, private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onBytes?.(chunk.length);
    if (chunk.length >= PASS_BYTES) {
      this.flushParts();
      this.push(chunk);
      return cb();
    }
    this.parts.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= this.size) this.flushParts();
    cb();
  }
  override _flush(cb: TransformCallback): void {
    this.flushParts();
    cb();
  }
  private flushParts(): void {
    if (this.bytes === 0) return;
    this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.bytes));
    this.parts = [];
    this.bytes = 0;
  }
}
