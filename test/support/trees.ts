/** Tree helpers for sync tests: byte-for-byte comparison of two folders, bounded waits, tree builders. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Snapshot {
  [rel: string]: string;
}

/**
 * Describes every entry under `root` (lstat, never following links): type, permission bits, and the
 * content hash or link target. `skip(rel)` leaves paths out (ignored ones).
 */
export function snapshot(root: string, skip: (rel: string) => boolean = () => false): Snapshot {
  const out: Snapshot = {};
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (skip(r)) continue;
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link -> ${fs.readlinkSync(abs)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else if (st.isFile()) {
        out[r] = `file ${mode} ${st.size} ${crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex').slice(0, 16)}`;
      } else out[r] = 'other';
    }
  };
  walk('');
  return out;
}

/** Lines naming each difference between two snapshots (empty when equal). */
export function differences(a: Snapshot, b: Snapshot): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of [...keys].sort()) if (a[k] !== b[k]) out.push(`${k}: local ${a[k] ?? '(none)'} / remote ${b[k] ?? '(none)'}`);
  return out;
}

/** Polls `check` until it returns an empty list; throws with the last list after `ms`. */
export async function eventually(check: () => string[] | Promise<string[]>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  let last: string[] = [];
  for (;;) {
    try {
      last = await check();
    } catch (e) {
      last = [String((e as Error).message)];
    }
    if (last.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${what}: not equal after ${ms} ms:\n${last.slice(0, 20).join('\n')}${last.length > 20 ? `\n... ${last.length - 20} more` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits for an event with a time bound. */
export function nextEvent<T>(emitter: NodeJS.EventEmitter, name: string, ms: number, filter: (v: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.removeListener(name, on);
      reject(new Error(`no '${name}' event within ${ms} ms`));
    }, ms);
    const on = (v: T): void => {
      if (!filter(v)) return;
      clearTimeout(t);
      emitter.removeListener(name, on);
      resolve(v);
    };
    emitter.on(name, on);
  });
}

/** Fresh folders go on tmpfs when there is one: the disk's history (recent mass deletes) must not slow tests. */
const TMP = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

/**
 * The temporary folders this test file made, removed once it is done, after its own hooks
 * (test/support/environment.js): what a test leaves behind, a state folder or a key, would otherwise
 * stay on tmpfs, thousands of folders a day of test runs.
 */
const scope = globalThis as typeof globalThis & { kubedevTempDirs?: Set<string> };
function madeHere(dir: string): string {
  (scope.kubedevTempDirs ??= new Set()).add(dir);
  return dir;
}

/** A fresh temporary folder (the caller may remove it; what is left goes when the test process exits). */
export function tempDir(prefix: string, base = TMP): string {
  return madeHere(fs.mkdtempSync(path.join(base, `kubedev-${prefix}-`)));
}

/** Writes files from a map of rel -> content (string) or { content, mode } or { link } or { dir }. */
export function writeTree(root: string, spec: Record<string, string | { content?: string | Buffer; mode?: number; link?: string; dir?: true }>): void {
  for (const [rel, v] of Object.entries(spec)) {
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    if (typeof v === 'string') fs.writeFileSync(abs, v);
    else if (v.link !== undefined) fs.symlinkSync(v.link, abs);
    else if (v.dir) fs.mkdirSync(abs, { recursive: true });
    else {
      fs.writeFileSync(abs, v.content ?? '');
      if (v.mode !== undefined) fs.chmodSync(abs, v.mode);
    }
  }
}
