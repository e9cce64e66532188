/**
 * `kubedev init`'s work: write a new project's files for one engine into a folder, new or existing,
 * never replacing a file that is already there (each file is created exclusively).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isDnsLabel, slug } from '../../lib/names';
import { UsageError } from '../errors';
import { ENGINES, Engine, TEMPLATE_PACKAGES, templateFiles } from './templates';

export interface InitOptions {
  /** `cdk8s` or `pulumi`. */
  readonly engine: string;
  /** @default the current folder */
  readonly dir?: string;
  /** The npm package (and Pulumi project) name. @default the folder's name, as a DNS label */
  readonly name?: string;
  /** The team; its namespace is `team-<team>`. @default the project name, up to 20 characters */
  readonly team?: string;
  /** The sample environment's owner, as the cluster authenticates them. @default DEFAULT_OWNER */
  readonly owner?: string;
}

export const DEFAULT_OWNER = 'developer@example.com';
/** What an owner may look like here: it is written into TypeScript and YAML. */
const OWNER = /^[A-Za-z0-9][A-Za-z0-9._@+:-]{0,252}$/;

export interface InitResult {
  readonly dir: string;
  readonly engine: Engine;
  /** Files written, relative to dir. */
  readonly written: readonly string[];
  /** Files left as they were because they exist, relative to dir. */
  readonly kept: readonly string[];
}

interface Manifest { version: string; dependencies?: Record<string, string>; devDependencies?: Record<string, string> }

/** kubedev's own package.json (above this file, in the sources or in build/). */
function ownManifest(): Manifest {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
  }
  throw new Error("kubedev's package.json was not found above " + __dirname);
}

function isEngine(value: string): value is Engine {
  return (ENGINES as readonly string[]).includes(value);
}

/** The user's to fix: --dir is not a folder, or not one they may write to. */
function badDir(dir: string, e: unknown): UsageError | undefined {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'it is not a folder' : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? `it is not writable (${code})` : undefined;
  return why ? new UsageError(`--dir '${dir}': ${why}. Name a folder you can write to.`) : undefined;
}

/** The folder to write into: made when missing; refused when it is not a writable folder. */
function prepareDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw badDir(dir, e) ?? new Error(`--dir '${dir}' cannot be made: ${(e as Error).message}`);
  }
}

/** Writes the project; resolves what was written and what was kept. */
export function scaffold(options: InitOptions): InitResult {
  const engine = options.engine;
  if (!isEngine(engine)) throw new UsageError(`--engine must be one of ${ENGINES.join(', ')} (got '${engine}').`);
  const dir = path.resolve(options.dir ?? '.');
  const project = options.name ?? (slug(path.basename(dir), 50) === 'root' ? 'kubedev-app' : slug(path.basename(dir), 50));
  if (!isDnsLabel(project, 50)) throw new UsageError(`--name must be a lowercase DNS label of at most 50 characters (got '${project}').`);
  const team = options.team ?? slug(project, 20);
  if (!isDnsLabel(team, 20)) throw new UsageError(`--team must be a lowercase DNS label of at most 20 characters (got '${team}').`);
  const owner = options.owner ?? DEFAULT_OWNER;
  if (!OWNER.test(owner)) throw new UsageError(`--owner must be a user name or e-mail address of letters, digits and . _ @ + : - (got '${owner}').`);

  const own = ownManifest();
  const available = { ...own.dependencies, ...own.devDependencies };
  const versions = Object.fromEntries(TEMPLATE_PACKAGES[engine].map((n) => [n, available[n]]));
  const missing = Object.entries(versions).filter(([, v]) => !v).map(([n]) => n);
  if (missing.length > 0) throw new Error(`kubedev's package.json names no version of ${missing.join(', ')}`);

  prepareDir(dir);
  const written: string[] = [];
  const kept: string[] = [];
  for (const [name, content] of Object.entries(templateFiles(engine, { project, team, owner, kubedevVersion: own.version, versions }))) {
    try {
      fs.writeFileSync(path.join(dir, name), content, { flag: 'wx' });
      written.push(name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw badDir(dir, e) ?? new Error(`cannot write ${path.join(dir, name)}: ${(e as Error).message}`);
      kept.push(name);
    }
  }
  return { dir, engine, written, kept };
}

/** The account of what init did and what to do next, for stderr. */
export function describeInit(result: InitResult): string {
  const lines = [`kubedev: ${result.engine} project in ${result.dir}`];
  if (result.written.length > 0) lines.push(`  wrote ${result.written.join(', ')}`);
  if (result.kept.length > 0) lines.push(`  kept ${result.kept.join(', ')} (already there; not changed)`);
  if (result.kept.includes('package.json')) {
    lines.push("  your package.json was kept: add kubedev and the packages of a new project's package.json (kubedev init --engine " + `${result.engine} --dir <empty folder>) to it`);
  }
  lines.push(result.engine === 'cdk8s' ? '  next: npm install && npm run synth   (writes dist/*.k8s.yaml)' : '  next: npm install && npm run mocks   (a run under Pulumi mocks; then pulumi up)');
  return lines.join('\n') + '\n';
}
