/**
 * Which paths the runner neither sends nor deletes: gitignore syntax (the `ignore` package) from
 * built-in defaults, a `.kubedevignore` file at the root of the local folder, and `--ignore` flags.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ignore from 'ignore';
import { ConfigError } from '../errors';

/** Ignored everywhere unless negated: VCS metadata, OS litter, editor swap files. */
export const DEFAULT_IGNORES: readonly string[] = ['.git/', '.hg/', '.svn/', '.DS_Store', '.*.swp', '.*.swx', '*~', '.#*'];

/** The ignore file read from the root of the local folder. */
export const IGNORE_FILE = '.kubedevignore';

/** Names the runner itself uses remotely (staging folders, temp files): never scanned, never mirrored. */
export const INTERNAL_PREFIX = '.kubedev-';

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
  const ig = ignore().add(patterns);
  const negates = patterns.some((p) => p.startsWith('!'));
  const prunableNames = negates
    ? []
    : [...new Set(patterns.map((p) => p.replace(/\/$/, '')).filter((p) => /^[A-Za-z0-9._-]+$/.test(p) && p !== '.' && p !== '..'))];
  return {
    ignores(rel: string, isDir: boolean): boolean {
      if (rel === '' || rel === '.') return false;
      const base = rel.slice(rel.lastIndexOf('/') + 1);
      if (base.startsWith(INTERNAL_PREFIX)) return true;
      return ig.ignores(isDir ? `${rel}/` : rel);
    },
    prunableNames,
    patterns,
  };
}
