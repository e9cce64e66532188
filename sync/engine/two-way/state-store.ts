/**
 * The two-way state of one folder pair, kept on the developer's machine: the *ancestor* (for every path,
 * what each side held when both last agreed) and the open conflicts. It lives under the user's state
 * folder (`$XDG_STATE_HOME/kubedev/two-way/<key>.json`, else `~/.local/state/kubedev/two-way/...`),
 * keyed by host, port, remote root and local root, so a restarted runner (or a laptop asleep for a
 * night) still tells which side changed. Written atomically (temporary file, fsync, rename), 0600.
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
}

/** The agreed state of one path: what the local side and the remote side held then. */
export interface Agreed {
  readonly l: Sig;
  readonly r: Sig;
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
  /** [path, agreed] pairs (arrays, not objects: a path may be named `__proto__`). */
  agreed: [string, Agreed][];
  conflicts: ConflictRecord[];
}

const TYPE: Record<EntryType, Sig['t']> = { file: 'f', dir: 'd', symlink: 'l' };

export function sigOf(e: Entry): Sig {
  const t = TYPE[e.type];
  if (t === 'l') return { t, s: 0, m: 0, p: 0, x: e.target ?? '' };
  if (t === 'd') return { t, s: 0, m: 0, p: e.mode };
  return { t, s: e.size, m: e.mtimeMs, p: e.mode };
}

/** Same content as far as the runner can tell (folders: mode; links: target; files: size, mtime, mode). */
export function sameSig(a: Sig | undefined, b: Sig | undefined): boolean {
  if (!a || !b) return a === b;
  return a.t === b.t && a.s === b.s && a.m === b.m && a.p === b.p && (a.x ?? '') === (b.x ?? '');
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

/** The ancestor and the conflicts of one folder pair, loaded from and saved to its state file. */
export class StateStore {
  private meta: Omit<StateFile, 'agreed' | 'conflicts'>;
  private agreedMap = new Map<string, Agreed>();
  private conflictMap = new Map<string, ConflictRecord>();
  private loadedMtime = -1;
  /** Changed since the last save. */
  private changed = false;

  constructor(readonly file: string, key: PairKey) {
    this.meta = { version: 1, localRoot: path.resolve(key.localRoot), remote: `${key.host}:${key.port}:${key.remoteRoot}` };
    this.reload();
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
    if (st.mtimeMs === this.loadedMtime) return;
    try {
      const parsed = JSON.parse(fs.readFileSync(this.file, 'utf8')) as StateFile;
      if (parsed?.version !== 1 || !Array.isArray(parsed.agreed) || !Array.isArray(parsed.conflicts)) throw new Error('not a kubedev two-way state (version 1)');
      this.meta = { ...this.meta, remoteRootId: parsed.remoteRootId };
      this.agreedMap = new Map(parsed.agreed);
      this.conflictMap = new Map(parsed.conflicts.map((c) => [c.rel, c]));
      this.loadedMtime = st.mtimeMs;
      this.changed = false;
    } catch (e) {
      throw new Error(`two-way state file '${this.file}' cannot be read (${(e as Error).message}); nothing was synced. Move it away to start over (every path present on both sides that differs becomes a conflict)`);
    }
  }

  get size(): number {
    return this.agreedMap.size;
  }

  get remoteRootId(): string | undefined {
    return this.meta.remoteRootId;
  }

  set remoteRootId(v: string | undefined) {
    if (v !== this.meta.remoteRootId) this.changed = true;
    this.meta.remoteRootId = v;
  }

  /** Something changed since the last save. */
  get unsaved(): boolean {
    return this.changed || this.loadedMtime < 0;
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
      if (was && sameSig(was.l, a.l) && sameSig(was.r, a.r)) return;
      this.agreedMap.set(rel, a);
    } else if (!this.agreedMap.delete(rel)) return;
    this.changed = true;
  }

  conflict(rel: string): ConflictRecord | undefined {
    return this.conflictMap.get(rel);
  }

  conflicts(): ConflictRecord[] {
    return [...this.conflictMap.values()].sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  }

  setConflict(c: ConflictRecord): void {
    this.conflictMap.set(c.rel, c);
    this.changed = true;
  }

  clearConflict(rel: string): void {
    if (this.conflictMap.delete(rel)) this.changed = true;
  }

  /** Writes the file atomically (temporary name, fsync, rename), mode 0600; nothing when nothing changed. */
  save(): void {
    if (!this.unsaved) return;
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      const data: StateFile = { ...this.meta, agreed: [...this.agreedMap], conflicts: [...this.conflictMap.values()] };
      fs.writeSync(fd, JSON.stringify(data));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    this.loadedMtime = fs.statSync(this.file).mtimeMs;
    this.changed = false;
  }
}
