/**
 * Sends byte ranges of a local file to the server's changed-blocks script (delta-remote.ts), which
 * writes each into the temporary copy at the same offset: a `w OFFSET LENGTH` line then the bytes, on
 * the script's stdin, as fast as the channel's window allows (no round trip per range or per write).
 * The local file is read again for exactly those ranges, a block at a time, and must still be a file of
 * its planned size with each block's hash as first read; a short read or another hash is a
 * LocalReadError ('changed'), never padding. The server forks a `dd` per range:
 * ranges are joined across their smallest gaps down to MAX_RANGES.
 */
import * as fs from 'node:fs';
import { BlockHashKind, blockHasher } from './block-hash';
import { BlockSum, RemoteDelta } from './delta-remote';
import { LocalReadError } from './local-read';

/** At most this many ranges (a `dd` process each on the server). */
export const MAX_RANGES = 64;

/** `ranges` (sorted, disjoint) with the smallest gaps closed until at most `max` remain. */
export function joinRanges(ranges: readonly [number, number][], max = MAX_RANGES): [number, number][] {
  if (ranges.length <= max) return ranges.map(([a, b]) => [a, b]);
  const gaps = ranges.slice(1).map((r, i) => ({ i, len: r[0] - ranges[i][1] }));
  const close = new Set(gaps.sort((x, y) => x.len - y.len || x.i - y.i).slice(0, ranges.length - max).map((g) => g.i));
  const out: [number, number][] = [[ranges[0][0], ranges[0][1]]];
  for (let i = 1; i < ranges.length; i++) {
    if (close.has(i - 1)) out[out.length - 1][1] = ranges[i][1];
    else out.push([ranges[i][0], ranges[i][1]]);
  }
  return out;
}

/** The local file as it was hashed: its planned size, the block size, the hash and each block's hash. */
export interface Hashed {
  readonly size: number;
  readonly blockSize: number;
  readonly kind: BlockHashKind;
  readonly blocks: readonly BlockSum[];
}

/**
 * Sends `ranges` ([start, end) of the local file `abs`, whole blocks) block by block, each read again
 * and checked against its hash from the first read (a LocalReadError if it changed since); returns
 * the bytes sent.
 */
export async function sendRanges(remote: RemoteDelta, abs: string, rel: string, h: Hashed, ranges: readonly [number, number][], onBytes?: (n: number) => void): Promise<number> {
  const changed = (): LocalReadError => new LocalReadError(rel, 'changed', `'${rel}' changed while it was sent`);
  const hash = await blockHasher(h.kind);
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(abs, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    throw new LocalReadError(rel, 'changed', `'${rel}' vanished while it was sent`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size !== h.size) throw changed();
    let written = 0;
    for (const [start, end] of ranges) {
      await remote.send(`w ${start} ${end - start}\n`);
      for (let pos = start; pos < end; pos += h.blockSize) {
        const i = pos / h.blockSize;
        const buf = Buffer.allocUnsafe(Math.min(h.blockSize, end - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos).catch((e: Error) => {
          throw new LocalReadError(rel, 'unreadable', `'${rel}' cannot be read again for its changed blocks (${e.message})`);
        });
        if (bytesRead !== buf.length || buf.length !== h.blocks[i]?.size) throw changed();
        if (hash(buf) !== h.blocks[i].sum) throw changed();
        await remote.send(buf);
        written += buf.length;
        onBytes?.(buf.length);
      }
    }
    return written;
  } finally {
    await fh.close();
  }
}
