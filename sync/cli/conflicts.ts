/**
 * `kubedev conflicts`: lists the open conflicts of two-way folders, or resolves them.
 *
 *   kubedev conflicts --env dist/app.k8s.yaml --name NAME [--json]
 *   kubedev conflicts --env ... --name NAME --take local|remote PATH...
 *   (or the connection flags of `kubedev sync`: --local --remote --host --port --user --identity --known-hosts)
 *
 * Listing reads the state on this machine only; --take connects and runs one two-way pass.
 * Exit codes: 0 done, 2 bad usage (a PATH not in conflict, no two-way folder), 1 failure at run time.
 */
import * as path from 'node:path';
import { Command } from 'commander';
import { resolveSessions, SyncCommandOptions } from '../attach/sync-options';
import { listConflicts, takeSide } from '../engine/two-way';
import { EXIT_FAILURE, UsageError } from '../errors';

export interface ConflictsCommandOptions extends SyncCommandOptions {
  readonly take?: string;
}

export interface ConflictsIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** Runs the command; resolves to the exit code. */
export async function runConflicts(o: ConflictsCommandOptions, paths: readonly string[], io: ConflictsIo = process): Promise<number> {
  const take = o.take;
  if (take !== undefined && take !== 'local' && take !== 'remote') throw new UsageError(`--take must be 'local' or 'remote' (got '${take}'). Pass --take local to keep your version, --take remote to keep the container's`);
  if (take !== undefined && paths.length === 0) throw new UsageError(`--take ${take} needs the paths to resolve. List them with 'kubedev conflicts' and pass them after --take ${take}`);
  if (take === undefined && paths.length > 0) throw new UsageError(`paths given without --take. Pass --take local or --take remote before ${paths[0]}`);
  const folders = resolveSessions({ ...o, once: true, mode: o.env === undefined ? 'two-way' : undefined }).filter((f) => f.mode === 'two-way');
  if (folders.length === 0) throw new UsageError(`environment '${o.name}' has no two-way sync folder, so it has no conflicts. Set mode: 'two-way' on a sync folder (or run kubedev sync --mode two-way)`);
  if (take === undefined) {
    let n = 0;
    for (const f of folders) {
      for (const c of listConflicts(f)) {
        n++;
        if (o.json) io.stdout.write(`${JSON.stringify({ event: 'conflict', folder: f.localRoot, remote: f.remoteRoot, path: c.rel, copy: c.copy, why: c.why, at: c.at })}\n`);
        else io.stdout.write(`${c.rel}\t${c.why}${c.copy ? `; remote version in ${c.copy}` : ''} (${f.localRoot}, since ${c.at})\n`);
      }
    }
    if (!o.json && n === 0) io.stderr.write('kubedev: no conflicts\n');
    return 0;
  }
  // Each PATH: relative to its folder, or a path to the local file.
  const plan = folders.map((f) => ({ f, rels: [] as string[] }));
  for (const p of paths) {
    const hit = plan.find(({ f }) => {
      const abs = path.resolve(p);
      const rel = abs.startsWith(`${f.localRoot}${path.sep}`) ? path.relative(f.localRoot, abs).split(path.sep).join('/') : p;
      if (!listConflicts(f).some((c) => c.rel === rel)) return false;
      plan.find((x) => x.f === f)?.rels.push(rel);
      return true;
    });
    if (!hit) throw new UsageError(`'${p}' is not in conflict. List the conflicts with 'kubedev conflicts${o.env ? ` --env ${o.env} --name ${o.name}` : ''}' and pass one of their paths`);
  }
  try {
    for (const { f, rels } of plan) {
      if (rels.length === 0) continue;
      await takeSide(f, take, rels);
      for (const rel of rels) {
        if (o.json) io.stdout.write(`${JSON.stringify({ event: 'resolved', folder: f.localRoot, path: rel, took: take })}\n`);
        io.stderr.write(`kubedev: resolved '${rel}': took the ${take} version\n`);
      }
    }
  } catch (e) {
    io.stderr.write(`kubedev: ${(e as Error).message}\n`);
    return EXIT_FAILURE;
  }
  return 0;
}

export function registerConflicts(program: Command): void {
  program
    .command('conflicts')
    .description('List the conflicts of two-way sync folders, or resolve them with --take local|remote PATH...')
    .argument('[paths...]', 'paths to resolve (with --take)')
    .option('--env <file>', 'synthesized YAML holding the environment (with --name)')
    .option('--name <name>', 'environment name inside --env')
    .option('--take <side>', "'local' (keep your version, send it) or 'remote' (keep the container's, fetch it)")
    .option('--local <dir>', 'local folder (instead of --env)')
    .option('--remote <path>', 'absolute remote folder')
    .option('--host <host>', 'SSH server address (default with --env: 127.0.0.1)')
    .option('--port <port>', "SSH server port (default with --env: the environment's)")
    .option('--user <user>', "SSH user (default with --env: the environment's)")
    .option('--identity <file>', 'private key file')
    .option('--known-hosts <file>', "known_hosts file with the server's key")
    .option('--json', 'one JSON object per line on stdout')
    .action(async (paths: string[], opts: ConflictsCommandOptions) => {
      const code = await runConflicts(opts, paths);
      if (code !== 0) process.exitCode = code;
    });
}
