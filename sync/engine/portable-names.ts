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

/** SUSPECT, looked for from `lastIndex` on (the start of a path's last name): `(?<![^/])` is that name's start. */
const SUSPECT_FROM = /[<>:"\\|?*\x00-\x1f]|[. ]$|(?<![^/])(?:con|prn|aux|nul|com|lpt)/gi;

/** `rel` with its last name (from `start` on) folded (foldKey), when that changes it: else undefined (the name is its own key). */
function foldedKey(rel: string, start: number): string | undefined {
  for (let i = start; i < rel.length; i++) {
    const c = rel.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || c > 0x7f) {
      // An upper-case ASCII letter or a non-ASCII character: all foldKey can change.
      const name = rel.slice(start);
      const folded = foldKey(name);
      return folded === name ? undefined : rel.slice(0, start) + folded;
    }
  }
  return undefined;
}

/**
 * Warnings (as refusals that keep nothing back: `rel` is prefixed so they never mix with real ones)
 * for the names of `rels` (each once: a tree's keys) that Windows cannot hold or that collide, letter
 * case and normalization aside, with another name of the same folder among `rels`; in the order of
 * `rels`, a collision reported at the later name of the two.
 *
 * A name is folded only when it may change (an upper-case or non-ASCII character): the others are their
 * own key, so only keys that folded names made are looked up. 100,000 names: 100-200 ms when every key
 * was made and kept, a tenth of it now (a tree of 100,000 files lists its names on every full pass).
 */
export function portabilityWarnings(rels: Iterable<string>): Refusal[] {
  const all = Array.isArray(rels) ? (rels as readonly string[]) : [...rels];
  const notes: Array<{ at: number; collision: boolean; r: Refusal }> = [];
  // Folded key -> the indexes in `all` of the names that fold to it (a name that is its own key is added below).
  const groups = new Map<string, number[]>();
  for (let at = 0; at < all.length; at++) {
    const rel = all[at];
    const start = rel.lastIndexOf('/') + 1;
    SUSPECT_FROM.lastIndex = start;
    if (SUSPECT_FROM.test(rel)) {
      const problem = windowsNameProblem(rel.slice(start));
      if (problem) notes.push({ at, collision: false, r: { rel: `portable:${rel}`, reason: `'${rel}' ${problem}; it is sent, but a Windows checkout cannot hold it. Rename it` } });
    }
    const key = foldedKey(rel, start);
    if (key === undefined) continue;
    const g = groups.get(key);
    if (g) g.push(at);
    else groups.set(key, [at]);
  }
  if (groups.size === 0) return notes.map((n) => n.r);
  for (let at = 0; at < all.length; at++) {
    const g = groups.get(all[at]);
    if (g && foldedKey(all[at], all[at].lastIndexOf('/') + 1) === undefined) g.push(at);
  }
  for (const g of groups.values()) {
    if (g.length < 2) continue;
    g.sort((a, b) => a - b);
    const first = all[g[0]];
    for (const at of g.slice(1)) {
      const rel = all[at];
      notes.push({ at, collision: true, r: { rel: `portable:${rel}`, reason: `'${rel}' and '${first}' differ only in letter case or Unicode form; both are sent, but a Windows or macOS checkout holds only one. Rename one` } });
    }
  }
  notes.sort((a, b) => a.at - b.at || Number(a.collision) - Number(b.collision));
  return notes.map((n) => n.r);
}
