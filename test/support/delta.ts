/** Helpers for the changed-blocks suites (test/hostile/delta*.test.ts): local files, scattered changes, one file sent with hooks. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplyContext, ApplyResult } from '../../sync/engine/apply';
import { applySftp } from '../../sync/engine/apply-sftp';
import { DeltaHooks, withDeltas } from '../../sync/engine/delta';
import { Plan, planBytes } from '../../sync/engine/plan';
import { Connection } from '../../sync/engine/transport';
import { Entry } from '../../sync/engine/tree';
import { Arena } from './hostile';
import { Sshd } from './sshd';

let tick = 0;
/** Writes `buf` as the local file `rel` of `a` with an mtime of its own (whole seconds compare). */
export function put(a: Arena, rel: string, buf: Buffer): string {
  const abs = path.join(a.local, rel);
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  fs.writeFileSync(abs, buf);
  const t = Math.floor(Date.now() / 1000) - 1000 + ++tick * 10;
  fs.utimesSync(abs, t, t);
  return abs;
}

/** `buf` with `count` regions of `len` random bytes at scattered offsets. */
export function scatter(buf: Buffer, count: number, len: number): Buffer {
  const out = Buffer.from(buf);
  for (let i = 0; i < count; i++) crypto.randomBytes(len).copy(out, Math.floor(((i + 0.37) / count) * (out.length - len)));
  return out;
}

/** The runner's temporary files (`.kubedev-*`) anywhere below `dir`. */
export function leftovers(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.kubedev-')) out.push(path.join(dir, e.name));
    else if (e.isDirectory()) out.push(...leftovers(path.join(dir, e.name)));
  }
  return out;
}

/** A context over a fresh connection (the caller closes `conn`); the remote entries are read from the remote folder itself. */
export async function deltaContext(sshd: Sshd, a: Arena, extra: Partial<ApplyContext> = {}): Promise<ApplyContext> {
  const conn = await Connection.open({ host: sshd.host, port: sshd.port, user: sshd.user, identity: sshd.identity, knownHosts: sshd.knownHosts });
  const get = (rel: string): Entry | undefined => {
    try {
      const st = fs.lstatSync(path.join(a.remote, rel));
      return { type: st.isDirectory() ? 'dir' : 'file', size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 };
    } catch {
      return undefined;
    }
  };
  return { conn, localRoot: a.local, remoteRoot: a.remote, remote: { get }, ...extra };
}

/** Sends `rel` with `hooks` between the steps; the whole-file way is SFTP. */
export function sendOne(ctx: ApplyContext, rel: string, hooks: DeltaHooks): Promise<ApplyResult> {
  const st = fs.lstatSync(path.join(ctx.localRoot, rel));
  const plan: Plan = { deletes: [], dirs: [], links: [], chmods: [], files: [{ rel, entry: { type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, exact: true } }] };
  return withDeltas(ctx, plan, (c, p) => applySftp(c, p, planBytes(p)), hooks);
}
