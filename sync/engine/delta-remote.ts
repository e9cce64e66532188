/**
 * The server's side of a changed-blocks transfer, with stock tools only (sh and coreutils, GNU find):
 *
 * - `prepare`: one `sh` copies the remote file to a temporary name beside it (`cp`, in the background)
 *   while `split` cuts it into block files in a temporary folder that one `cksum` then checksums: one
 *   process per step, not one per block (`split --filter` forks a shell per block: 4 ms each here).
 * - the runner writes the differing blocks into the copy at their offsets (SFTP, pipelined).
 * - `commit`: one `sh` sets the exact size, checksums the whole copy, compares it with the local file's
 *   checksum, checks that the remote file is still the one that was copied, gives the copy the file's
 *   mode and mtime and renames it over the file. On any mismatch it removes the copy and says why.
 *
 * Temporary names start with `.kubedev-`: a killed run's leftovers are deleted by the next pass.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { SFTPWrapper } from 'ssh2';
import { Call } from './apply-sftp';
import { Connection } from './transport';
import { shQuote } from './tree';

/** A remote block: `cksum` of its bytes and its length. */
export interface BlockSum {
  readonly sum: number;
  readonly size: number;
}

export interface Prepared {
  /** The temporary copy's absolute path. */
  readonly temp: string;
  /** `size mtime` of the remote file as `find -printf '%s %T@'` printed it when it was copied. */
  readonly seen: string;
  readonly blocks: BlockSum[];
}

/** Something the changed-blocks path cannot handle: the caller sends the file whole instead. */
export class DeltaFallback extends Error {
  constructor(readonly rel: string, why: string) {
    super(`changed-blocks transfer of '${rel}' not possible (${why})`);
    this.name = 'DeltaFallback';
  }
}

const MARK = 'KUBEDEV-DELTA';

export function tempBeside(remoteAbs: string): string {
  return path.posix.join(path.posix.dirname(remoteAbs), `.kubedev-${crypto.randomBytes(6).toString('hex')}`);
}

/** The `prepare` script: copy, block checksums, the file's size and mtime, after a marker line. */
export function prepareScript(remoteAbs: string, temp: string, blockSize: number): string {
  const blocks = `${temp}.blocks`;
  return [
    `f=${shQuote(remoteAbs)} t=${shQuote(temp)} d=${shQuote(blocks)} ok=`,
    // The block files are removed in the background: the runner need not wait for that.
    `trap '[ -n "$ok" ] || rm -f -- "$t"; rm -rf -- "$d" </dev/null >/dev/null 2>&1 &' EXIT`,
    'set -e',
    `s=$(find "$f" -maxdepth 0 -type f -printf '%s %T@')`,
    '[ -n "$s" ] || { echo "not a regular file" >&2; exit 65; }',
    'mkdir -m 700 -- "$d"',
    'cp -- "$f" "$t" & c=$!',
    `split -a 6 -d -b ${blockSize} -- "$f" "$d/"`,
    'wait $c',
    'chmod u+w -- "$t"',
    `printf '%s\\n%s\\n' ${MARK} "$s"`,
    'cd "$d"',
    '[ -z "$(ls -A)" ] || cksum -- *',
    'ok=1',
    '',
  ].join('\n');
}

/** Parses `prepare`'s output: the marker, `size mtime`, then `sum size name` per block in order. */
export function parsePrepared(rel: string, temp: string, out: string, blockSize: number): Prepared {
  const lines = out.split('\n');
  const at = lines.indexOf(MARK);
  if (at < 0 || at + 1 >= lines.length) throw new DeltaFallback(rel, 'the server printed no block checksums');
  const seen = lines[at + 1];
  const size = Number(seen.split(' ')[0]);
  const blocks: BlockSum[] = [];
  for (const line of lines.slice(at + 2)) {
    if (line === '') continue;
    const m = /^(\d+) (\d+) (\d{6,})$/.exec(line);
    if (!m || Number(m[3]) !== blocks.length) throw new DeltaFallback(rel, `unexpected checksum line '${line.slice(0, 80)}'`);
    blocks.push({ sum: Number(m[1]), size: Number(m[2]) });
  }
  const total = blocks.reduce((n, b) => n + b.size, 0);
  if (!Number.isSafeInteger(size) || total !== size || blocks.some((b, i) => b.size !== Math.min(blockSize, size - i * blockSize))) {
    throw new DeltaFallback(rel, `the block checksums cover ${total} bytes of ${size}`);
  }
  return { temp, seen, blocks };
}

/** Runs `prepare` for the file at `remoteAbs`. */
export async function prepare(conn: Connection, rel: string, remoteAbs: string, blockSize: number, signal?: AbortSignal): Promise<Prepared> {
  const temp = `${tempBeside(remoteAbs)}.tmp`;
  const r = await conn.exec('sh -s', prepareScript(remoteAbs, temp, blockSize), { signal });
  if (r.code !== 0) throw new DeltaFallback(rel, `the server could not copy and checksum it: ${r.stderr.trim().split('\n')[0] || `exit ${r.code}`}`);
  return parsePrepared(rel, temp, r.stdout.toString('utf8'), blockSize);
}

export interface Commit {
  readonly size: number;
  /** `cksum` of the whole local file, as computed while it was read. */
  readonly sum: number;
  readonly mode: number;
  /** Whole seconds. */
  readonly mtime: number;
}

/** The `commit` script: exact size, whole-file check, remote unchanged, mode and mtime, rename. */
export function commitScript(remoteAbs: string, p: Prepared, c: Commit): string {
  return [
    `f=${shQuote(remoteAbs)} t=${shQuote(p.temp)}`,
    `no() { rm -f -- "$t"; printf '%s %s\\n' ${MARK} "$1"; exit 3; }`,
    `truncate -s ${c.size} -- "$t" || no truncate`,
    'set -- $(cksum < "$t")',
    `[ "$1 $2" = ${shQuote(`${c.sum} ${c.size}`)} ] || no "verify $1 $2"`,
    `[ "$(find "$f" -maxdepth 0 -type f -printf '%s %T@')" = ${shQuote(p.seen)} ] || no remote-changed`,
    `chmod ${c.mode.toString(8)} -- "$t" || no chmod`,
    `touch -d @${c.mtime} -- "$t" || no touch`,
    'mv -fT -- "$t" "$f" || no rename',
    `printf '%s ok\\n' ${MARK}`,
    '',
  ].join('\n');
}

/** Runs `commit`; throws DeltaFallback when the server refused (the copy is then removed). */
export async function commit(conn: Connection, rel: string, remoteAbs: string, p: Prepared, c: Commit, signal?: AbortSignal): Promise<void> {
  const r = await conn.exec('sh -s', commitScript(remoteAbs, p, c), { signal });
  const said = r.stdout.toString('utf8').split('\n').find((l) => l.startsWith(`${MARK} `))?.slice(MARK.length + 1);
  if (r.code !== 0 || said !== 'ok') throw new DeltaFallback(rel, `the result was not put in place: ${said ?? (r.stderr.trim() || `exit ${r.code}`)}`);
}

/** Removes the temporary copy (best effort: a leftover is removed by the next pass anyway). */
export async function discard(call: Call, sftp: SFTPWrapper, p: Prepared): Promise<void> {
  await call<void>((cb) => sftp.unlink(p.temp, (err) => cb(err, undefined))).catch(() => undefined);
}
