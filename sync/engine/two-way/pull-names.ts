/**
 * Names the laptop cannot hold as the container does, held before they are pulled (never written under
 * another name, never retried for ever):
 * - Laptops whose file system folds names (macOS's APFS and HFS+ by default: letter case and Unicode
 *   form; Windows' NTFS: letter case): a Linux container can hold `README.md` and `readme.md` side by
 *   side, the laptop only one. A pull of the second would be refused by the re-check before the rename
 *   (it sees the first under the other spelling) and tried again at every full pass, silently.
 * - Windows: names it cannot hold (portable-names.ts: `a:b` would write an alternate data stream of
 *   `a`, `a\b` a file `b`, `notes.` the file `notes`, `con.txt` the console).
 * The name is held with a warning that says why and what to do; nothing is overwritten, nothing is
 * deleted on either side, and the container's file stays where it is.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { INTERNAL_PREFIX } from '../ignore';
import { foldKey, windowsNameProblem } from '../portable-names';
import { Decision } from './classify';


/**
 * Whether the file system of `root` folds letter case: a probe file made with upper-case letters is
 * looked up in lower case (what git does for core.ignorecase). Its name starts with the runner's
 * internal prefix, so no watcher or listing reports it; it is removed at once.
 */
export function foldsCase(root: string): boolean {
  const name = `${INTERNAL_PREFIX}CASE-${crypto.randomBytes(6).toString('hex')}`;
  const upper = path.join(root, name);
  let fd: number;
  try {
    fd = fs.openSync(upper, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  } catch {
    return process.platform === 'darwin' || process.platform === 'win32'; // cannot probe: the platform's default
  }
  fs.closeSync(fd);
  try {
    return fs.lstatSync(path.join(root, name.toLowerCase()), { throwIfNoEntry: false }) !== undefined;
  } finally {
    fs.rmSync(upper, { force: true });
  }
}

export interface LocalNames {
  /** The laptop's file system folds letter case (and, on macOS, Unicode form). */
  readonly folds: boolean;
  /** The laptop is Windows: names it cannot hold are not pulled. */
  readonly windows: boolean;
}

/**
 * Holds each pull of a new name the laptop cannot hold: one Windows forbids (`names.windows`), or one
 * the laptop would fold onto another name in the same folder (`names.folds`) — on disk (read from the
 * folder itself, so a scoped pass sees names outside its scope too) or pulled earlier in this pass
 * (sorted order: the first spelling wins). Everything below a held folder is held too. Returns one
 * warning per held path.
 */
export function holdUnportablePulls(decisions: ReadonlyMap<string, Decision>, localRoot: string, names: LocalNames): string[] {
  const folders = new Map<string, Map<string, string>>();
  const namesIn = (parent: string): Map<string, string> => {
    let m = folders.get(parent);
    if (!m) {
      m = new Map();
      try {
        for (const n of fs.readdirSync(path.join(localRoot, parent))) if (!n.startsWith(INTERNAL_PREFIX)) m.set(foldKey(n), n);
      } catch {
        // not on disk (yet): only this pass's names count
      }
      folders.set(parent, m);
    }
    return m;
  };
  const warnings: string[] = [];
  const held: string[] = [];
  const hold = (d: Decision, why: string, fix: string): void => {
    d.action = 'hold';
    d.why = why;
    held.push(d.rel);
    warnings.push(`'${d.rel}' is held in the container: ${why}. ${fix}`);
  };
  const pulls = [...decisions.values()].filter((d) => d.action === 'pull' && d.l === undefined).sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  for (const d of pulls) {
    if (held.some((h) => d.rel.startsWith(`${h}/`))) {
      d.action = 'hold';
      continue;
    }
    const slash = d.rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : d.rel.slice(0, slash);
    const name = d.rel.slice(slash + 1);
    const problem = names.windows ? windowsNameProblem(name) : undefined;
    if (problem) {
      hold(d, `the name ${problem}`, 'Rename it in the container');
      continue;
    }
    if (!names.folds) continue;
    const inFolder = namesIn(parent);
    const other = inFolder.get(foldKey(name));
    const otherRel = other === undefined ? undefined : parent === '' ? other : `${parent}/${other}`;
    // A rename in letter case only (`mv Foo.txt foo.txt` in the container): the old spelling is deleted
    // locally first in this pass (step 1), so the new one has the name to itself.
    if (other === undefined || other === name || decisions.get(otherRel as string)?.action === 'delete-local') {
      inFolder.set(foldKey(name), name);
      continue;
    }
    hold(d, `this laptop's file system does not tell '${d.rel}' from '${otherRel as string}' (letter case or Unicode form)`, 'Both stay there; rename one of them in the container');
  }
  if (held.length > 0) {
    for (const d of decisions.values()) if (d.action !== 'none' && held.some((h) => d.rel.startsWith(`${h}/`))) d.action = 'hold';
  }
  return warnings;
}
