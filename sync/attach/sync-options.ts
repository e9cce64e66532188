/**
 * From `kubedev sync` flags (or an attach record, with --env/--name) to one SyncOptions per folder,
 * every flag and record field checked before connecting (UsageError naming it). Shared by the
 * commands that open sessions (`sync`, `conflicts`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AttachRecordError, pickAttachRecord } from '../../lib/attach';
import { KubeObject } from '../../lib/k8s';
import { UsageError } from '../errors';
import { SyncOptions } from '../engine/session';
import { checkIdentity, checkIgnore, checkLocalRoot, checkRemoteRoot } from './checks';
import { keyPaths } from './key-store';
import { WATCH_CHOICES, WatchChoice } from '../engine/watch';

export interface SyncCommandOptions {
  readonly local?: string;
  readonly remote?: string;
  readonly host?: string;
  readonly port?: string;
  readonly user?: string;
  readonly identity?: string;
  readonly knownHosts?: string;
  readonly once?: boolean;
  readonly json?: boolean;
  readonly progress?: boolean;
  readonly ignore?: string[];
  readonly env?: string;
  readonly name?: string;
  readonly mode?: string;
  readonly watch?: string;
}

function parsePort(v: string | undefined, flag: string): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v) || n < 1 || n > 65535) {
    throw new UsageError(`${flag} must be a TCP port number from 1 to 65535 (got '${v}'). Pass the port the server's sshd listens on`);
  }
  return n;
}

function needFile(file: string, flag: string, what: string): string {
  const abs = path.resolve(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new UsageError(`${flag} '${file}' does not exist. Pass ${what}`);
  }
  if (!st.isFile()) throw new UsageError(`${flag} '${file}' is not a file. Pass ${what}`);
  try {
    fs.accessSync(abs, fs.constants.R_OK);
  } catch {
    throw new UsageError(`${flag} '${file}' is not readable. Fix its permissions, or pass ${what}`);
  }
  return abs;
}

function parseMode(v: string | undefined): 'mirror' | 'two-way' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'mirror' && v !== 'two-way') throw new UsageError(`--mode must be 'mirror' or 'two-way' (got '${v}'). Pass --mode mirror (one-way, local wins) or --mode two-way`);
  return v;
}

function parseWatch(v: string | undefined): WatchChoice {
  if (v === undefined) return 'auto';
  if ((WATCH_CHOICES as readonly string[]).includes(v)) return v as WatchChoice;
  throw new UsageError(`--watch '${v}' is not a watch backend. Pass one of ${WATCH_CHOICES.join(', ')} (auto picks by platform; poll for network folders)`);
}

function needDir(dir: string, flag: string): string {
  const abs = path.resolve(dir);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch {
    st = undefined;
  }
  if (!st?.isDirectory()) throw new UsageError(`${flag} '${dir}' is not an existing folder. Pass the local folder to mirror`);
  return abs;
}

/** Turns flags into one session per folder, or a UsageError naming the flag at fault. */
export function resolveSessions(o: SyncCommandOptions): SyncOptions[] {
  const ignore = checkIgnore(o.ignore ?? [], '--ignore');
  const watch = !o.once;
  const mode = parseMode(o.mode);
  const watchBackend = parseWatch(o.watch);
  if (o.env !== undefined || o.name !== undefined) {
    if (o.env === undefined) throw new UsageError(`--name needs --env: pass --env dist/<app>.k8s.yaml --name ${o.name}`);
    if (o.name === undefined) throw new UsageError(`--env needs --name: pass the environment's name, e.g. --env ${o.env} --name my-env`);
    if (o.local !== undefined || o.remote !== undefined) throw new UsageError('--env takes the folders from the environment: drop --local and --remote, or drop --env and --name');
    const file = needFile(o.env, '--env', 'a YAML file synthesized by kubedev (npm run synth)');
    let objects: KubeObject[];
    try {
      // yaml loads only here: `kubedev sync --local ...` never needs it (start-up is part of every run).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const docs = (require('yaml') as typeof import('yaml')).parseAllDocuments(fs.readFileSync(file, 'utf8'));
      objects = [];
      for (const d of Array.isArray(docs) ? docs : [docs]) {
        if (d.errors.length > 0) throw new Error(d.errors[0].message);
        const v = d.toJS() as KubeObject | null;
        if (v && typeof v === 'object') objects.push(v);
      }
    } catch (e) {
      throw new UsageError(`--env '${o.env}' is not valid YAML (${(e as Error).message.split('\n')[0]}). Synthesize it again (npm run synth)`);
    }
    let record;
    try {
      record = pickAttachRecord(objects, o.name, o.env);
    } catch (e) {
      if (e instanceof AttachRecordError) throw new UsageError(e.message);
      throw e;
    }
    const keys = keyPaths(record.namespace, record.name);
    const keyFix = `the client key ('kubedev keys --env ${o.env} --name ${o.name}' makes one in ${keys.dir})`;
    const identity = checkIdentity(needFile(o.identity ?? keys.clientKey, '--identity', keyFix), '--identity', keyFix);
    const knownHosts = needFile(o.knownHosts ?? keys.knownHosts, '--known-hosts', `a known_hosts file listing the sidecar's host key ('kubedev keys --env ${o.env} --name ${o.name}' writes one)`);
    const host = o.host ?? '127.0.0.1';
    const port = o.port === undefined ? record.ssh.port : parsePort(o.port, '--port');
    const user = o.user ?? record.ssh.user;
    return record.folders.map((f, i) => ({
      localRoot: checkLocalRoot(needDir(f.local, `local folder '${f.local}' of environment '${record.name}' (from --env; relative to the current folder)`), `folders[${i}].local`),
      remoteRoot: checkRemoteRoot(f.remote, `folders[${i}].remote`, `attach record of '${record.name}', field`),
      host,
      port,
      user,
      identity,
      knownHosts,
      ignore: [...checkIgnore(f.ignore, `folders[${i}].ignore`), ...ignore],
      watch,
      watchBackend,
      mode: mode ?? f.mode ?? 'mirror',
      remoteOwns: checkIgnore(f.remoteOwns ?? [], `folders[${i}].remoteOwns`),
      localOwns: checkIgnore(f.localOwns ?? [], `folders[${i}].localOwns`),
    }));
  }
  const missing = (['local', 'remote', 'host', 'port', 'user', 'identity', 'knownHosts'] as const).filter((k) => o[k] === undefined);
  if (missing.length > 0) {
    const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    throw new UsageError(`missing ${missing.map(flag).join(', ')}. Pass --local DIR --remote /abs/path --host H --port P --user U --identity KEY --known-hosts FILE, or --env FILE --name NAME`);
  }
  return [
    {
      localRoot: checkLocalRoot(needDir(o.local as string, '--local'), '--local'),
      remoteRoot: checkRemoteRoot(o.remote, '--remote'),
      host: o.host as string,
      port: parsePort(o.port, '--port'),
      user: o.user as string,
      identity: checkIdentity(needFile(o.identity as string, '--identity', 'the private key the server accepts'), '--identity', 'the private key the server accepts'),
      knownHosts: needFile(o.knownHosts as string, '--known-hosts', "a known_hosts file that lists the server's host key"),
      ignore,
      watch,
      watchBackend,
      mode: mode ?? 'mirror',
    },
  ];
}
