/**
 * Finds an environment's attach record: in a synthesized YAML file (`--env dist/app.k8s.yaml --name N`)
 * or on the live cluster (`--namespace NS --name N`, through kubectl). Shared by `kubedev keys` and
 * `kubedev up`; every failure names the file or setting at fault and the command that fixes it.
 */
import * as fs from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { AttachRecord, AttachRecordError, findAttachRecords, pickAttachRecord } from '../../lib/attach';
import { KubeObject } from '../../lib/k8s';
import { isDnsLabel } from '../../lib/names';
import { UsageError } from '../errors';
import { KubectlError, checkKubeconfig, kubectl } from './kubectl';

/** The label every environment's workload carries (lib's ENVIRONMENT_LABEL). */
export const ENVIRONMENT_LABEL = 'kubedev.io/environment';

export interface TargetOptions {
  /** A synthesized YAML file. */
  readonly env?: string;
  /** The environment's name. */
  readonly name?: string;
  /** With no --env: the namespace to look in on the live cluster. */
  readonly namespace?: string;
  /** kubectl --context. */
  readonly context?: string;
  readonly signal?: AbortSignal;
}

export interface Target {
  readonly record: AttachRecord;
  /** Where the record came from, for messages: the file, or `cluster namespace/name`. */
  readonly source: string;
  /** The options that find it again, as command-line flags (for the fix in messages). */
  readonly flags: string;
}

/** Reads the Kubernetes objects in a multi-document YAML file; a UsageError names the file and line. */
export function readObjects(file: string): KubeObject[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`--env '${file}': no such file. Synthesize it first ('npm run synth' or 'cdk8s synth') and pass a file from dist/.`);
    if (code === 'EISDIR') throw new UsageError(`--env '${file}' is a folder. Pass one synthesized file, e.g. --env dist/app.k8s.yaml.`);
    throw new UsageError(`--env '${file}' cannot be read (${(e as Error).message}).`);
  }
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      const err = doc.errors[0];
      const line = err.linePos?.[0]?.line;
      throw new UsageError(`--env '${file}'${line ? ` line ${line}` : ''} is not valid YAML (${err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}). Synthesize it again.`);
    }
    const value = doc.toJS() as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) objects.push(value as KubeObject);
  }
  return objects;
}

function checkName(flag: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required. Pass the environment's ${flag === '--name' ? 'name' : 'namespace'}, e.g. ${flag} ${flag === '--name' ? 'api' : 'team-web'}.`);
  if (!isDnsLabel(value)) throw new UsageError(`${flag} '${value}' is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63). Pass the name as written in the environment.`);
  return value;
}

/** Loads the record from the file or the cluster, as the options say. */
export async function loadTarget(options: TargetOptions): Promise<Target> {
  const name = checkName('--name', options.name);
  if (options.env !== undefined) {
    if (options.namespace !== undefined) throw new UsageError(`--env and --namespace exclude each other: the file names the namespace. Pass either --env FILE --name NAME, or --namespace NS --name NAME.`);
    const objects = readObjects(options.env);
    try {
      return { record: pickAttachRecord(objects, name, options.env), source: options.env, flags: `--env ${options.env} --name ${name}` };
    } catch (e) {
      if (e instanceof AttachRecordError) throw new UsageError(e.message);
      throw e;
    }
  }
  if (options.namespace === undefined) throw new UsageError(`say where the environment is: --env dist/<app>.k8s.yaml --name ${name} (a synthesized file), or --namespace NS --name ${name} (the live cluster).`);
  const namespace = checkName('--namespace', options.namespace);
  try {
    checkKubeconfig();
  } catch (e) {
    throw e instanceof KubectlError ? new UsageError(e.message) : e;
  }
  const args = ['get', 'statefulsets.apps,deployments.apps', '-n', namespace, '-l', `${ENVIRONMENT_LABEL}=${name}`, '-o', 'json'];
  let out: string;
  try {
    out = (await kubectl(args, { context: options.context, signal: options.signal })).stdout;
  } catch (e) {
    if (e instanceof KubectlError) throw new UsageError(e.message);
    throw e;
  }
  let items: KubeObject[];
  try {
    items = ((JSON.parse(out) as { items?: KubeObject[] }).items ?? []);
  } catch {
    throw new UsageError(`kubectl ${args.join(' ')} printed something that is not JSON. Check your kubectl: kubectl version`);
  }
  const where = `namespace '${namespace}'`;
  let found: Map<string, AttachRecord>;
  try {
    found = findAttachRecords(items, where);
  } catch (e) {
    if (e instanceof AttachRecordError) throw new UsageError(e.message);
    throw e;
  }
  const record = found.get(name);
  if (!record) {
    throw new UsageError(
      `${where} holds no kubedev environment named '${name}'. Apply it first (kubectl apply -f dist/<app>.k8s.yaml), or list what is there: kubectl get statefulsets -n ${namespace} -l ${ENVIRONMENT_LABEL}`,
    );
  }
  return { record, source: `the cluster (${where})`, flags: `--namespace ${namespace} --name ${name}` };
}
