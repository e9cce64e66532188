/**
 * Many remote files fetched at once: one `tar -c` on the server over one exec channel (the list of
 * names on stdin, NUL-separated), read in-process with tar-stream; each member is written to a
 * temporary file by fetchFile — the same checks as one file fetched over SFTP (real folders above it,
 * O_EXCL | O_NOFOLLOW temporary file, exact size) — and handed to the pass, which puts it in place
 * once the server says it was not written while tar read it (a tar reading a file rewritten in place
 * sends torn bytes; one truncated meanwhile, zeros). A member missing from the stream (gone or
 * unreadable on the server) is left for the next pass.
 *
 * Files that are hard links of one another (a package manager's store) each come whole
 * (`--hard-dereference`): as tar's link members they would be missing, one more pass per link.
 *
 * tar's messages name files as they are (`--quoting-style=literal`, in English: `LC_ALL=C`): the pass
 * finds a file tar could not open by its name there (its default style escapes `:`, `\\`, a newline and,
 * in the C locale, every non-ASCII byte, and such a file would read as changed meanwhile, pass after pass).
 *
 * The `tar` runs on a channel opened ahead of time (TarStandby): it waits for one line on stdin before
 * it starts, so the channel's set-up (a fork on the server, several round trips) is not paid while a
 * pull waits.
 */
import { ClientChannel } from 'ssh2';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { Connection } from '../transport';
import { enterRoot, samePlace, throwIfMoved } from '../remote-place';
import { ChangedMeanwhile, dropFetched, fetchBytes, fetchFile, Fetched } from './local-write';
import { RemoteRun, stillAsListed, unlessDropped } from './remote-list';
import { Sig } from './state-store';

/** Members up to this size are held in memory and placed in one go. */
const IN_MEMORY = 4 * 1024 * 1024;

export interface BulkItem {
  readonly rel: string;
  readonly r: Sig;
  readonly l?: Sig;
}

/**
 * One `tar -c` channel kept open, waiting; `take()` hands it over and opens the next in the background.
 * Its command enters the root where the last listing found it (remote-place.ts: elsewhere, tar reads
 * nothing and exits ROOT_MOVED_EXIT); a channel opened for another place than the listing's now is
 * closed and a fresh one opened.
 */
export class TarStandby {
  private next?: Promise<ClientChannel>;
  /** The place the waiting channel's command checks. */
  private nextPlace?: Buffer;

  constructor(private readonly conn: Connection, private readonly remoteRoot: string) {}

  private open(): Promise<ClientChannel> {
    const place = this.conn.listedRoots.get(this.remoteRoot);
    this.nextPlace = place;
    const p = this.conn.channel(`IFS= read -r _ || exit 0\n${enterRoot(this.remoteRoot, place, 'exit 3')}\nLC_ALL=C exec tar -c -f - --quoting-style=literal --hard-dereference --no-recursion --null -T -`).then((ch) => {
      let closed = false;
      ch.once('close', () => {
        closed = true;
        if (this.next === p) this.next = undefined;
      });
      ch.on('error', () => undefined);
      return Object.assign(ch, { isClosed: () => closed });
    });
    p.catch(() => {
      if (this.next === p) this.next = undefined;
    });
    return p;
  }

  /** Opens the waiting channel now (after the remote root exists). */
  warm(): void {
    if (this.conn.alive) this.next ??= this.open();
  }

  /** A started `tar` channel (stdin: the NUL-separated names, then end). */
  async take(): Promise<ClientChannel> {
    if (this.next && !samePlace(this.nextPlace, this.conn.listedRoots.get(this.remoteRoot))) this.close();
    let ch = await (this.next ?? this.open()).catch(() => undefined);
    this.next = undefined;
    if (!ch || (ch as ClientChannel & { isClosed(): boolean }).isClosed()) ch = await this.open(); // one fresh try; its error reaches the pass
    this.warm();
    ch.write('\n');
    return ch;
  }

  close(): void {
    const p = this.next;
    this.next = undefined;
    void p?.then((ch) => ch.close(), () => undefined);
  }
}

