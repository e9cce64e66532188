/**
 * Writes byte ranges of a local file into the remote temporary copy at the same offsets: one SFTP open
 * (read-write, no truncation), 32 KiB write requests with up to 64 in flight, then the file's exact
 * size, mode and mtime (one fsetstat, after the writes), one close. The local file
 * is read again for exactly those ranges and must still be a file of its planned size; a short read is
 * a LocalReadError ('changed'), never padding.
 */
import * as fs from 'node:fs';
import { ApplyContext } from './apply-common';
import { caller } from './apply-sftp';
import { DeltaFallback } from './delta-remote';
import { LocalReadError } from './local-read';
import { PlanItem } from './plan';

const SFTP_CHUNK = 32 * 1024;
const SFTP_WINDOW = 64;
const READ_PIECE = 256 * 1024;

/** Up to `max` requests in flight; the first failure is thrown by the next add or by drain. */
class Window {
  private readonly inflight = new Set<Promise<void>>();
  private failure?: Error;
  constructor(private readonly max: number) {}

  async add(request: () => Promise<void>): Promise<void> {
    const p: Promise<void> = request()
      .catch((e: Error) => {
        this.failure ??= e;
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    if (this.inflight.size >= this.max) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
  }

  async drain(): Promise<void> {
    await Promise.all(this.inflight);
    if (this.failure) throw this.failure;
  }
}

/** Writes `ranges` ([start, end) of the local file `abs`) into `temp` at the same offsets; returns the bytes written. */
export async function writeRanges(ctx: ApplyContext, abs: string, item: PlanItem, temp: string, ranges: readonly [number, number][]): Promise<number> {
  const { rel, entry } = item;
  const size = entry.size;
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(abs, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    throw new LocalReadError(rel, 'changed', `'${rel}' vanished while it was sent`);
  }
  const call = caller(ctx.conn);
  const sftp = await ctx.conn.sftp();
  let handle: Buffer | undefined;
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size !== size) throw new LocalReadError(rel, 'changed', `'${rel}' changed while it was sent`);
    handle = await call<Buffer>((cb) => sftp.open(temp, 'r+', cb)).catch((e: Error) => {
      throw new DeltaFallback(rel, `the temporary copy cannot be opened (${e.message})`);
    });
    const h = handle;
    const window = new Window(SFTP_WINDOW);
    let written = 0;
    for (const [start, end] of ranges) {
      for (let pos = start; pos < end; pos += READ_PIECE) {
        const buf = Buffer.allocUnsafe(Math.min(READ_PIECE, end - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead !== buf.length) throw new LocalReadError(rel, 'changed', `'${rel}' shrank while it was sent`);
        for (let off = 0; off < buf.length; off += SFTP_CHUNK) {
          const len = Math.min(SFTP_CHUNK, buf.length - off);
          const at = pos + off;
          await window.add(async () => {
            await call<void>((cb) => sftp.write(h, buf, off, len, at, (err) => cb(err, undefined)));
            written += len;
            ctx.onBytes?.(len);
          });
        }
      }
    }
    // The exact size, the mode and the mtime, in order after the writes (no round trip of their own).
    const mtime = Math.floor(entry.mtimeMs / 1000);
    await window.add(() => call<void>((cb) => sftp.fsetstat(h, { size, mode: entry.mode, atime: mtime, mtime }, (err) => cb(err, undefined))));
    await window.drain();
    return written;
  } catch (e) {
    if (e instanceof LocalReadError || e instanceof DeltaFallback || !ctx.conn.alive) throw e;
    throw new DeltaFallback(rel, `writing the changed blocks failed (${(e as Error).message})`);
  } finally {
    await fh.close();
    if (handle) {
      const h = handle;
      await call<void>((cb) => sftp.close(h, (err) => cb(err, undefined))).catch(() => undefined);
    }
  }
}
