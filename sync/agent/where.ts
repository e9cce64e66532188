/**
 * Where a user's agent listens, and whether it may be used at all. Loaded by every `kubedev sync
 * --once` before anything else: it needs only node's own fs, os and path.
 *
 * - The socket lives in a folder only the user can enter: `$XDG_RUNTIME_DIR/kubedev` (systemd makes
 *   the runtime dir 0700), else `<tmpdir>/kubedev-<uid>`. The folder is made 0700; one that is a link,
 *   belongs to someone else or lets others in is refused (no agent: the run goes on in-process), and
 *   so is one in a folder others may write without the sticky bit.
 * - Its name holds a hash of what makes two runs interchangeable: kubedev's build (the folder and the
 *   agent file's inode, size, modification and change times, so a rebuilt or upgraded kubedev never
 *   talks to an old agent), the Node binary, the user's ids and groups, the mount namespace, and the
 *   environment the run reads (HOME, PATH, TMPDIR, NODE_OPTIONS, XDG_*, KUBEDEV_*, the locale). A run from
 *   another environment meets another agent, never one that reads other keys.
 * - `KUBEDEV_AGENT=off` never uses one; `on` always; unset: on, except where `CI` is set (a CI job
 *   gets no process left behind) and on Windows (named pipes there are not private by default).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** How long an agent and its connections stay after their last use (OpenSSH's ControlPersist). */
export const DEFAULT_PERSIST_S = 600;

/** Whether this run may use (and leave behind) an agent. */
export function agentAllowed(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): boolean {
  const v = env.KUBEDEV_AGENT;
  if (v === 'off' || v === '0') return false;
  if (v === 'on' || v === '1') return platform !== 'win32';
  return platform !== 'win32' && !env.CI;
}

/** Seconds an idle agent stays: KUBEDEV_AGENT_PERSIST (1 to 86,400), else 600. */
export function persistSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.KUBEDEV_AGENT_PERSIST;
  const n = Number(v);
  return v !== undefined && /^\d+$/.test(v) && n >= 1 && n <= 86_400 ? n : DEFAULT_PERSIST_S;
}

/** FNV-1a, 52 bits, base 36: short enough for a socket path (108 bytes at most on Linux). */
function hash(text: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x1000193;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return ((h1 >>> 0) * 0x100000 + (h2 & 0xfffff)).toString(36);
}

/** The locale (the language of the local tar's and gzip's messages a run passes on). */
const LOCALE = /^(LANG|LANGUAGE|LC_[A-Z_]+)$/;

/** The environment variables a run reads, as one text (sorted). */
export function envText(env: NodeJS.ProcessEnv): string {
  const keys = Object.keys(env)
    .filter((k) => LOCALE.test(k) || k === 'HOME' || k === 'PATH' || k === 'TMPDIR' || k === 'NODE_OPTIONS' || k.startsWith('XDG_') || (k.startsWith('KUBEDEV_') && !k.startsWith('KUBEDEV_AGENT')))
    .sort();
  return keys.map((k) => `${k}=${env[k]}`).join('\0');
}

/**
 * Who the run is and which files its paths name, beyond the user: its groups decide what it may read
 * and write (`newgrp`, `sg`, or a new login after `usermod -aG` give the same user other groups than
 * the agent it left earlier); its mount namespace and root, what a path means (a container sharing
 * the runtime folder, as toolbox and distrobox do, sees other files under the same names).
 */
function credentials(): string {
  if (typeof process.getuid !== 'function') return '';
  let where = '';
  try {
    const root = fs.statSync('/');
    where = `${root.dev}:${root.ino}:${process.platform === 'linux' ? fs.readlinkSync('/proc/self/ns/mnt') : ''}`;
  } catch {
    // no /proc: the root alone
  }
  return [process.getuid(), process.geteuid?.(), process.getgid?.(), process.getegid?.(), ...(process.getgroups?.() ?? []).sort((a, b) => a - b), where].join(',');
}

/** The folder the socket lives in (made if missing), or undefined when it is not private. */
export function agentFolder(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  const runtime = env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR) ? path.join(env.XDG_RUNTIME_DIR, 'kubedev') : path.join(os.tmpdir(), `kubedev-${uid}`);
  try {
    fs.mkdirSync(runtime, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return undefined;
  }
  try {
    const st = fs.lstatSync(runtime);
    if (!st.isDirectory() || (uid >= 0 && st.uid !== uid) || (st.mode & 0o077) !== 0) return undefined;
    // Its parent: where others may write without the sticky bit (unlike /tmp), they may rename the
    // folder checked above away and put theirs in its place before the socket is reached.
    const up = fs.statSync(path.dirname(runtime));
    if ((up.mode & 0o022) !== 0 && (up.mode & 0o1000) === 0) return undefined;
  } catch {
    return undefined;
  }
  return runtime;
}

/** The agent's entry file (compiled, beside this one). */
export const AGENT_MAIN = path.join(__dirname, 'server.js');

/**
 * The longest socket path the kernel keeps whole (sockaddr_un.sun_path less its NUL: 108 on Linux, 104
 * on macOS and the BSDs). Node cuts a longer one short without a word, on listen and on connect alike:
 * the cut name may lie outside the private folder, where anyone may listen.
 */
const SUN_PATH_MAX = process.platform === 'linux' ? 107 : 103;

/** The socket path for this build and environment, or undefined (no private folder, no build, too long). */
export function socketPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const folder = agentFolder(env);
  if (!folder) return undefined;
  let stamp: string;
  try {
    // Its inode and change time too: an install writes every file anew but dates it as the package
    // says (npm: 1985-10-26 for all), so the modification time alone stays the same across versions.
    const st = fs.statSync(AGENT_MAIN);
    stamp = `${st.mtimeMs}:${st.ctimeMs}:${st.ino}:${st.size}`;
  } catch {
    return undefined;
  }
  const id = hash(`${path.dirname(AGENT_MAIN)}\0${stamp}\0${process.execPath}\0${process.version}\0${credentials()}\0${envText(env)}`);
  const socket = path.join(folder, `agent-${id}.sock`);
  return Buffer.byteLength(socket) <= SUN_PATH_MAX ? socket : undefined;
}
