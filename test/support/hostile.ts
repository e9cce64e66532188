/**
 * The hostile-input harness: the sidecar's own sshd_config run by a non-root user on 127.0.0.1, a
 * remote root inside a folder that also holds a sentinel (which every test checks untouched), and a way
 * to run the `kubedev` command as a non-root local user (where root would read what the developer cannot).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderSshdConfig } from '../../lib/sshd';
import { SyncOptions, SyncSession } from '../../sync/engine/session';
import { Connection } from '../../sync/engine/transport';
import { runCli } from './cli';
import { Sshd, startSshd } from './sshd';
import { differences, snapshot, Snapshot, tempDir, writeTree } from './trees';

export async function startSidecarSshd(user = 'kubedev-test'): Promise<Sshd> {
  return startSshd({
    user,
    asUser: true,
    config: (p) => renderSshdConfig({ port: p.port, user: p.user, listenAddress: '127.0.0.1', hostKey: p.hostKey, authorizedKeysFile: p.authorizedKeys, pidFile: p.pidFile }),
  });
}

export interface Arena {
  readonly local: string;
  /** The remote root (inside `base`, beside the sentinel). */
  readonly remote: string;
  readonly base: string;
  /** Differences between the sentinel now and when the arena was made (must stay empty). */
  sentinelChanges(): string[];
  /** Differences between the local and remote trees (skipping `skip`). */
  differences(skip?: (rel: string) => boolean): string[];
  session(extra?: Partial<SyncOptions>): SyncSession;
  close(): Promise<void>;
}

/** A local folder, and a remote base owned by the sshd user holding `ws/` (the root) and `sentinel/`. */
export function arena(sshd: Sshd): Arena {
  const local = tempDir('hostile-local');
  const base = tempDir('hostile-remote');
  const remote = path.join(base, 'ws');
  const sentinel = path.join(base, 'sentinel');
  const state = tempDir('hostile-state'); // the runner's changed-blocks cache, not the user's
  writeTree(sentinel, { 'keep.txt': 'do not touch', 'sub/deep.txt': 'deep', 'ro.txt': { content: 'ro', mode: 0o444 } });
  execFileSync('chown', ['-R', `${sshd.uid}:${sshd.gid}`, base]);
  const before: Snapshot = snapshot(sentinel);
  const sessions: SyncSession[] = [];
  return {
    local,
    remote,
    base,
    sentinelChanges: () => differences(before, snapshot(sentinel)),
    differences: (skip = () => false) => differences(snapshot(local, skip), fs.existsSync(remote) ? snapshot(remote, skip) : {}),
    session(extra = {}) {
      const s = new SyncSession({ localRoot: local, remoteRoot: remote, host: sshd.host, port: sshd.port, user: sshd.user, identity: sshd.identity, knownHosts: sshd.knownHosts, blockCache: state, ...extra });
      sessions.push(s);
      return s;
    },
    async close() {
      await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
      for (const d of [local, base, state]) {
        execFileSync('chmod', ['-R', 'u+rwx', d]);
        execFileSync('rm', ['-rf', d]); // coreutils: paths deeper than PATH_MAX too
      }
    },
  };
}

/** One `--once` pass of `a` (with `extra` options); the warnings it gave. */
export async function passWarnings(a: Arena, extra: Partial<SyncOptions> = {}): Promise<string[]> {
  const warnings: string[] = [];
  const s = a.session({ watch: false, ...extra });
  s.on('warning', (w) => warnings.push(w));
  try {
    await s.start();
  } finally {
    await s.close();
  }
  return warnings;
}

/** The sync flags for `arena` against `sshd`, with key files the local user `as` may read. */
export function syncArgs(a: Arena, sshd: Sshd, as?: LocalUser): string[] {
  let identity = sshd.identity;
  let knownHosts = sshd.knownHosts;
  if (as) {
    const dir = tempDir('hostile-keys');
    identity = path.join(dir, 'id');
    knownHosts = path.join(dir, 'known_hosts');
    fs.copyFileSync(sshd.identity, identity);
    fs.copyFileSync(sshd.knownHosts, knownHosts);
    execFileSync('chown', ['-R', `${as.uid}:${as.gid}`, dir]);
    fs.chmodSync(identity, 0o600);
  }
  return ['sync', '--local', a.local, '--remote', a.remote, '--host', sshd.host, '--port', String(sshd.port), '--user', sshd.user, '--identity', identity, '--known-hosts', knownHosts];
}

