/** Merges small writes into chunks of about `size` bytes: ssh2 sends one SSH packet per write. */
import { Transform, TransformCallback } from 'node:stream';

export class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private bytes = 0;
  constructor(private readonly size: number, private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onBytes?.(chunk.length);
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
