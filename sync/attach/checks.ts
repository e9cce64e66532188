/**
 * Checks of what the user (or an attach record) gives the runner, made before anything connects; each
 * throws a UsageError (exit 2) naming the flag or record field and the fix. Shared by `kubedev sync`
 * and `kubedev up`, so each check lives once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseKey } from '../engine/ssh2-lite';
import { hasControlCharacter } from '../../lib/names';
import { UnsafeRemoteRootError, assertSafeRemoteRoot } from '../../lib/remote-root';
import { UsageError } from '../errors';
import { configDir } from './key-store';

/** The remote root, refused unless safe (lib's one check); `field` is the flag or record field. */
export function checkRemoteRoot(value: unknown, field: string, kind = 'option'): string {
  try {
    return assertSafeRemoteRoot(value, field, kind);
  } catch (e) {
    if (e instanceof UnsafeRemoteRootError) throw new UsageError(e.message);
    throw e;
  }
}

/**
 * A local root that would send what must never leave the machine: `/`, or a folder holding kubedev's
 * configuration folder (the private keys), such as the home folder.
 */
export function checkLocalRoot(abs: string, field: string, env: NodeJS.ProcessEnv = process.env): string {
  const config = path.resolve(configDir(env));
  const real = (p: string): string => {
    try {
      return fs.realpathSync(p);
    } catch {
      return p;
    }
  };
  const root = real(abs);
  if (root === path.parse(root).root) {
    throw new UsageError(`${field} '${abs}' is the root of the file system. Pass the project folder to mirror`);
  }
  const rel = path.relative(root, real(config));
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
    throw new UsageError(`${field} '${abs}' holds kubedev's configuration folder '${config}' (with its private keys). Pass the project folder to mirror, not a folder above it`);
  }
  return abs;
}

/**
 * The private key, parsed as the SSH client will use it: not empty, not a public key, not protected
 * by a passphrase (the runner has no way to ask for one), in a format ssh2 reads.
 * @param fix how to get a usable key, e.g. `make one with 'kubedev keys --env F --name N'`
 */
export function checkIdentity(file: string, flag: string, fix: string): string {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (e) {
    throw new UsageError(`${flag} '${file}' cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}). Pass ${fix}`);
  }
  if (data.toString('utf8').trim() === '') throw new UsageError(`${flag} '${file}' is empty. Pass ${fix}`);
  const parsed = parseKey(data);
  if (parsed instanceof Error) {
    if (/passphrase/i.test(parsed.message)) {
      throw new UsageError(`${flag} '${file}' is protected by a passphrase, which kubedev cannot ask for. Pass a key without one: ${fix}`);
    }
    throw new UsageError(`${flag} '${file}' is not a private key kubedev can use (${parsed.message}). Pass ${fix}`);
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key.isPrivateKey()) {
    throw new UsageError(`${flag} '${file}' is a public key. Pass its private half (the file without '.pub'): ${fix}`);
  }
  return file;
}

/** Ignore patterns: one line each (a line break would make two rules). */
export function checkIgnore(patterns: readonly unknown[], field: string): string[] {
  for (const p of patterns) {
    if (typeof p !== 'string' || hasControlCharacter(p)) {
      throw new UsageError(`${field} ${JSON.stringify(p)} is not a one-line pattern. Pass gitignore-style patterns, one per ${field}`);
    }
  }
  return patterns as string[];
}