/** Fetches `items` (files) with one tar stream into temporary files; calls `done` or `failed` for each member seen. */
export async function pullFilesTar(conn: Connection, tarChannel: () => Promise<ClientChannel>, localRoot: string, items: readonly BulkItem[], done: (f: Fetched) => void, failed: (rel: string, e: unknown) => void, remoteRoot?: string): Promise<{ stderr: string }> {
  const byName = new Map(items.map((i) => [`./${i.rel}`, i]));
  const ch = await tarChannel();
  let stderr = '';
  let code: number | null = null;
  ch.stderr.on('data', (b: Buffer) => {
    if (stderr.length < 16 * 1024) stderr += b.toString('utf8');
  });
  // Its exit code comes before the channel closes (ssh2 emits 'exit' first), not always before its output ends.
  ch.once('exit', (c: number | null) => (code = c));
  const closed = new Promise<void>((resolve) => ch.once('close', () => resolve()));
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const item = byName.get(header.name);
    if (!item || header.type !== 'file') {
      stream.on('end', () => next());
      stream.resume();
      return;
    }
    if (item.r.s <= IN_MEMORY) {
      // Small members are gathered and placed synchronously: no promise or async iteration per file.
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        try {
          done(fetchBytes(chunks, localRoot, item.rel, item.r, item.l));
        } catch (e) {
          failed(item.rel, e);
        }
        next();
      });
      return;
    }
    fetchFile(stream, localRoot, item.rel, item.r, item.l).then(
      (f) => {
        done(f);
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
  if (remoteRoot !== undefined && code === null) await unlessDropped(conn, closed);
  if (remoteRoot !== undefined) throwIfMoved(remoteRoot, { code, stderr });
  return { stderr };
}

/** What fetchAsListed needs of the pass. */
export interface FetchHost {
  readonly localRoot: string;
  readonly remoteRoot: string;
  readonly run: RemoteRun;
  tar(): Promise<ClientChannel>;
  warn(message: string): void;
}

/**
 * The remote files of `items` fetched in one tar stream (the pass's standing `tar -c`) into temporary
 * files beside their targets; returns those the server still holds as listed once read — the caller
 * puts each in place or drops it. GNU tar opens each file O_NONBLOCK | O_NOFOLLOW and archives what it
 * finds as what it is: a file the container replaced since the listing by a FIFO or a link is never
 * read (an open(2) of a FIFO would wait for a writer), it comes as another type and is left for the
 * next pass (`skip` with ChangedMeanwhile), as is one written, truncated or replaced while read
 * (stillAsListed). A file tar could not read (its permissions) is a warning naming it.
 */
export async function fetchAsListed(h: FetchHost, conn: Connection, items: readonly BulkItem[], listed: (rel: string) => Sig | undefined, skip: (rel: string, e: unknown) => void): Promise<Fetched[]> {
  if (items.length === 0) return [];
  const got: Fetched[] = [];
  const seen = new Set<string>();
  // A member's failure is handed to `skip` once the stream is read, not inside the stream's handlers:
  // `skip` throws what it cannot pass over (the connection lost mid-member), and thrown there it would
  // be nobody's to catch.
  const failed: [string, unknown][] = [];
  // A member finished after the fetch gave up (the connection lost mid-stream: the extract may still
  // be writing one) is dropped at once, not left as a temporary file in the developer's folder.
  let over = false;
  try {
    const { stderr } = await pullFilesTar(conn, () => h.tar(), h.localRoot, items, (f) => {
      if (over) return dropFetched(f);
      seen.add(f.rel);
      got.push(f);
    }, (rel, e) => {
      seen.add(rel);
      failed.push([rel, e]);
    }, h.remoteRoot);
    for (const [rel, e] of failed) skip(rel, e);
    for (const { rel } of items) {
      if (seen.has(rel)) continue;
      const why = unreadable(stderr, rel);
      if (why) h.warn(`'${rel}' could not be read in the container (${why}); it is left as it is and tried again next pass. Make it readable by the SSH user there`);
      else skip(rel, new ChangedMeanwhile(`remote '${rel}' is no longer the file listed; looked at again next pass`));
    }
    const asListed = got.length > 0 ? await stillAsListed(h.run, h.remoteRoot, got.map((f) => f.rel), listed, conn.listedRoots.get(h.remoteRoot)) : new Set<string>();
    const ok: Fetched[] = [];
    for (const f of got.splice(0)) {
      if (asListed.has(f.rel)) ok.push(f);
      else {
        dropFetched(f);
        skip(f.rel, new ChangedMeanwhile(`remote '${f.rel}' changed while it was fetched; fetched again next pass`));
      }
    }
    return ok;
  } finally {
    over = true;
    for (const f of got) dropFetched(f);
  }
}

/** What GNU tar said of `rel` when it could not read it (`tar: ./rel: Cannot open: Permission denied`), if anything. */
function unreadable(stderr: string, rel: string): string | undefined {
  const head = `tar: ./${rel}: Cannot open: `;
  const at = stderr.indexOf(head);
  if (at < 0) return undefined;
  const end = stderr.indexOf('\n', at + head.length);
  return stderr.slice(at + head.length, end < 0 ? undefined : end);
}
