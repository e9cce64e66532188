/**
 * Which paths the runner neither sends nor deletes: gitignore syntax (the `ignore` package) from
 * built-in defaults, a `.kubedevignore` file at the root of the local folder, and `--ignore` flags.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Ignore from 'ignore';
import { ConfigError } from '../errors';

/** Ignored everywhere unless negated: VCS metadata, OS litter, editor swap files. */
export const DEFAULT_IGNORES: readonly string[] = ['.git/', '.hg/', '.svn/', '.DS_Store', '.*.swp', '.*.swx', '*~', '.#*'];

/** The ignore file read from the root of the local folder. */
export const IGNORE_FILE = '.kubedevignore';

/** Names the runner itself uses remotely (staging folders, temp files): never scanned, never mirrored. */
export const INTERNAL_PREFIX = '.kubedev-';

/** A path with a component the runner names for itself (INTERNAL_PREFIX): never synced, never a change to look at. */
export function isInternalPath(rel: string): boolean {
  return rel.startsWith(INTERNAL_PREFIX) || rel.includes(`/${INTERNAL_PREFIX}`);
}

export interface IgnoreMatcher {
  /** `rel` is a POSIX path relative to the root, without a trailing slash. */
  ignores(rel: string, isDir: boolean): boolean;
  /** Plain names (no slash, no wildcard) ignored wherever they appear, safe to prune in a remote `find`. */
  readonly prunableNames: readonly string[];
  /** All patterns in order. */
  readonly patterns: readonly string[];
}

/** Builds the matcher for a local root; reads `.kubedevignore` if present. */
export function buildIgnore(localRoot: string, extra: readonly string[] = [], useDefaults = true): IgnoreMatcher {
  const patterns: string[] = useDefaults ? [...DEFAULT_IGNORES] : [];
  const file = path.join(localRoot, IGNORE_FILE);
  let fileText: string | undefined;
  try {
    fileText = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      const what = code === 'EISDIR' ? 'is a folder, not a file' : `cannot be read (${code ?? (e as Error).message})`;
      throw new ConfigError(`ignore file '${file}' ${what}. Make it a readable text file of gitignore patterns, or remove it`);
    }
  }
  if (fileText !== undefined) patterns.push(...fileText.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.startsWith('#')));
  patterns.push(...extra);
  return matcherOf(patterns);
}

/** The matcher for a final list of patterns (buildIgnore's, e.g. sent to a worker thread). */
export function matcherOf(patterns: readonly string[]): IgnoreMatcher {
  const test = simpleMatcher(patterns) ?? packageMatcher(patterns);
  const negates = patterns.some((p) => p.startsWith('!'));
  const prunableNames = negates
    ? []
    : [...new Set(patterns.map((p) => p.replace(/\/$/, '')).filter((p) => /^[A-Za-z0-9._-]+$/.test(p) && p !== '.' && p !== '..'))];
  return {
    ignores(rel: string, isDir: boolean): boolean {
      if (rel === '' || rel === '.') return false;
      const base = rel.slice(rel.lastIndexOf('/') + 1);
      if (base.startsWith(INTERNAL_PREFIX)) return true;
      return test(rel, isDir);
    },
    prunableNames,
    patterns,
  };
}

/** The `ignore` package's matcher (every gitignore rule), loaded only when a pattern needs it. */
function packageMatcher(patterns: readonly string[]): (rel: string, isDir: boolean) => boolean {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ig = (require('ignore') as { default: typeof Ignore }).default().add([...patterns]);
  return (rel, isDir) => ig.ignores(isDir ? `${rel}/` : rel);
}

/** A pattern the simple matcher takes: one name (a trailing '/' for folders only), wildcards * and ? only. */
const SIMPLE = /^(?![#!])[A-Za-z0-9._~*?+@%=,:#-]+\/?$/;

/**
 * The same answers as the `ignore` package for patterns that are all plain names with * and ? (the
 * defaults, `node_modules/`, `*.log`...), several times faster (a full pass asks for every path twice):
 * such a pattern matches a path's last name, or any folder above it (then everything below is
 * ignored), case-insensitively as the package does by default. Undefined for any other pattern set.
 */
export function simpleMatcher(patterns: readonly string[]): ((rel: string, isDir: boolean) => boolean) | undefined {
  if (!patterns.every((p) => SIMPLE.test(p) && !p.includes('**') && !/^\.+\/?$/.test(p))) return undefined;
  const regex = (ps: readonly string[]): RegExp | undefined => {
    if (ps.length === 0) return undefined;
    const alt = ps.map((p) => p.replace(/\/$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'));
    return new RegExp(`^(?:${alt.join('|')})$`, 'i');
  };
  const any = regex(patterns); // a folder above the path: every pattern applies
  const files = regex(patterns.filter((p) => !p.endsWith('/')));
  if (!any) return () => false;
  return (rel, isDir) => {
    let from = 0;
    for (let slash = rel.indexOf('/'); slash >= 0; slash = rel.indexOf('/', from)) {
      if (any.test(rel.slice(from, slash))) return true;
      from = slash + 1;
    }
    const last = rel.slice(from);
    return isDir ? any.test(last) : files !== undefined && files.test(last);
  };
}
