/** Files with several hard links: an edit through one name changes all, but only its folder reports it. */
export class HardLinks {
  /** The key (dev:ino) of each name, and the names of each key. */
  private readonly keyOf = new Map<string, string>();
  private readonly names = new Map<string, Set<string>>();

  /** Records that `rel` is one name of the file `key` (a scan callback). */
  readonly add = (rel: string, key: string): void => {
    const old = this.keyOf.get(rel);
    if (old === key) return;
    if (old) this.names.get(old)?.delete(rel);
    this.keyOf.set(rel, key);
    const set = this.names.get(key) ?? new Set<string>();
    set.add(rel);
    this.names.set(key, set);
  };

  /** Names recorded. */
  get size(): number {
    return this.keyOf.size;
  }

  clear(): void {
    this.keyOf.clear();
    this.names.clear();
  }

  /** The dirty paths, plus every other name of a dirty file with several hard links. */
  expand(rels: readonly string[]): string[] {
    if (this.keyOf.size === 0) return [...rels];
    const out = new Set(rels);
    for (const r of rels) {
      const key = this.keyOf.get(r);
      if (key) for (const n of this.names.get(key) ?? []) out.add(n);
    }
    return [...out];
  }
}