export interface LocalUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** A non-root local user (created when absent; the tests run as root in CI). */
export function localUser(name = 'kubedev-dev'): LocalUser {
  const lookup = (): string | undefined => {
    try {
      return execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
    } catch {
      return undefined;
    }
  };
  if (!lookup()) {
    if (process.getuid?.() !== 0) throw new Error(`local test user '${name}' does not exist and only root can create it. Run the tests as root, or create it with 'useradd -m -s /bin/sh ${name}'.`);
    execFileSync('useradd', ['-m', '-s', '/bin/sh', name]);
  }
  const f = (lookup() ?? '').split(':');
  return { name, uid: Number(f[2]), gid: Number(f[3]) };
}

/** Runs the kubedev command as `user` (setpriv, as a developer would run it: no root privileges). */
export async function runCliAs(user: LocalUser, args: readonly string[], ms = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(args, ms, { env: { HOME: `/home/${user.name}` }, as: user });
}

/**
 * Registers the hooks every hostile test file shares: one sidecar sshd per file, a fresh arena per test,
 * and the sentinel checked untouched after each. Returns getters (valid inside tests).
 */
export function useArena(): { sshd(): Sshd; arena(): Arena } {
  let sshd: Sshd | undefined;
  let current: Arena | undefined;
  beforeAll(async () => {
    sshd = await startSidecarSshd();
  });
  afterAll(async () => {
    await sshd?.close();
  });
  beforeEach(() => {
    current = arena(sshd as Sshd);
  });
  afterEach(async () => {
    const a = current as Arena;
    current = undefined;
    const changes = a.sentinelChanges();
    await a.close();
    expect(changes).toEqual([]);
  });
  return { sshd: () => sshd as Sshd, arena: () => current as Arena };
}

/** An SSH connection to the arena's sshd per test (closed after each): call `connect()` inside a test. */
export function useConnection(sshd: () => Sshd): () => Promise<Connection> {
  let conn: Connection | undefined;
  afterEach(async () => {
    await conn?.close();
    conn = undefined;
  });
  return async () => {
    const s = sshd();
    conn = await Connection.open({ host: '127.0.0.1', port: s.port, user: s.user, identity: s.identity, knownHosts: s.knownHosts });
    return conn;
  };
}

/** The remote root as the sshd user owns it, holding `tree`; then `prepare` (as the container would). */
export function remoteTree(sshd: Sshd, a: Arena, tree: Record<string, string>, prepare: () => void = () => undefined): void {
  writeTree(a.remote, tree);
  prepare();
  execFileSync('chown', ['-R', '-h', `${sshd.uid}:${sshd.gid}`, a.remote]);
}

/** A server without `tool`: its probe (`command -v TOOL `) looks for a command that does not exist. */
export function without(tool: string, c: Connection): Connection {
  return rewriting(c, (command) => command.replace(`command -v ${tool} `, `command -v kubedev-no-${tool} `));
}

/** The comparison by content's server script (verify.ts) with `tools` tried instead of xxh128sum and sha1sum (none: a server without either). */
export function hashToolsOnly(command: string, ...tools: string[]): string {
  return command.replace('for x in xxh128sum sha1sum;', `for x in ${tools.length > 0 ? tools.join(' ') : 'kubedev-none'};`);
}

/** `c` with every command it runs passed through `rewrite` first (a server that behaves otherwise). */
export function rewriting(c: Connection, rewrite: (command: string) => string): Connection {
  const exec = c.exec.bind(c);
  return Object.assign(Object.create(c) as Connection, {
    exec: (command: string, ...rest: Parameters<Connection['exec']> extends [string, ...infer R] ? R : never) => exec(rewrite(command), ...rest),
  });
}
