/**
 * `kubedev keys`: make the developer's client key and the sidecar's host key for one environment,
 * print (or apply) the two Secrets the environment mounts, and pin the host key in kubedev's own
 * known_hosts. Keys stay under the user's config folder, never in the repository.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { stringify } from 'yaml';
import { UsageError } from '../errors';
import { ensureKeys, keyPaths, renderKeySecrets } from '../attach/key-store';
import { KubectlError, checkKubeconfig, kubectl } from '../attach/kubectl';
import { loadTarget } from '../attach/record';

export interface KeysOptions {
  readonly env?: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly context?: string;
  readonly apply?: boolean;
  readonly rotate?: boolean;
}

/** The git work tree holding `dir`, if any. */
function repositoryOf(dir: string): string | undefined {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, '.git'))) return d;
    if (d === path.dirname(d)) return undefined;
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Runs `kubedev keys`; stdout gets the Secrets' YAML (unless applied), stderr the account of what was done. */
export async function runKeys(options: KeysOptions, io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process): Promise<void> {
  const target = await loadTarget(options);
  const { record } = target;

  if (options.env !== undefined) {
    // Private keys never go into the project: refuse a config folder inside the env file's repository.
    const dir = keyPaths(record.namespace, record.name).dir;
    const repo = repositoryOf(path.dirname(options.env));
    const guarded = repo ?? path.resolve(path.dirname(options.env));
    if (isInside(dir, guarded)) {
      throw new UsageError(
        `the key folder ${dir} is inside ${repo ? `the repository ${repo}` : `${guarded}, the folder of --env`}, where private keys could be committed or shipped. Point XDG_CONFIG_HOME outside it (or unset it to use ~/.config).`,
      );
    }
  }
  if (options.apply) {
    // Before any key is made: fail fast on the thing the user can fix.
    try {
      checkKubeconfig();
    } catch (e) {
      throw e instanceof KubectlError ? new UsageError(e.message) : e;
    }
  }

  const { paths, written } = ensureKeys(record, { rotate: options.rotate });
  const yaml = renderKeySecrets(record, paths).map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
  const id = `${record.namespace}/${record.name}`;
  io.stderr.write(
    written.length === 0
      ? `kubedev: keys for ${id} already in ${paths.dir} (kept; --rotate makes new ones).\n`
      : `kubedev: ${options.rotate ? 'new' : 'made'} keys for ${id} in ${paths.dir} (${written.map((f) => path.basename(f)).join(', ')}).\n`,
  );

  if (!options.apply) {
    io.stdout.write(yaml);
    io.stderr.write(
      `kubedev: the Secrets '${record.ssh.hostKeySecret}' and '${record.ssh.authorizedKeysSecret}' above hold a private key: apply them (pipe to 'kubectl apply -f -', or run again with --apply), do not commit them.\n`,
    );
    return;
  }
  try {
    const out = await kubectl(['apply', '-n', record.namespace, '-f', '-'], { input: yaml, context: options.context });
    io.stderr.write(out.stdout.split('\n').filter((l) => l !== '').map((l) => `kubedev: ${l}\n`).join(''));
  } catch (e) {
    if (e instanceof KubectlError) {
      if (e.kind === 'forbidden' && /cannot create/i.test(e.stderr)) {
        // The developer role may get and patch its key Secrets by name, but not create them:
        // resourceNames cannot restrict `create`, so the first creation is an admin's.
        throw new Error(
          `the cluster refused to create the key Secrets (${e.stderr.trim().split('\n').pop()}). Your role may update them but not create them: ask an admin to create them once, empty (kubectl create secret generic ${record.ssh.hostKeySecret} -n ${record.namespace} && kubectl create secret generic ${record.ssh.authorizedKeysSecret} -n ${record.namespace}), then run this again`,
        );
      }
      if (e.kind === 'not-found' && /namespaces? .*not found/i.test(e.stderr)) {
        throw new Error(`namespace '${record.namespace}' does not exist on the cluster. Apply the environment's file first: kubectl apply -f ${options.env ?? 'dist/<app>.k8s.yaml'}`);
      }
      throw new Error(`applying the key Secrets failed: ${e.message}`);
    }
    throw e;
  }
  if (options.rotate) {
    io.stderr.write(`kubedev: the running sidecar keeps its old host key until its pod restarts: kubectl delete pod -n ${record.namespace} ${record.pod ?? `-l kubedev.io/environment=${record.name}`}\n`);
  }
}

export function registerKeys(program: Command): void {
  program
    .command('keys')
    .description("Make an environment's SSH client and host keys (kept under ~/.config/kubedev), and print or apply its key Secrets.")
    .option('--env <file>', 'a synthesized YAML file holding the environment (e.g. dist/app.k8s.yaml)')
    .option('--namespace <ns>', 'look the environment up on the live cluster, in this namespace (instead of --env)')
    .requiredOption('--name <name>', "the environment's name")
    .option('--apply', "apply the Secrets with 'kubectl apply -f -' instead of printing them")
    .option('--rotate', 'replace existing keys with new ones')
    .option('--context <ctx>', 'kubectl context to use')
    .action(async (opts: KeysOptions) => {
      await runKeys(opts);
    });
}
