/**
 * The runner's one index of what the remote holds, kept compact: a Map from path to a small integer,
 * and the numbers of every entry in one growable Float64Array (type, size, mtime, mode, and a folder's
 * inode or a file's change time: one slot, as no entry has both). An
 * entry costs about 100 bytes instead of ~300 for a Map of objects, which is what keeps a watched
 * 100,000-file tree under the memory target. Symlink targets (rare) live in a side Map.
 */
import { Entry, EntryType, Tree } from './tree';

const FIELDS = 5; // type|flags, size, mtimeMs, mode, ino (a folder) or ctimeMs (a file)
const TYPES: readonly EntryType[] = ['file', 'dir', 'symlink'];
const EXACT = 8;
const KEPT = 16;

export class CompactIndex implements Tree {
  private readonly ids = new Map<string, number>();
  private data = new Float64Array(1024 * FIELDS);
  private readonly free: number[] = [];
  private next = 0;
  private readonly targets = new Map<number, string>();

  static from(tree: Tree): CompactIndex {
    const c = new CompactIndex();
    for (const [k, v] of tree) c.set(k, v);
    return c;
  }

  get size(): number {
    return this.ids.size;
  }

  has(rel: string): boolean {
    return this.ids.has(rel);
  }

  get(rel: string): Entry | undefined {
    const id = this.ids.get(rel);
    return id === undefined ? undefined : this.read(id);
  }

  private read(id: number): Entry {
    const o = id * FIELDS;
    const tf = this.data[o];
    const type = TYPES[tf & 3];
    const e: { -readonly [K in keyof Entry]: Entry[K] } = { type, size: this.data[o + 1], mtimeMs: this.data[o + 2], mode: this.data[o + 3] };
    if (tf & EXACT) e.exact = true;
    if (tf & KEPT) e.kept = true;
    if (type === 'dir' && this.data[o + 4] !== 0) e.ino = this.data[o + 4];
    else if (type === 'file' && this.data[o + 4] !== 0) e.ctimeMs = this.data[o + 4];
    if (type === 'symlink') e.target = this.targets.get(id);
    return e;
  }

  set(rel: string, e: Entry): void {
    let id = this.ids.get(rel);
    if (id === undefined) {
      id = this.free.pop() ?? this.next++;
      if ((id + 1) * FIELDS > this.data.length) {
        const bigger = new Float64Array(this.data.length * 2);
        bigger.set(this.data);
        this.data = bigger;
      }
      this.ids.set(rel, id);
    }
    const o = id * FIELDS;
    this.data[o] = TYPES.indexOf(e.type) | (e.exact ? EXACT : 0) | (e.kept ? KEPT : 0);
    this.data[o + 1] = e.size;
    this.data[o + 2] = e.mtimeMs;
    this.data[o + 3] = e.mode;
    this.data[o + 4] = (e.type === 'dir' ? e.ino : e.type === 'file' ? e.ctimeMs : undefined) ?? 0;
    if (e.type === 'symlink' && e.target !== undefined) this.targets.set(id, e.target);
    else this.targets.delete(id);
  }

  delete(rel: string): boolean {
    const id = this.ids.get(rel);
    if (id === undefined) return false;
    this.ids.delete(rel);
    this.targets.delete(id);
    this.free.push(id);
    return true;
  }

  /** The files of `min` bytes or more (a look at each entry's numbers only: about 1 ms per 100,000 entries). */
  filesFrom(min: number): [string, Entry][] {
    const out: [string, Entry][] = [];
    for (const [k, id] of this.ids) {
      const o = id * FIELDS;
      if (this.data[o + 1] >= min && TYPES[this.data[o] & 3] === 'file') out.push([k, this.read(id)]);
    }
    return out;
  }

  /** Every path (insertion order; deleting while iterating is allowed). */
  keys(): IterableIterator<string> {
    return this.ids.keys();
  }

  *entries(): IterableIterator<[string, Entry]> {
    for (const [k, id] of this.ids) yield [k, this.read(id)];
  }

  [Symbol.iterator](): IterableIterator<[string, Entry]> {
    return this.entries();
  }
}
