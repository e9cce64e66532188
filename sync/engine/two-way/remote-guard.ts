/**
 * A push over a remote file the container may be writing at that moment. Just before the writes, each
 * remote file about to be replaced gets a hard link beside it (`.kubedev-guard-*`, an internal name the
 * listing never reports as a path) and the link's stat is compared with the listing: a file changed
 * since is not pushed (the next pass sees it; then a conflict). After the writes, each guard is looked
 * at again: a container process that wrote the file in place while the runner was uploading (the
 * usual `>`, O_TRUNC on the same inode) wrote into the inode the guard still holds, so its bytes are
 * not lost — they are kept beside the file as `<stem>.conflict-container-<time><ext>`, which syncs to
 * the laptop like any new file, and the session warns. Left open: a container write that replaces the
 * file by rename in the same milliseconds (a new inode, unlinked by the runner's rename).
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { rp } from '../apply-common';
import { Entry, shQuote } from '../tree';
import { conflictCopyName } from './local-write';
import { RemoteRun } from './remote-list';

export interface Guards {
  /** Files changed since the listing: not pushed. */
  readonly moved: Set<string>;
  /** rel -> the guard's path (relative to the root). */
  readonly held: Map<string, string>;
}

const stat = (p: string): string => `find ${shQuote(p)} -maxdepth 0 -printf '%s\\0%T@\\0%m\\0' 2>/dev/null || printf 'gone\\0\\0\\0'`;

function parseStats(out: Buffer, n: number): string[][] {
  const f = out.toString('utf8').split('\0');
  const rows: string[][] = [];
  for (let i = 0; i < n; i++) rows.push(f.slice(i * 3, i * 3 + 3));
  return rows;
}

function same(row: string[] | undefined, e: Entry | undefined): boolean {
  return !!row && !!e && row[0] !== 'gone' && Number(row[0]) === e.size && Number(row[1]) * 1000 === e.mtimeMs && parseInt(row[2], 8) === e.mode;
}

/** Links a guard to each of `rels` (remote files about to be replaced) and says which changed since the listing. */
export async function guardOverwrites(run: RemoteRun, root: string, rels: readonly string[], listed: (rel: string) => Entry | undefined): Promise<Guards> {
  const moved = new Set<string>();
  const held = new Map<string, string>();
  if (rels.length === 0) return { moved, held };
  const stem = `.kubedev-guard-${crypto.randomBytes(6).toString('hex')}-`;
  const guards = rels.map((rel, i) => path.posix.join(path.posix.dirname(rel), `${stem}${i}`));
  const lines = [`cd ${shQuote(root)} || exit 3`];
  rels.forEach((rel, i) => lines.push(`if ln -- ${shQuote(rp(rel))} ${shQuote(rp(guards[i]))} 2>/dev/null; then ${stat(rp(guards[i]))}; else printf 'gone\\0\\0\\0'; fi`));
  const res = await run(lines.join('\n'));
  const rows = parseStats(res.stdout, rels.length);
  const drop: string[] = [];
  rels.forEach((rel, i) => {
    if (same(rows[i], listed(rel))) held.set(rel, guards[i]);
    else {
      moved.add(rel);
      drop.push(guards[i]);
    }
  });
  if (drop.length > 0) await run(`cd ${shQuote(root)} && rm -f -- ${drop.map((g) => shQuote(rp(g))).join(' ')}`);
  return { moved, held };
}

/**
 * After the writes: a guard whose inode changed since the listing kept a container's in-place write —
 * it becomes `<stem>.conflict-container-<time><ext>` (never over an existing name); the others go.
 * Returns the files whose container version was kept that way, with the copy's name.
 */
export async function releaseGuards(run: RemoteRun, root: string, g: Guards, listed: (rel: string) => Entry | undefined): Promise<Map<string, string>> {
  const kept = new Map<string, string>();
  if (g.held.size === 0) return kept;
  const rels = [...g.held.keys()];
  const cd = `cd ${shQuote(root)} || exit 3`;
  const res = await run([cd, ...rels.map((rel) => stat(rp(g.held.get(rel) as string)))].join('\n'));
  const rows = parseStats(res.stdout, rels.length);
  const lines = [cd];
  rels.forEach((rel, i) => {
    const guard = rp(g.held.get(rel) as string);
    if (!same(rows[i], listed(rel)) && rows[i]?.[0] !== 'gone') {
      const copy = conflictCopyName(rel).replace('.conflict-remote-', '.conflict-container-');
      kept.set(rel, copy);
      lines.push(`ln -- ${shQuote(guard)} ${shQuote(rp(copy))} 2>/dev/null || ln -- ${shQuote(guard)} ${shQuote(rp(`${copy}-${i}`))}`);
    }
    lines.push(`rm -f -- ${shQuote(guard)}`);
  });
  await run(lines.join('\n'));
  return kept;
}
