/**
 * The two-way state of one folder pair, kept on the developer's machine: the *ancestor* (for every path,
 * what each side held when both last agreed) and the open conflicts. It lives under the user's state
 * folder (`$XDG_STATE_HOME/kubedev/two-way/<key>.json`, else `~/.local/state/kubedev/two-way/...`),
 * keyed by host, port, remote root and local root, so a restarted runner (or a laptop asleep for a
 * night) still tells which side changed.
 *
 * Two files, both 0600: the base (`<key>.json`, written atomically: temporary file, fsync, rename) and a
 * journal beside it (`<key>.json.journal`, one JSON line per change, appended and fsynced on each save),
 * so a save while watching costs the changes, not the whole ancestor (100,000 paths: 13 MB and
 * 0.2-0.6 s a save written whole). The journal starts with the generation its base names; a journal of
 * another generation (a crash between the two renames of a compaction, or a base deleted to start over)
 * is ignored, and so is a torn last line: what is lost then is a newer ancestor, and an older one is
 * safe (see reload). The base is written again, and the journal emptied, once the journal outgrows it.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Entry, EntryType } from '../tree';

/** What one side held: type, size, mtime (ms, exact), permission bits, link target. */
export interface Sig {
  readonly t: 'f' | 'd' | 'l';
  readonly s: number;
  readonly m: number;
  readonly p: number;
  readonly x?: string;
  /**
   * A local file's ctime (ms; local sides only, absent in ancestors written before it was kept): a
   * rewrite that put size and mtime back (`cp -p`, `rsync -t`, an archive unpacked, an editor that
   * keeps the mtime) still changes it (sameLocal).
   */
  readonly c?: number;
}

/** The agreed state of one path: what the local side and the remote side held then. */
export interface Agreed {
  readonly l: Sig;
  readonly r: Sig;
  /** A file's content hash, when its bytes went through the runner (content-hash.ts). */
  readonly h?: string;
}

/** An open conflict: both sides changed `rel`; `copy` (local, relative) holds the remote version. */
export interface ConflictRecord {
  readonly rel: string;
  /** Relative path of the local copy of the remote version, when one was made (files). */
  readonly copy?: string;
  /** What each side held when the conflict was found (a new remote change makes a new copy). */
  readonly l?: Sig;
  readonly r?: Sig;
  readonly at: string;
  readonly why: string;
}

interface StateFile {
  version: 1;
  localRoot: string;
  remote: string;
  /** `dev:ino` of the remote root as the server reported it (a replaced root halts). */
  remoteRootId?: string;
  /** The generation whose journal applies on top of this base. */
  journal?: string;
  /** [path, agreed] pairs (arrays, not objects: a path may be named `__proto__`). */
  agreed: [string, Agreed][];
  conflicts: ConflictRecord[];
}

const TYPE: Record<EntryType, Sig['t']> = { file: 'f', dir: 'd', symlink: 'l' };

export function sigOf(e: Entry): Sig {
  const t = TYPE[e.type];
  if (t === 'l') return { t, s: 0, m: 0, p: 0, x: e.target ?? '' };
  if (t === 'd') return { t, s: 0, m: 0, p: e.mode };
  return e.ctimeMs === undefined ? { t, s: e.size, m: e.mtimeMs, p: e.mode } : { t, s: e.size, m: e.mtimeMs, p: e.mode, c: e.ctimeMs };
}

/** Same content as far as the runner can tell (folders: mode; links: target; files: size, mtime, mode). */
export function sameSig(a: Sig | undefined, b: Sig | undefined): boolean {
  if (!a || !b) return a === b;
  return a.t === b.t && a.s === b.s && a.m === b.m && a.p === b.p && (a.x ?? '') === (b.x ?? '');
}

/**
 * Two local sides of one path: sameSig, and the same ctime where both have one. Whatever writes the
 * file changes its ctime, so a rewrite that put size and mtime back is told; so is a change of mode,
 * owner or links that kept them (then the bytes are read when the ancestor knows them: classify.ts).
 */
export function sameLocal(a: Sig | undefined, b: Sig | undefined): boolean {
  return sameSig(a, b) && (a?.c === undefined || b?.c === undefined || a.c === b.c);
}

