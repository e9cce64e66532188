/**
 * The difference between the local tree and what the remote holds, as the operations that make the
 * remote equal: deletes (top-most paths only), folders to create, files to upload, symlinks to
 * (re)create and permission-only changes.
 */
import { Entry, sameCtime, sameEntry, sameMtime, Tree } from './tree';

export interface PlanItem {
  readonly rel: string;
  readonly entry: Entry;
}

export interface Plan {
  /** Remote paths removed (with everything below), top-most only, before anything else. */
  readonly deletes: string[];
  /** Folders to create, parents before children. */
  readonly dirs: PlanItem[];
  readonly files: PlanItem[];
  readonly links: PlanItem[];
  /** Existing files or folders whose permission bits differ. */
  readonly chmods: PlanItem[];
  /**
   * Files whose size and mtime agree but whose change time moved (sameCtime, or since the last full pass
   * began reading): new bytes under the old mtime, or only a chmod, chown or hard link. Compared by
   * content before the plan is applied (verify.ts: resolveVerify); those that differ become files.
   * Plans made for one step (a delete, an upload) have none.
   */
  readonly verify?: PlanItem[];
}

export function emptyPlan(): Plan {
  return { deletes: [], dirs: [], files: [], links: [], chmods: [], verify: [] };
}

export function planSize(p: Plan): number {
  return p.deletes.length + p.dirs.length + p.files.length + p.links.length + p.chmods.length;
}

export function planBytes(p: Plan): number {
  let n = 0;
  for (const f of p.files) n += f.entry.size;
  return n;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

const byRel = (a: PlanItem, b: PlanItem): number => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0);

/** Sorts what the local paths planned by path (deletes from index `from` on), as Array#sort orders strings. */
function inPathOrder(plan: Plan, from: number): void {
  for (const items of [plan.dirs, plan.files, plan.links, plan.chmods, plan.verify ?? []]) items.sort(byRel);
  if (plan.deletes.length - from > 1) plan.deletes.push(...plan.deletes.splice(from).sort());
}

/**
 * Plans `remote` -> `local`. With `scope` set (a set of relative paths), only those paths and what
 * lies below them are compared (watch mode); otherwise the whole trees. With `racySince` (ms), files
 * modified at or after it are sent even when size and whole-second mtime equal the remote's
 * (pass-clock.ts: saved again in the second the last pass read them), and files changed (ctime) at or
 * after it are compared by content (`verify`).
 */
export function planDiff(local: Tree, remote: Tree, scope?: Iterable<string>, racySince?: number): Plan & { readonly verify: PlanItem[] } {
  const verify: PlanItem[] = [];
  const plan = { ...emptyPlan(), verify };
  const deleted = new Set<string>();
  const underDeleted = (rel: string): boolean => {
    if (deleted.size === 0) return false;
    for (let p = parentOf(rel); p !== ''; p = parentOf(p)) if (deleted.has(p)) return true;
    return false;
  };
  // Against a remote listing (whole seconds), not between two exact stats.
  const racy = (l: Entry, r: Entry): boolean => racySince !== undefined && !(l.exact && r.exact) && l.mtimeMs >= racySince;
  // A change time from then on: new bytes under an mtime put back, or only a chmod, chown or link (verify).
  const racyChange = (l: Entry, r: Entry): boolean => racySince !== undefined && !(l.exact && r.exact) && (l.ctimeMs ?? -Infinity) >= racySince;
  const considerLocal = (rel: string, l: Entry): void => {
    if (l.kept) return; // could not be read locally: the remote copy stays as it is
    const r = remote.get(rel);
    if (r && r.type !== l.type) {
      if (!underDeleted(rel)) {
        plan.deletes.push(rel);
        deleted.add(rel);
      }
    }
    const exists = r !== undefined && r.type === l.type && !underDeleted(rel);
    if (l.type === 'dir') {
      if (!exists) plan.dirs.push({ rel, entry: l });
      else if (r.mode !== l.mode) plan.chmods.push({ rel, entry: l });
    } else if (l.type === 'symlink') {
      if (!exists || !sameEntry(l, r)) plan.links.push({ rel, entry: l });
    } else if (!exists) plan.files.push({ rel, entry: l });
    else if (racy(l, r) || r.size !== l.size || !sameMtime(l, r)) plan.files.push({ rel, entry: l });
    else {
      if (l.mode !== r.mode) plan.chmods.push({ rel, entry: l });
      if (!sameCtime(l, r) || racyChange(l, r)) verify.push({ rel, entry: l });
    }
  };
  const considerRemote = (rel: string): void => {
    if (local.has(rel) || deleted.has(rel) || underDeleted(rel)) return;
    plan.deletes.push(rel);
    deleted.add(rel);
  };

  if (scope === undefined) {
    // Only remote paths the local tree lacks can be deleted: those are compared parents first (sorted).
    // Local paths are compared in any order (a parent whose type changed has no remote children to
    // meet), then what they planned is put in path order, as a sorted walk would have made it.
    for (const rel of [...remote.keys()].filter((k) => !local.has(k)).sort()) considerRemote(rel);
    const fromLocal = plan.deletes.length;
    for (const [rel, l] of local) considerLocal(rel, l);
    inPathOrder(plan, fromLocal);
  } else {
    const roots = [...new Set(scope)].sort();
    const inScope = (rel: string): boolean => {
      for (let p = rel; ; p = parentOf(p)) {
        if (rootSet.has(p)) return true;
        if (p === '') return false;
      }
    };
    const rootSet = new Set(roots);
    const rkeys = [...remote.keys()].filter(inScope).sort();
    const lkeys = [...local.keys()].filter(inScope).sort();
    for (const rel of rkeys) considerRemote(rel);
    for (const rel of lkeys) considerLocal(rel, local.get(rel) as Entry);
  }
  // Deletes: drop ones below another delete (a type change can add a parent after its children).
  const all = new Set(plan.deletes);
  const top = plan.deletes.filter((d) => {
    for (let p = parentOf(d); p !== ''; p = parentOf(p)) if (all.has(p)) return false;
    return true;
  });
  plan.deletes.length = 0;
  plan.deletes.push(...top);
  return plan;
}
