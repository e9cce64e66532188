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
 *
 * A file whose guard cannot be linked (its folder is read-only for the SSH user, or the kernel refuses a
 * hard link to another user's file: fs.protected_hardlinks) is still pushed when its own stat matches the
 * listing, and the caller warns that it went without a guard, naming the path and the fix (it is never
 * read as "changed since" and silently left unsent).
 *
 * The guards are linked just before the writes, not with the listing: a container save by rename
 * between the listing and the writes (a new inode) must be seen as "changed since the listing" here,
 * and a guard made earlier would still hold the old inode. The release compares on the server and
 * keeps, removes and reports in one command.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { enterRoot as enterPlace, throwIfMoved } from '../remote-place';
import { Entry, shQuote } from '../tree';
import { conflictCopyName } from './local-write';
import type { RemoteRun } from './remote-list';
import { helperReleaseLines } from './swap-helper';

export interface Guards {
  /** Files changed since the listing: not pushed. */
  readonly moved: Set<string>;
  /** rel -> the guard's path (relative to the root). */
  readonly held: Map<string, string>;
  /** rel -> the guard's stat when it was made (`size/mtime/mode`, as find prints them). */
  readonly seen: Map<string, string>;
  /** Files pushed without a guard (it could not be linked) -> why, as a sentence naming the fix. */
  readonly unguarded: Map<string, string>;
  /**
   * Swapped files (push-inline.ts) -> their `ino/size/mtime/mode` just after the swap: the release looks at
   * each file in the same find as its guard, before the guard goes, and reports what it found (`onFile`).
   */
  readonly after?: Map<string, string>;
}

/** Prints the stat row of `p` (size, mtime, mode, then `how`; NUL-terminated), or a 'gone' row. */
const stat = (p: string, how: string): string => `find ${p} -maxdepth 0 -printf '%s\\0%T@\\0%m\\0${how}\\0' 2>/dev/null || printf 'gone\\0\\0\\0\\0'`;

/**
 * The start of every guard command: the physical root, as `$R`; with `place` (where the listing found
 * it: remote-place.ts), the root must lead there, or the command exits ROOT_MOVED_EXIT having linked,
 * copied or removed nothing (the pass halts: throwIfMoved).
 */
export const enterRoot = (root: string, place?: Buffer): string => `${enterPlace(root, place, 'exit 3')}\nR=$PWD`;

/**
 * `body` run in the folder of `rel`, entered physically and checked to be that folder inside the root
 * (`$R`): a folder the container replaced by a symlink since the listing is never entered (`otherwise`
 * runs), so no guard, copy or removal lands outside the root. `body` names files by bare name (`bare`).
 */
export function inFolderOf(rel: string, body: string, otherwise = ':'): string {
  const d = path.posix.dirname(rel);
  const enter = d === '.' ? 'cd "$R"' : `cd -P -- "$R"/${shQuote(d)} 2>/dev/null && [ "$PWD" = "$R"/${shQuote(d)} ]`;
  return `if ${enter}; then ${body}; else ${otherwise}; fi`;
}

export const bare = (rel: string): string => shQuote(`./${path.posix.basename(rel)}`);

/**
 * A shell line linking a guard to `rel` and printing its stat row: `g` guarded; when the link fails on a
 * regular file that is there, the file's own row with `w` (its folder is not writable) or `l` (the link
 * was refused); 'gone' when the file is not there (or its folder is no longer a folder inside the root).
 */
function guardLine(rel: string, guard: string): string {
  const f = bare(rel);
  const gone = "printf 'gone\\0\\0\\0\\0'";
  return inFolderOf(rel, `if ln -- ${f} ${bare(guard)} 2>/dev/null; then ${stat(bare(guard), 'g')}; elif [ -f ${f} ] && [ ! -L ${f} ]; then if [ -w . ]; then ${stat(f, 'l')}; else ${stat(f, 'w')}; fi; else ${gone}; fi`, gone);
}

/**
 * The name the release of a swapped file's guard makes (empty, then removed) just before it looks at the
 * file: its creation, seen by the server's watcher, marks where the events made before that look end.
 */
export function lookMarkOf(guard: string): string {
  return guard.replace(/\.kubedev-guard-([0-9a-f]+-\d+)$/, '.kubedev-look-$1');
}

/** A fresh guard name beside `rel` (an internal name: never listed as a path, never sent). */
export function guardNames(rels: readonly string[]): string[] {
  const stem = `.kubedev-guard-${crypto.randomBytes(6).toString('hex')}-`;
  return rels.map((rel, i) => path.posix.join(path.posix.dirname(rel), `${stem}${i}`));
}

function parseStats(out: Buffer | string, n: number): string[][] {
  const f = out.toString('utf8').split('\0');
  const rows: string[][] = [];
  for (let i = 0; i < n; i++) rows.push(f.slice(i * 4, i * 4 + 4));
  return rows;
}

function same(row: readonly string[] | undefined, e: Entry | undefined): boolean {
  return !!row && !!e && row[0] !== 'gone' && Number(row[0]) === e.size && Number(row[1]) * 1000 === e.mtimeMs && parseInt(row[2], 8) === e.mode;
}

/** Links a guard to each of `rels` (remote files about to be replaced) and says which changed since the listing. */
export async function guardOverwrites(run: RemoteRun, root: string, rels: readonly string[], listed: (rel: string) => Entry | undefined, place?: Buffer): Promise<Guards> {
  const moved = new Set<string>();
  const held = new Map<string, string>();
  const seen = new Map<string, string>();
  const unguarded = new Map<string, string>();
  const drop: string[] = [];
  const decide = (rel: string, guard: string, row: readonly string[] | undefined): void => {
    if (same(row, listed(rel)) && row?.[3] !== 'g') unguarded.set(rel, unguardedWhy(rel, row?.[3]));
    else if (same(row, listed(rel))) {
      held.set(rel, guard);
      seen.set(rel, (row as string[]).slice(0, 3).join('/'));
    } else {
      moved.add(rel);
      drop.push(guard);
    }
  };
  if (rels.length > 0) {
    const guards = guardNames(rels);
    const res = await run([enterRoot(root, place), ...rels.map((rel, i) => guardLine(rel, guards[i]))].join('\n'));
    throwIfMoved(root, res);
    const rows = parseStats(res.stdout, rels.length);
    rels.forEach((rel, i) => decide(rel, guards[i], rows[i]));
  }
  dropGuards(run, root, drop, place);
  return { moved, held, seen, unguarded };
}

/** The warning for a file pushed without its guard: what it means and the fix. */
function unguardedWhy(rel: string, how: string | undefined): string {
  const dir = path.posix.dirname(rel);
  const risk = 'so a container write to the file during the upload would not have been kept';
  return how === 'w'
    ? `'${rel}' was sent without its guard: its container folder '${dir}' is not writable by the SSH user, ${risk}. To have it guarded, make the folder writable in the container (chmod u+w ${shQuote(dir)})`
    : `'${rel}' was sent without its guard: the server refused a hard link to it (it belongs to another user and fs.protected_hardlinks is on), ${risk}. To have it guarded, run the container's process and the sidecar as the same user`;
}

/** Removes guards no push needs, without waiting (one left by a dropped connection is a leftover the next listing reports and removes). */
function dropGuards(run: RemoteRun, root: string, guards: readonly string[], place?: Buffer): void {
  if (guards.length > 0) run([enterRoot(root, place), ...guards.map((g) => inFolderOf(g, `rm -f -- ${bare(g)}`))].join('\n')).catch(() => undefined);
}

/**
 * After the writes, in one round trip: a guard whose stat changed since it was made kept a container's
 * in-place write — it becomes `<stem>.conflict-container-<time><ext>` (never over an existing name);
 * every guard goes. Returns the files whose container version was kept that way, with the copy's name.
 */
export async function releaseGuards(run: RemoteRun, root: string, g: Guards, onFile?: (rel: string, stat: string) => void, helper?: { rootId: string }, place?: Buffer): Promise<Map<string, string>> {
  const kept = new Map<string, string>();
  if (g.held.size === 0) return kept;
  const rels = [...g.held.keys()];
  const copies = rels.map((rel) => conflictCopyName(rel).replace('.conflict-remote-', '.conflict-container-'));
  // A helper that is gone must fail its printf (EPIPE: the sh lines run instead), not end the command.
  const lines = [enterRoot(root, place), "NL='\n'", ...(helper ? ["trap '' PIPE"] : [])];
  rels.forEach((rel, i) => {
    const guard = bare(g.held.get(rel) as string);
    const copy = `./${path.posix.basename(copies[i])}`;
    // A swapped file is looked at by the guard's own find (no process more), after its mark is made.
    const mark = bare(lookMarkOf(g.held.get(rel) as string));
    const look = g.after?.has(rel)
      ? [
          // Never through a name made a symlink meanwhile (set -C: not an existing name), and a mark that
          // cannot be made must not end the command (`command`: the redirection's failure is no exit).
          `set -C; command : > ${mark} 2>/dev/null; set +C`,
          `r=$(find ${guard} ${bare(rel)} -maxdepth 0 \\( -name ${shQuote(path.posix.basename(g.held.get(rel) as string))} -printf 'G%s/%T@/%m\\n' \\) -o \\( -type f -printf 'F%i/%s/%T@/%m\\n' \\) 2>/dev/null)`,
          'now=${r%%"${NL}F"*}; case $now in G*) now=${now#G};; *) now=;; esac',
          `case $r in *"\${NL}F"*) printf 'file ${i} %s\\n' "\${r##*"\${NL}F"}";; F*) printf 'file ${i} %s\\n' "\${r#F}";; *) printf 'file ${i} gone\\n';; esac`,
        ]
      : [`now=$(find ${guard} -maxdepth 0 -printf '%s/%T@/%m' 2>/dev/null)`];
    const body = [
      ...look,
      // A copy already linked to this guard (a swap helper that ended after it made it) is reported, not made twice.
      `if [ -n "$now" ] && [ "$now" != ${shQuote(g.seen.get(rel) as string)} ]; then if [ ${shQuote(copy)} -ef ${guard} ]; then echo "kept ${i}"; elif [ ${shQuote(`${copy}-${i}`)} -ef ${guard} ]; then echo "kept-${i} ${i}"; else { ln -- ${guard} ${shQuote(copy)} 2>/dev/null && echo "kept ${i}"; } || { ln -- ${guard} ${shQuote(`${copy}-${i}`)} && echo "kept-${i} ${i}"; }; fi; fi`,
      `rm -f -- ${guard}${g.after?.has(rel) ? ` ${mark}` : ''}`,
    ].join('\n');
    // A swapped file's release by the swap helper (swap-helper.ts): the same steps, no process.
    const held = g.held.get(rel) as string;
    const viaHelper = helper && g.after?.has(rel)
      ? helperReleaseLines({ root, rootId: helper.rootId, rel, guard: held, mark: lookMarkOf(held), seen: g.seen.get(rel) as string, copy: path.posix.basename(copies[i]), i }, body)
      : body;
    lines.push(inFolderOf(rel, viaHelper));
  });
  const res = await run(lines.join('\n'));
  throwIfMoved(root, res);
  for (const line of res.stdout.toString('utf8').split('\n')) {
    const m = /^kept(-\d+)? (\d+)$/.exec(line);
    if (m) kept.set(rels[Number(m[2])], m[1] ? `${copies[Number(m[2])]}${m[1]}` : copies[Number(m[2])]);
    const f = /^file (\d+) (.*)$/.exec(line);
    if (f && rels[Number(f[1])] !== undefined) onFile?.(rels[Number(f[1])], f[2]);
  }
  return kept;
}