/** The state folder: `$XDG_STATE_HOME/kubedev`, else `~/.local/state/kubedev`. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : path.join(env.HOME ?? os.homedir(), '.local', 'state');
  return path.join(base, 'kubedev', 'two-way');
}

export interface PairKey {
  readonly host: string;
  readonly port: number;
  readonly remoteRoot: string;
  readonly localRoot: string;
}

/** The state file of one folder pair. */
export function statePath(k: PairKey, env: NodeJS.ProcessEnv = process.env): string {
  const id = crypto.createHash('sha256').update(JSON.stringify([k.host, k.port, k.remoteRoot, path.resolve(k.localRoot)])).digest('hex').slice(0, 32);
  return path.join(stateDir(env), `${id}.json`);
}

/** One journal line: an agreed entry, a conflict or the root's identity set (null: removed). */
type JournalLine = ['a', string, Agreed | null] | ['c', string, ConflictRecord | null] | ['r', string | null];
const JOURNAL_HEADER = 'kubedev-two-way-journal';
/** The journal is folded into the base once it is larger than this and than the base. */
const JOURNAL_MIN_FOLD = 256 * 1024;

/** The ancestor and the conflicts of one folder pair, loaded from and saved to its state file. */
export class StateStore {
  private meta: Omit<StateFile, 'agreed' | 'conflicts'>;
  private agreedMap = new Map<string, Agreed>();
  private conflictMap = new Map<string, ConflictRecord>();
  private loadedMtime = -1;
  /** The base's size and the journal's (-1: none) as this store last read or wrote them. */
  private baseBytes = 0;
  private journalBytes = -1;
  /** The journal belongs to the base and ends cleanly: saves may append to it. */
  private journalLive = false;
  /** Changes since the last save, in order (each a whole value: replaying them is idempotent). */
  private pending: JournalLine[] = [];

  constructor(readonly file: string, key: PairKey) {
    this.meta = { version: 1, localRoot: path.resolve(key.localRoot), remote: `${key.host}:${key.port}:${key.remoteRoot}` };
    this.reload();
  }

  get journalFile(): string {
    return `${this.file}.journal`;
  }

