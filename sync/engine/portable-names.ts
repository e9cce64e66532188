/**
 * Names a Windows or macOS checkout cannot hold as they are: reported (a warning each, once) before the
 * runner sends them, so that a teammate on Windows or macOS, or a pull back to one, does not meet them
 * by surprise. They are still mirrored: the remote (Linux) holds them fine.
 *
 * - Names Windows cannot hold: reserved device names (CON, PRN, AUX, NUL, COM0-9, LPT0-9, with any
 *   extension), the characters < > : " \ | ? * and control characters, a trailing dot or space.
 * - Names that differ only in letter case or Unicode normalization (`Makefile` and `makefile`, `é` as
 *   one code point or two) in one folder: one file on NTFS and APFS.
 */
import { Refusal } from './tree';

const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
const FORBIDDEN = /[<>:"\\|?*\x00-\x1f]/;

/** Every name windowsNameProblem could object to matches this (one test for the common, clean name). */
const SUSPECT = /[<>:"\\|?*\x00-\x1f]|[. ]$|^(?:con|prn|aux|nul|com|lpt)/i;
const NON_ASCII = /[^\x00-\x7f]/;

/** A name as a folding file system sees it: letter case aside, and (macOS) Unicode form aside. */
export function foldKey(name: string): string {
  return (NON_ASCII.test(name) ? name.normalize('NFC') : name).toLowerCase();
}

/** Why Windows cannot hold the name `name`, or undefined. */
export function windowsNameProblem(name: string): string | undefined {
  if (!SUSPECT.test(name)) return undefined;
  if (RESERVED.test(name)) return 'is a reserved device name on Windows';
  const bad = FORBIDDEN.exec(name);
  if (bad) return `holds '${bad[0].charCodeAt(0) < 32 ? `\\x${bad[0].charCodeAt(0).toString(16).padStart(2, '0')}` : bad[0]}', which Windows forbids in names`;
  if (/[. ]$/.test(name)) return 'ends with a dot or a space, which Windows drops';
  return undefined;
}

function split(rel: string): [parent: string, name: string] {
  const i = rel.lastIndexOf('/');
  return i < 0 ? ['', rel] : [rel.slice(0, i), rel.slice(i + 1)];
}

/**
 * Warnings (as refusals that keep nothing back: `rel` is prefixed so they never mix with real ones)
 * for the names of `rels` that Windows cannot hold or that collide, letter case and normalization aside,
 * with another name of the same folder among `rels`.
 */
export function portabilityWarnings(rels: Iterable<string>): Refusal[] {
  const out: Refusal[] = [];
  const folded = new Map<string, string>();
  for (const rel of rels) {
    const [parent, name] = split(rel);
    const problem = windowsNameProblem(name);
    if (problem) out.push({ rel: `portable:${rel}`, reason: `'${rel}' ${problem}; it is sent, but a Windows checkout cannot hold it. Rename it` });
    const key = `${parent}/${foldKey(name)}`;
    const other = folded.get(key);
    if (other === undefined) folded.set(key, rel);
    else out.push({ rel: `portable:${rel}`, reason: `'${rel}' and '${other}' differ only in letter case or Unicode form; both are sent, but a Windows or macOS checkout holds only one. Rename one` });
  }
  return out;
}
