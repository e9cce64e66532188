/**
 * The cheap rescan: lists the local tree (or one folder of it) and compares it with the index of what
 * the remote holds; only the paths that differ are marked dirty, and the batch then looks at them as
 * if a watcher had named them. No remote listing, no transfer when nothing differs. The listing goes
 * into a CompactIndex (about 100 bytes an entry), so a rescan of 100,000 files stays small.
 */
import { IgnoreMatcher } from '../ignore';
import { CompactIndex } from '../index-store';
import { Refusal, sameEntry, scanLocal, ScanOptions, Tree } from '../tree';

export interface RescanHost {
  readonly options: { readonly localRoot: string };
  readonly ig: IgnoreMatcher;
  /** What the remote holds. */
  readonly index: Tree;
  scanOptions(withDirs: boolean): ScanOptions;
}

function under(rel: string, scope: string): boolean {
  return scope === '' || rel === scope || rel.startsWith(`${scope}/`);
}

/** Paths under `scope` ('' = the whole tree) whose local state differs from the index. */
export async function changedSince(h: RescanHost, scope: string): Promise<string[]> {
  if (scope !== '' && h.ig.ignores(scope, true)) return [];
  const local = new CompactIndex();
  const refused: Refusal[] = [];
  // onDir: a per-folder backend re-adds any watch it lost (add is idempotent).
  await scanLocal(h.options.localRoot, h.ig, scope, local, refused, h.scanOptions(true));
  const changed: string[] = [];
  for (const [rel, e] of local) {
    const known = h.index.get(rel);
    if (!known || !sameEntry(e, known)) changed.push(rel);
  }
  // Only what could not be read keeps its remote copy; a folder now a symlink leading outside (refused,
  // not kept) is changed like any other, as a full pass would find it.
  const unreadable = refused.filter((r) => r.keep).map((r) => r.rel);
  const keptBelow = (rel: string): boolean => unreadable.some((u) => under(rel, u));
  for (const rel of h.index.keys()) {
    if (under(rel, scope) && !local.has(rel) && !keptBelow(rel)) changed.push(rel);
  }
  return changed;
}
