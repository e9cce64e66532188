/**
 * One watch batch: the dirty paths (events are hints) are looked at again, compared with the index of
 * what the remote holds and the difference applied. A dirty folder is listed and compared whole,
 * whatever its inode; paths that cannot be read keep their remote copy; a batch that would delete half
 * or more of the remote settles and checks the root first; links sent make every remote link be
 * resolved again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyPlan, ApplyContext, ApplyResult, remoteDelete } from './apply';
import { HardLinks } from './hard-links';
import { IgnoreMatcher } from './ignore';
import { CompactIndex } from './index-store';
import { emptyPlan, Plan, planDiff } from './plan';
import { resolveVerify } from './verify';
import { portabilityWarnings } from './portable-names';
import { keepRemoteFor, linkStaysInside } from './safety';
import { Connection } from './transport';
import { Entry, Refusal, scanLocal, ScanOptions, takeEntry, Tree } from './tree';
import { WatchedFolders } from './watch';

/** A batch deleting at least this share of what the remote holds waits SETTLE_MS and looks at the root again. */
const MASS_DELETE_SHARE = 0.5;
const SETTLE_MS = 300;

/** What a batch needs of its session. */
export interface BatchHost {
  readonly options: { readonly localRoot: string; readonly remoteRoot: string };
  readonly ig: IgnoreMatcher;
  index: CompactIndex;
  readonly watcher?: WatchedFolders;
  readonly hardLinks: HardLinks;
  step(what: string): void;
  warn(message: string): void;
  /** Halts when the local root is gone or replaced; `withContents` also when it was emptied (lists it). */
  checkRoot(withContents: boolean): void;
  scanOptions(withDirs: boolean): ScanOptions;
  reportRefused(refused: readonly Refusal[]): void;
  ctx(conn: Connection, remote: { get(rel: string): Entry | undefined }): ApplyContext;
  /** Folders the batch was to delete that the server kept writing into (ApplyContext.onBusy): left there. */
  takeBusy(): string[];
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How long the look at dirty paths works before it lets the event loop run. */
const SLICE_MS = 5;

/** lstat, or undefined when the path is gone (ENOENT, ENOTDIR); other errors are thrown. */
function lstatQuiet(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** The top-most path above `rel` that the remote lacks as a folder (so new folders are sent whole). */
export function anchorIn(index: Tree, rel: string): string {
  let q = rel;
  for (let p = parentOf(q); p !== ''; p = parentOf(p)) {
    if (index.get(p)?.type !== 'dir') q = p;
  }
  return q;
}

/** `rel` and everything below it in `index`. */
export function subtreeOf(index: Tree, rel: string): Tree {
  const out: Tree = new Map();
  const e = index.get(rel);
  if (e) out.set(rel, e);
  if (e?.type === 'dir') {
    const prefix = `${rel}/`;
    for (const k of index.keys()) if (k.startsWith(prefix)) out.set(k, index.get(k) as Entry);
  }
  return out;
}

/**
 * subtreeOf for many paths of one unchanging index: its keys sorted once, then each subtree is the run
 * of keys from `rel/` on (a branch switch dirties 2,000 folders of a 14,000-entry index: one walk of
 * the index per folder was 28 million comparisons).
 */
export function subtrees(index: Tree): (rel: string) => Array<[string, Entry]> {
  let sorted: string[] | undefined;
  return (rel) => {
    const e = index.get(rel);
    if (!e) return [];
    const out: Array<[string, Entry]> = [[rel, e]];
    if (e.type !== 'dir') return out;
    sorted ??= [...index.keys()].sort();
    const prefix = `${rel}/`;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid] < prefix) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < sorted.length && sorted[i].startsWith(prefix); i++) out.push([sorted[i], index.get(sorted[i]) as Entry]);
    return out;
  };
}


/**
 * For the look at one batch's paths: the top-most folder above `rel` that is not a real folder now (a
 * symlink, a file, gone), or undefined when every one is. Looked at with lstat from the root down, each
 * folder once a batch. An event can name a path below a folder since replaced by a symlink (`mv d
 * elsewhere; ln -s elsewhere d`, with the event for `d` not yet in: Node's recursive watcher still
 * watches the moved folder): an lstat of `d/h` follows `d`, and would read, and send, a file outside
 * the folder. The folder itself is looked at instead. A folder that cannot be looked at counts as
 * real: the look at `rel` itself then meets the error and keeps the remote copy.
 */
