/**
 * The ancestor rewrite behind `kubedev conflicts --take local|remote` (resolve.ts), applied by the pass
 * once both sides are listed (reconcile.ts).
 */
import { Sig, StateStore } from './state-store';

/** A sig no real entry has: "this side changed". */
const CHANGED: Sig = { t: 'f', s: -1, m: -1, p: -1 };

/**
 * Sets the ancestor of `rel` and of every path below it (`paths`: all the pass knows) so that only the
 * chosen side reads as changed: taking local, the remote reads as unchanged (what is there now) and the
 * local as changed (absent locally: deleted); taking remote, the reverse. A folder replaced by a file on
 * one side while the other changed inside it is thus carried out whole, not found in conflict again.
 */
export function applyTake(store: StateStore, take: ReadonlyMap<string, 'local' | 'remote'>, paths: Iterable<string>, lsig: (rel: string) => Sig | undefined, rsig: (rel: string) => Sig | undefined): void {
  const sideOf = (rel: string): 'local' | 'remote' | undefined => {
    for (let p = rel; ; p = p.slice(0, p.lastIndexOf('/'))) {
      const s = take.get(p);
      if (s || !p.includes('/')) return s;
    }
  };
  for (const rel of paths) {
    const side = sideOf(rel);
    if (!side) continue;
    const other = side === 'local' ? rsig(rel) : lsig(rel);
    if (!other) store.agree(rel, undefined); // only the chosen side may have it: new there, carried over
    else store.agree(rel, side === 'local' ? { l: CHANGED, r: other } : { l: other, r: CHANGED });
  }
}
