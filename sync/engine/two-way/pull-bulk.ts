/**
 * Many remote files fetched at once: one `tar -c` on the server over one exec channel (the list of
 * names on stdin, NUL-separated), read in-process with tar-stream; each member is put in place by
 * placeFile — the same checks as one file fetched over SFTP (real folders above it, O_EXCL |
 * O_NOFOLLOW temporary file, exact size, the local side still as classified, rename). A member missing
 * from the stream (gone or unreadable on the server) is left for the next pass.
 */
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { Connection } from '../transport';
import { shQuote } from '../tree';
import { placeFile } from './local-write';
import { unlessDropped } from './remote-list';
import { Sig } from './state-store';

export interface BulkItem {
  readonly rel: string;
  readonly r: Sig;
  readonly l?: Sig;
}

/** Fetches `items` (files) with one tar stream; calls `done` or `failed` for each member seen. */
export async function pullFilesTar(conn: Connection, remoteRoot: string, localRoot: string, items: readonly BulkItem[], done: (rel: string, sig: Sig) => void, failed: (rel: string, e: unknown) => void): Promise<{ stderr: string }> {
  const byName = new Map(items.map((i) => [`./${i.rel}`, i]));
  const ch = await conn.channel(`cd ${shQuote(remoteRoot)} && exec tar -c -f - --no-recursion --null -T -`);
  let stderr = '';
  ch.stderr.on('data', (b: Buffer) => {
    if (stderr.length < 16 * 1024) stderr += b.toString('utf8');
  });
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const item = byName.get(header.name);
    if (!item || header.type !== 'file') {
      stream.on('end', () => next());
      stream.resume();
      return;
    }
    placeFile(stream, localRoot, item.rel, item.r, item.l).then(
      (sig) => {
        done(item.rel, sig);
        next();
      },
      (e) => {
        failed(item.rel, e);
        next();
      },
    );
  });
  ch.end(Buffer.from(items.map((i) => `./${i.rel}\0`).join('')));
  await unlessDropped(conn, pipeline(ch, extract));
  return { stderr };
}