export function brokenAbove(root: string): (rel: string) => string | undefined {
  const real = new Map<string, boolean>();
  return (rel) => {
    for (let i = rel.indexOf('/'); i > 0; i = rel.indexOf('/', i + 1)) {
      const p = rel.slice(0, i);
      let ok = real.get(p);
      if (ok === undefined) {
        try {
          ok = lstatQuiet(path.join(root, p))?.isDirectory() === true;
        } catch {
          ok = true;
        }
        real.set(p, ok);
      }
      if (!ok) return p;
    }
    return undefined;
  };
}

export async function applyDirty(h: BatchHost, conn: Connection, dirtyRels: string[]): Promise<{ plan: Plan; res: ApplyResult } | undefined> {
  h.step('looking at changed paths');
  h.checkRoot(false); // one stat; the root is listed only when the batch would delete (below)
  const anchors = new Set<string>();
  const broken = brokenAbove(h.options.localRoot);
  // In slices too: a branch switch's 10,000 paths in 2,000 folders cost 19-28 ms of lstats here.
  let anchorsEnd = performance.now() + SLICE_MS;
  for (const r of h.hardLinks.expand(dirtyRels)) {
    if (r === '' || h.ig.ignores(r, false) && h.ig.ignores(r, true)) continue;
    if (performance.now() > anchorsEnd) {
      await new Promise((resolve) => setImmediate(resolve));
      anchorsEnd = performance.now() + SLICE_MS;
    }
    const a = anchorIn(h.index, r);
    anchors.add(broken(a) ?? a);
  }
  const local: Tree = new Map();
  const remote: Tree = new Map();
  const below = subtrees(h.index); // the index does not change until the plan is applied
  const refused: Refusal[] = [];
  const sorted = [...anchors].sort();
  const covered = new Set<string>();
  const isCovered = (rel: string): boolean => {
    for (let p = parentOf(rel); p !== ''; p = parentOf(p)) if (covered.has(p)) return true;
    return false;
  };
  // Synchronous lstats in slices (a branch switch dirties 9,600 paths: a thread-pool round trip each
  // took about a second); the event loop runs between slices.
  const fileOptions = h.scanOptions(false);
  let sliceEnd = performance.now() + SLICE_MS;
  for (const a of sorted) {
    if (isCovered(a)) continue;
    if (performance.now() > sliceEnd) {
      await new Promise((resolve) => setImmediate(resolve));
      sliceEnd = performance.now() + SLICE_MS;
    }
    let st: fs.Stats | undefined;
    try {
      st = lstatQuiet(path.join(h.options.localRoot, a));
    } catch (e) {
      // Cannot look (a name too long, a folder above it unreadable): leave the remote copy alone.
      refused.push({ rel: a, keep: true, reason: `'${a}' cannot be read (${(e as NodeJS.ErrnoException).code}); it is skipped and its remote copy left as it is. Fix its permissions or shorten the path, or add it to .kubedevignore` });
      for (const [k, v] of below(a)) remote.set(k, v);
      covered.add(a);
      continue;
    }
    if (st?.isDirectory()) {
      if (h.ig.ignores(a, true)) continue;
      // Events are hints: a folder reported dirty is listed again and compared whole, whatever its
      // inode (a folder deleted and made again often gets the same number back).
      covered.add(a);
      h.watcher?.removeTree(a);
      await scanLocal(h.options.localRoot, h.ig, a, local, refused, h.scanOptions(true));
      for (const [k, v] of below(a)) remote.set(k, v);
    } else {
      if (st && !h.ig.ignores(a, false)) takeEntry(h.options.localRoot, a, st, local, refused, fileOptions); // one entry, from this lstat
      for (const [k, v] of below(a)) remote.set(k, v);
    }
  }
  h.reportRefused(refused);
  h.reportRefused(portabilityWarnings(local.keys()));
  keepRemoteFor(refused, local, remote);
  const plan = local.size + remote.size === 0 ? emptyPlan() : planDiff(local, remote);
  // Files whose change time alone moved are sent only if their bytes differ (verify.ts); the index takes
  // the equal ones' new stat now (those with a mode to send, once it is sent).
  for (const v of await resolveVerify(conn, h.options.localRoot, h.options.remoteRoot, plan)) if (!plan.chmods.some((c) => c.rel === v.rel)) h.index.set(v.rel, v.entry);
  if (plan.deletes.length + plan.dirs.length + plan.files.length + plan.links.length + plan.chmods.length === 0) return undefined;
  if (plan.deletes.length > 0) h.checkRoot(true);
  await settleMassDelete(h, plan);
  const res: ApplyResult = plan.files.length + plan.dirs.length + plan.links.length + plan.chmods.length === 0
    ? (await remoteDelete(h.ctx(conn, h.index), plan.deletes), { changed: [], unsent: [], warnings: [], bytes: 0, method: 'sftp' as const })
    : await applyPlan(h.ctx(conn, h.index), plan);
  // The remote now holds the plan (but for what was not sent): update the index.
  const unsent = new Set(res.unsent);
  for (const d of plan.deletes) {
    if (h.index.get(d)?.type === 'dir' && !local.has(d)) h.watcher?.removeTree(d);
    for (const [k] of below(d)) h.index.delete(k);
  }
  const put = (rel: string, e: Entry): void => {
    if (!unsent.has(rel)) h.index.set(rel, e);
  };
  for (const d of plan.dirs) put(d.rel, d.entry);
  for (const f of plan.files) put(f.rel, f.entry);
  for (const l of plan.links) put(l.rel, l.entry);
  for (const c of plan.chmods) put(c.rel, c.entry);
  for (const rel of unsent) {
    for (const k of subtreeOf(h.index, rel).keys()) h.index.delete(k);
    const before = remote.get(rel);
    if (before && !plan.deletes.includes(rel)) h.index.set(rel, before);
  }
  // A folder left because the server kept writing into it stays in the index (as it was before the batch):
  // the next rescan finds it missing locally and removes it again.
  for (const rel of h.takeBusy()) for (const [k, v] of subtreeOf(remote, rel)) h.index.set(k, v);
  if (plan.links.length > 0) await dropEscapedLinks(h, conn);
  return { plan, res };
}