  /**
   * Reads the file again when someone else (`kubedev conflicts --take`) changed it. Changes not saved
   * yet are dropped then: an ancestor older than the trees is safe (both sides read as changed, and
   * equal ones agree again; different ones are a conflict, never a lost version).
   */
  reload(): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch {
      return;
    }
    if (st.mtimeMs === this.loadedMtime && sizeOf(this.journalFile) === this.journalBytes) return;
    try {
      const parsed = JSON.parse(fs.readFileSync(this.file, 'utf8')) as StateFile;
      if (parsed?.version !== 1 || !Array.isArray(parsed.agreed) || !Array.isArray(parsed.conflicts)) throw new Error('not a kubedev two-way state (version 1)');
      this.meta = { ...this.meta, remoteRootId: parsed.remoteRootId, journal: parsed.journal };
      this.agreedMap = new Map(parsed.agreed);
      this.conflictMap = new Map(parsed.conflicts.map((c) => [c.rel, c]));
      this.loadedMtime = st.mtimeMs;
      this.baseBytes = st.size;
      this.replayJournal();
      this.pending = [];
    } catch (e) {
      throw new Error(`two-way state file '${this.file}' cannot be read (${(e as Error).message}); nothing was synced. Move it away to start over (every path present on both sides that differs becomes a conflict)`);
    }
  }

  /**
   * Applies the journal if it is of the base's generation, up to a torn line (a crash mid-append). A
   * journal that is not live (another generation, torn) is folded away by the next save.
   */
  private replayJournal(): void {
    this.journalLive = false;
    let raw: Buffer;
    try {
      raw = fs.readFileSync(this.journalFile);
    } catch {
      this.journalBytes = -1;
      return;
    }
    this.journalBytes = raw.length;
    const lines = raw.toString('utf8').split('\n');
    const head = parseLine(lines[0]);
    if (!this.meta.journal || !Array.isArray(head) || head[0] !== JOURNAL_HEADER || head[1] !== 1 || head[2] !== this.meta.journal) return;
    // The last element is what follows the last newline: empty, or a torn line.
    const body = lines.slice(1, -1);
    for (const line of body) {
      const j = parseLine(line) as JournalLine | undefined;
      if (!Array.isArray(j)) return;
      this.apply(j);
    }
    this.journalLive = lines[lines.length - 1] === '';
  }

  private apply(j: JournalLine): void {
    if (j[0] === 'a') {
      if (j[2]) this.agreedMap.set(j[1], j[2]);
      else this.agreedMap.delete(j[1]);
    } else if (j[0] === 'c') {
      if (j[2]) this.conflictMap.set(j[1], j[2]);
      else this.conflictMap.delete(j[1]);
    } else if (j[0] === 'r') this.meta.remoteRootId = j[1] ?? undefined;
  }

  get size(): number {
    return this.agreedMap.size;
  }

  get remoteRootId(): string | undefined {
    return this.meta.remoteRootId;
  }

  set remoteRootId(v: string | undefined) {
    if (v !== this.meta.remoteRootId) this.pending.push(['r', v ?? null]);
    this.meta.remoteRootId = v;
  }

  /** Something changed since the last save. */
  get unsaved(): boolean {
    return this.pending.length > 0 || this.loadedMtime < 0;
  }

  agreed(rel: string): Agreed | undefined {
    return this.agreedMap.get(rel);
  }

  paths(): string[] {
    return [...this.agreedMap.keys()];
  }

  agree(rel: string, a: Agreed | undefined): void {
    const was = this.agreedMap.get(rel);
    if (a) {
      if (was && sameSig(was.l, a.l) && was.l.c === a.l.c && sameSig(was.r, a.r) && (a.h === undefined || a.h === was.h)) return;
      this.agreedMap.set(rel, a);
    } else if (!this.agreedMap.delete(rel)) return;
    this.pending.push(['a', rel, a ?? null]);
  }

  conflict(rel: string): ConflictRecord | undefined {
    return this.conflictMap.get(rel);
  }

  conflicts(): ConflictRecord[] {
    return [...this.conflictMap.values()].sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  }

  setConflict(c: ConflictRecord): void {
    this.conflictMap.set(c.rel, c);
    this.pending.push(['c', c.rel, c]);
  }

  clearConflict(rel: string): void {
    if (this.conflictMap.delete(rel)) this.pending.push(['c', rel, null]);
  }

  /**
   * Saves what changed: appended to the journal (one write, fsync) while the journal is small against
   * the base, else the base written whole (atomically: temporary name, fsync, rename) with a new, empty
   * journal. Nothing when nothing changed.
   */
  save(): void {
    if (!this.unsaved) return;
    const b = Buffer.from(this.pending.map((j) => `${JSON.stringify(j)}\n`).join(''));
    const appendable = this.journalLive && this.loadedMtime >= 0 && sizeOf(this.journalFile) === this.journalBytes;
    if (appendable && this.journalBytes + b.length <= Math.max(JOURNAL_MIN_FOLD, this.baseBytes)) {
      const fd = fs.openSync(this.journalFile, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW);
      try {
        for (let off = 0; off < b.length; ) off += fs.writeSync(fd, b, off);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      this.journalBytes += b.length;
    } else this.fold();
    this.pending = [];
  }

  /** The base written whole for a new generation, then that generation's empty journal. */
  private fold(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const generation = crypto.randomBytes(8).toString('hex');
    const data: StateFile = { ...this.meta, journal: generation, agreed: [...this.agreedMap], conflicts: [...this.conflictMap.values()] };
    // Base first: a crash before the journal is replaced leaves a journal of the old generation, ignored.
    this.baseBytes = writeAtomically(this.file, JSON.stringify(data));
    this.meta.journal = generation;
    this.loadedMtime = fs.statSync(this.file).mtimeMs;
    this.journalBytes = writeAtomically(this.journalFile, `${JSON.stringify([JOURNAL_HEADER, 1, generation])}\n`);
    this.journalLive = true;
  }
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}

/** Writes `text` to `file` through a temporary file (0600, fsync, rename); returns its size in bytes. */
function writeAtomically(file: string, text: string): number {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  const b = Buffer.from(text);
  try {
    for (let off = 0; off < b.length; ) off += fs.writeSync(fd, b, off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  return b.length;
}
