/**
 * The bulk path's last step: the staged items are renamed to their real names by one remote process.
 * `perl` (perl-base is Essential in Debian and Ubuntu: every stock image has it) does one rename(2) per
 * item: a branch switch's 6,000 moves took 0.5 s as pipelined SFTP renames at 0 ms round trip (6 round
 * trips and more at 50 ms) and over 1 s as one `mv` process per target folder; in one process, a few ms.
 * Without perl on the server the caller falls back to SFTP renames (NO_PERL).
 *
 * The mover is started with the batch (its start is hidden behind the archive) and reads its work from
 * stdin once the archive is in: NUL-ended records `B<rel>` (a staged file to remove: it changed or could
 * not be read while packed), `L<rel>` (a staged folder to open u+rwx before it moves: rename updates
 * its '..'), `M<rel>` (a top-most item to move). Then the staging folder is removed by the shell.
 *
 * Each target folder is reached from the physical root one component at a time (remote-fix.ts WALK): lstat
 * (a real folder, not a symlink), chdir, and the folder entered must be the one lstat saw (device and inode). A folder
 * the server replaced by a symlink (or a file, or removed) since the listing is never entered; its items
 * are reported `D<folder>` and stay unsent. The rename's target is then a bare name in the folder
 * entered, whatever happens to the path meanwhile; rename(2) neither follows a symlink in the last
 * component nor copies across file systems (it fails with EXDEV). Failures: `M<rel>` when the staged item
 * is missing (it vanished locally while packed: look again), `E<errno>\t<message>\t<rel>` otherwise.
 */
import { chunked, parentOf } from './apply-common';
import { WALK } from './remote-fix';
import { enterRoot } from './remote-place';
import { shQuote } from './tree';

/** The mover's exit code when the server has no perl: nothing was done, the staging folder is kept. */
export const NO_PERL = 91;

/** Removes the staging folder "$S", opening read-only folders inside it first if need be. */
export const REMOVE_STAGE = 'rm -rf -- "$S" 2>/dev/null || { chmod -R u+rwx -- "$S"; rm -rf -- "$S"; }';

/** The mover (no single quote in it: it goes inside one). Arguments: the physical root, the stage's name. */
const MOVER = `use strict;
my ($R, $S) = @ARGV; $/ = "\\0";
my (@bad, @locked, %by);
while (my $r = <STDIN>) {
  chop $r; my $k = substr($r, 0, 1, "");
  if ($k eq "B") { push @bad, $r } elsif ($k eq "L") { push @locked, $r }
  elsif ($k eq "M") { my $i = rindex($r, "/"); push @{$by{$i < 0 ? "" : substr($r, 0, $i)}}, $r }
}
my @root = stat($R) or exit 3;
${WALK}
unlink "$R/$S/$_" for @bad;
for (@locked) { my @s = lstat "$R/$S/$_"; chmod((($s[2] & 07777) | 0700), "$R/$S/$_") if @s && -d _ }
for my $d (sort keys %by) {
  if (!walk($d)) { print "D$d\\0"; next }
  for my $rel (@{$by{$d}}) {
    next if rename("$R/$S/$rel", substr($rel, rindex($rel, "/") + 1));
    my $n = $! + 0;
    print(($n == 2) ? "M$rel\\0" : "E$n\\t$!\\t$rel\\0");
  }
}
exit 0;`;

/** The remote command of the mover for `stage` in `remoteRoot` (started before its input is known); `physical`: where the root led when listed. */
export function moverCommand(remoteRoot: string, stage: string, physical?: Buffer): string {
  return [
    enterRoot(remoteRoot, physical, 'exit 3'),
    `S=${shQuote(stage)}`,
    // No perl: an empty input (nothing to move, or a cancelled batch) still removes the staging folder.
    `command -v perl >/dev/null 2>&1 || { [ "$(wc -c)" -gt 0 ] && exit ${NO_PERL}; ${REMOVE_STAGE}; exit; }`,
    `perl -e '${MOVER}' "$PWD" ${shQuote(stage)}`,
    'rc=$?',
    `${REMOVE_STAGE} || exit 4`,
    'exit $rc',
  ].join('\n');
}

/** The mover's input. */
export function moverInput(m: { bad: readonly string[]; locked: readonly string[]; moves: readonly string[] }): Buffer {
  const recs: string[] = [];
  for (const r of m.bad) recs.push(`B${r}\0`);
  for (const r of m.locked) recs.push(`L${r}\0`);
  for (const r of m.moves) recs.push(`M${r}\0`);
  return Buffer.from(recs.join(''));
}

/**
 * Without perl: the fixes (B and L records' work) and a check of every target folder as a shell script
 * of builtins (no process per folder): `cd -P` to it and compare the physical path reached with the one
 * asked for; one that differs is reported `D<folder>`. The SFTP renames that follow go only into folders
 * that passed (a change between the check and the rename is not seen: perl's way has no such window).
 */
export function checkScript(m: { remoteRoot: string; stage: string; bad: readonly string[]; locked: readonly string[]; moves: readonly string[] }): string[] {
  const staged = (rel: string): string => shQuote(`${m.stage}/${rel}`);
  const folders = [...new Set(m.moves.map(parentOf))].filter((d) => d !== '');
  return [
    ...chunked('rm -f --', m.bad.map(staged)),
    ...chunked('chmod u+rwx --', m.locked.map(staged)),
    'R=$(pwd -P)',
    ...chunked('for d in', folders.map(shQuote), '; do cd -P -- "$R/$d" 2>/dev/null && [ "$PWD" = "$R/$d" ] || printf \'D%s\\0\' "$d"; done'),
  ];
}

/** Errors of a rename that mean "something else is in the way on the server now": ENOTDIR, EISDIR, EEXIST, ENOTEMPTY. */
const IN_THE_WAY = new Set([17, 20, 21, 39]);

export interface MoveReport {
  /** Folders that are no longer real folders inside the root: their items were not moved. */
  readonly denied: Set<string>;
  /** Items not in the staging folder (they vanished locally while packed). */
  readonly missing: string[];
  /** Items the server has something else in the way of (a folder made meanwhile): [rel, message]. */
  readonly blocked: Array<[string, string]>;
  /** Any other failure: [rel, message]. */
  readonly failed: Array<[string, string]>;
}

export function moveReport(stdout: Buffer): MoveReport {
  const rep: MoveReport = { denied: new Set(), missing: [], blocked: [], failed: [] };
  for (const rec of stdout.toString('utf8').split('\0')) {
    const k = rec.slice(0, 1);
    if (k === 'D') rep.denied.add(rec.slice(1));
    else if (k === 'M') rep.missing.push(rec.slice(1));
    else if (k === 'E') {
      const [n, msg] = rec.slice(1).split('\t', 2);
      const rel = rec.slice(1 + n.length + 1 + msg.length + 1);
      (IN_THE_WAY.has(Number(n)) ? rep.blocked : rep.failed).push([rel, msg]);
    }
  }
  return rep;
}
