/**
 * The one check of a sync root on the server (`--remote`, an attach record's `folders[i].remote`, a
 * spec's `sync[i].remote`, SyncSession's `remoteRoot`): mirroring deletes whatever the root holds that
 * the local folder does not, so a root that is `/`, a system folder or not a plain absolute path is
 * refused before anything connects.
 */
import { hasControlCharacter } from './names';
import { problem } from './problems';

/**
 * Top-level system folders (and a few well-known second-level ones) a sync root may lie below but
 * never be: mirroring into one would delete the system's files.
 */
export const SYSTEM_FOLDERS: readonly string[] = [
  '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/root', '/run',
  '/sbin', '/sys', '/tmp', '/usr', '/var',
  '/usr/bin', '/usr/sbin', '/usr/lib', '/usr/lib64', '/usr/libexec', '/usr/local', '/usr/share', '/usr/include', '/usr/src',
  '/var/lib', '/var/log', '/var/run', '/var/cache', '/var/tmp', '/var/spool', '/var/mail',
];

/**
 * Kernel and device file systems: nothing below them is a place for files. `/dev/shm` (an ordinary
 * tmpfs for scratch files) is the one exception: a folder below it may be a root, `/dev/shm` itself not.
 */
export const KERNEL_FOLDERS: readonly string[] = ['/proc', '/sys', '/dev'];
const SCRATCH_BELOW_DEV = '/dev/shm/';

/** What is wrong with a remote root, for a caller to phrase with its own subject. */
export interface RemoteRootProblem {
  /** e.g. `is '/', the whole file system` */
  readonly what: string;
  /** e.g. `Mirror into a folder of its own, e.g. '/workspace'` */
  readonly fix: string;
}

const EXAMPLE = "e.g. '/workspace'";

/** The problem with `value` as a sync root on the server, or undefined when it is safe. */
export function remoteRootProblem(value: unknown): RemoteRootProblem | undefined {
  if (typeof value !== 'string' || value === '') return { what: 'is missing', fix: `Give the absolute folder to mirror into, ${EXAMPLE}` };
  if (hasControlCharacter(value)) return { what: 'holds a control character (NUL, line break, tab, ...)', fix: `Use a plain absolute path, ${EXAMPLE}` };
  if (!value.startsWith('/')) return { what: 'is not an absolute path', fix: `Use an absolute folder, ${EXAMPLE}` };
  if (value === '/' || /^\/+$/.test(value)) return { what: "is '/', the whole file system", fix: `Mirror into a folder of its own, ${EXAMPLE}` };
  const normal = normalizeRemote(value);
  if (normal !== value) {
    const safe = remoteRootProblem(normal) === undefined;
    return {
      what: "is not a normalized path ('.' or '..' segments, '//' or a trailing '/')",
      fix: safe ? `Write it as '${normal}'` : `Write it without them, ${EXAMPLE}`,
    };
  }
  if (SYSTEM_FOLDERS.includes(value)) return { what: `is the system folder '${value}'`, fix: `Mirror into a folder of its own, ${EXAMPLE}` };
  const kernel = KERNEL_FOLDERS.find((k) => value.startsWith(`${k}/`));
  if (kernel && !value.startsWith(SCRATCH_BELOW_DEV)) {
    return { what: `lies inside '${kernel}', a kernel file system`, fix: `Mirror into an ordinary folder, ${EXAMPLE}` };
  }
  return undefined;
}

/**
 * The same rule as a POSIX sh `case` on the shell variable `variable` holding a canonical path (as
 * `realpath -m` prints it): the statement exits with `code` when the path is refused. The runner runs it
 * on the server, where a root that is text-safe may still resolve (through a symlink) to `/` or `/usr`.
 */
export function remoteRootShellCheck(variable: string, code: number): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const exact = ['/', ...SYSTEM_FOLDERS].map(q).join('|');
  const kernel = KERNEL_FOLDERS.map((k) => `${q(`${k}/`)}*`).join('|');
  return `case "$${variable}" in ${exact}) exit ${code};; ${q(SCRATCH_BELOW_DEV)}?*) ;; ${kernel}) exit ${code};; esac`;
}

/** True when `value` is a safe sync root (see remoteRootProblem). */
export function isSafeRemoteRoot(value: unknown): value is string {
  return remoteRootProblem(value) === undefined;
}

/** Thrown by assertSafeRemoteRoot(); names the field (flag, record field, option) at fault. */
export class UnsafeRemoteRootError extends Error {
  constructor(message: string, public readonly field: string, public readonly value: unknown) {
    super(message);
    this.name = 'UnsafeRemoteRootError';
  }
}

/**
 * Throws an UnsafeRemoteRootError unless `value` is a safe sync root; returns it otherwise.
 * @param field what the user wrote it as: `--remote`, `folders[0].remote`, `remoteRoot`
 * @param kind what `field` is, for the message: `option`, `attach record field`, ...
 */
export function assertSafeRemoteRoot(value: unknown, field: string, kind = 'option'): string {
  const p = remoteRootProblem(value);
  if (p) throw new UnsafeRemoteRootError(problem(kind, field, `the remote folder ${p.what}`, value, p.fix), field, value);
  return value as string;
}

/** `path.posix.normalize` without a trailing slash (and without node:path, to keep lib portable). */
function normalizeRemote(value: string): string {
  const out: string[] = [];
  for (const s of value.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  return `/${out.join('/')}`;
}