/**
 * A new or changed symlink can make an older one lead outside (`p -> up/../etc`, then `up -> ../..`):
 * after a batch that sent links, every link the remote holds is resolved again; escaped ones go.
 */
async function dropEscapedLinks(h: BatchHost, conn: Connection): Promise<void> {
  const escaped: string[] = [];
  for (const [rel, e] of h.index) {
    if (e.type === 'symlink' && !linkStaysInside(h.options.localRoot, rel, e.target ?? '')) escaped.push(rel);
  }
  if (escaped.length === 0) return;
  await remoteDelete(h.ctx(conn, h.index), escaped);
  for (const rel of escaped) {
    h.index.delete(rel);
    h.warn(`symlink '${rel}' now points outside the synced folder (through another link); it was removed remotely. Point it inside the folder, or add it to .kubedevignore`);
  }
}

/**
 * A batch that would delete half or more of what the remote holds (an `rm -rf` of the root under
 * way, an unmount) waits SETTLE_MS and looks at the root again before deleting anything.
 */
async function settleMassDelete(h: BatchHost, plan: Plan): Promise<void> {
  if (plan.deletes.length === 0 || h.index.size < 20) return;
  // Deleted files count one each; deleted folders are counted in one walk of the index (only then).
  const folders = new Set(plan.deletes.filter((d) => h.index.get(d)?.type === 'dir'));
  let doomed = plan.deletes.length - folders.size;
  if (folders.size > 0) {
    for (const k of h.index.keys()) {
      for (let p = k; ; p = parentOf(p)) {
        if (folders.has(p)) {
          doomed++;
          break;
        }
        if (!p.includes('/')) break;
      }
    }
  }
  if (doomed < h.index.size * MASS_DELETE_SHARE) return;
  h.step('waiting before a mass delete');
  await delay(SETTLE_MS);
  h.checkRoot(true);
}
