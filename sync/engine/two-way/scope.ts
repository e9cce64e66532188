/**
 * What one two-way pass looks at. A full pass lists both roots whole; a scoped pass (the usual one
 * while watching) looks only at the paths the watchers named on either side, as hints: each is raised
 * to its anchor — the top-most folder above it that is not a folder both sides agreed on (or that is
 * in conflict) — and every anchor is listed on both sides with everything below it, together with what
 * the ancestor holds there. A folder named dirty is therefore compared whole (like the mirror's
 * batch.ts), and a path made inside a new folder is seen with the folder.
 *
 * The halts stay: the remote listing always checks the root (gone, replaced: its dev:ino) and says
 * whether it is empty; the local root is checked by the pass. A scoped pass gives up (ScopeTooWide:
 * the caller runs a full pass) when a local folder above an anchor is not a real folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnoreMatcher } from '../ignore';
import { Entry, Refusal, scanLocal, Tree } from '../tree';
import { checkedParent, LocalPathError } from './local-write';
import type { LocalNames } from './pull-names';
import { ExactListing, listRemoteExact, ListingSection, RemoteRun } from './remote-list';
import { StateStore } from './state-store';

/** Bytes of starting points a scoped listing puts on one command line (Linux allows 2 MiB with the environment). */
const ARGS_MAX = 128 * 1024;

/** A scoped pass cannot answer; a full pass must run. */
export class ScopeTooWide extends Error {}

export interface Gathered {
  readonly remote: ExactListing;
  readonly local: Tree;
  readonly refused: Refusal[];
  /** Every path to classify. */
  readonly paths: Set<string>;
}

export interface GatherHost {
  readonly localRoot: string;
  readonly remoteRoot: string;
  /** What names the laptop can hold (pull-names.ts); `folds`: its file system folds letter case. */
  readonly names?: LocalNames;
  readonly ig: IgnoreMatcher;
  readonly store: StateStore;
  onDir(rel: string): void;
  /** A folder about to be listed again whole (a per-folder watcher forgets its old watches there). */
  forget?(rel: string): void;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** The top-most folder above `rel` that is not agreed as a folder on both sides (or is in conflict). */
export function anchorOf(store: StateStore, rel: string): string {
  let q = rel;
  for (let p = parentOf(q); p !== ''; p = parentOf(p)) {
    const a = store.agreed(p);
    if (!a || a.l.t !== 'd' || a.r.t !== 'd' || store.conflict(p)) q = p;
  }
  return q;
}

/** The anchors of `dirty`, none below another ('' in `dirty` means the whole tree: undefined). */
export function anchorsOf(store: StateStore, ig: IgnoreMatcher, dirty: Iterable<string>): string[] | undefined {
  const anchors = new Set<string>();
  for (const r of dirty) {
    if (r === '') return undefined;
    if (ig.ignores(r, false) && ig.ignores(r, true)) continue;
    anchors.add(anchorOf(store, r));
  }
  return [...anchors].filter((a) => {
    for (let p = parentOf(a); p !== ''; p = parentOf(p)) if (anchors.has(p)) return false;
    return true;
  });
}

/** Both roots whole. */
export async function gatherFull(h: GatherHost, run: RemoteRun): Promise<Gathered> {
  const refused: Refusal[] = [];
  const [remote, local] = await Promise.all([listRemoteExact(run, h.remoteRoot, h.ig), scanLocal(h.localRoot, h.ig, '', new Map(), refused, { onDir: h.onDir })]);
  return { remote, local: local.tree, refused, paths: new Set([...h.store.paths(), ...local.tree.keys(), ...remote.tree.keys()]) };
}

/**
 * Only `anchors` (see anchorsOf) and what is below them, on both sides and in the ancestor; `section`:
 * lines run before the listing in the same command (push-inline.ts).
 */
export async function gatherScoped(h: GatherHost, run: RemoteRun, anchors: readonly string[], inline: readonly string[] = [], section?: ListingSection): Promise<Gathered> {
  // The starting points go on one command line (one find, no xargs): past this size a full pass.
  if (anchors.reduce((n, a) => n + a.length + 4, 0) > ARGS_MAX) throw new ScopeTooWide('too many changed paths for one command line');
  for (const a of anchors) {
    try {
      checkedParent(h.localRoot, a);
    } catch (e) {
      if (e instanceof LocalPathError) throw new ScopeTooWide(e.message);
      throw e;
    }
  }
  // Small files the server's watcher named come inside the listing: a pull then needs no round trip more.
  const starts = new Set(anchors);
  const remoteP = listRemoteExact(run, h.remoteRoot, h.ig, anchors, inline.filter((r) => starts.has(r)), section);
  remoteP.catch(() => undefined);
  const refused: Refusal[] = [];
  const local = new Map<string, Entry>();
  for (const a of anchors) h.forget?.(a);
  for (const a of anchors) await scanLocal(h.localRoot, h.ig, a, local, refused, { onDir: h.onDir });
  if (h.names?.folds) dropAliases(h.localRoot, anchors, local);
  const remote = await remoteP;
  const set = new Set(anchors);
  const inScope = (rel: string): boolean => {
    for (let p = rel; p !== ''; p = parentOf(p)) if (set.has(p)) return true;
    return false;
  };
  const paths = new Set<string>([...local.keys(), ...remote.tree.keys()]);
  for (const rel of h.store.paths()) if (inScope(rel)) paths.add(rel);
  return { remote, local, refused, paths };
}

/**
 * A folding file system answers a starting point spelled otherwise than on disk (`a.txt` finds
 * `A.txt`): such a starting point and what was listed below it are dropped from `local`, as it is not
 * there under that name (pull-names.ts then holds the remote one).
 */
function dropAliases(root: string, anchors: readonly string[], local: Map<string, Entry>): void {
  for (const a of anchors) {
    if (!local.has(a)) continue;
    const parent = parentOf(a);
    const name = a.slice(parent === '' ? 0 : parent.length + 1);
    let names: string[];
    try {
      names = fs.readdirSync(path.join(root, parent));
    } catch {
      continue;
    }
    if (names.includes(name)) continue;
    for (const rel of [...local.keys()]) if (rel === a || rel.startsWith(`${a}/`)) local.delete(rel);
  }
}
