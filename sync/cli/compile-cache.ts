/**
 * Compiled code kept between runs: every `kubedev` process compiles the same ~90 modules (the CLI,
 * the engine, ssh2, commander) before its first packet. Node >= 22.1 does this itself
 * (module.enableCompileCache); on older Node, CommonJS modules are compiled through vm.Script with
 * V8's cached data instead, kept in one file.
 *
 * - The file lives in the user's cache folder: `$XDG_CACHE_HOME/kubedev`, else `~/.cache/kubedev`;
 *   one per Node version and architecture (`code-<version>-<arch>.bin`).
 * - One entry per module path, with a hash of the module's full text: a changed module never meets
 *   code compiled from another text, and its new entry replaces the old one. V8 itself refuses data
 *   from another V8 or other flags (`cachedDataRejected`): that module is compiled as usual and the
 *   entry replaced. Entries of modules this run did not load stay (another command's, another
 *   install's) while their file exists. Keyed by path and text together (the first format), every
 *   upgrade or rebuild added entries and none went: after some weeks of rebuilds the file held 11.8 MB,
 *   every run read it whole, and reading it was 49 ms of a 0.6 s no-op.
 * - Written at exit when a module was compiled without it, to a temporary name then renamed (a
 *   reader sees the old file or the new one, never half of one). A file that is unreadable, cut or
 *   garbled counts as empty. Any failure (read-only home, no space) only means no cache.
 * - KUBEDEV_NO_COMPILE_CACHE=1 (or NODE_DISABLE_COMPILE_CACHE=1) turns it off.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- node:module internals are reached through require */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';

const MAGIC = 'kubedev-code-cache-2\n';
/** Entries of modules a run did not load are kept up to this many bytes in all (two installs need not fight). */
const MAX_BYTES = 16 * 1024 * 1024;

/** A module's compiled code, and the hash of the text it was compiled from. */
export interface CacheEntry {
  readonly hash: string;
  readonly data: Buffer;
}

/** The cache folder: `$XDG_CACHE_HOME/kubedev`, else `~/.cache/kubedev`. */
export function cacheFolder(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'kubedev');
}

/** The file's entries by module path; a file that is missing or not well formed is empty. */
export function readCacheFile(file: string): Map<string, CacheEntry> {
  const out = new Map<string, CacheEntry>();
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return out;
  }
  try {
    if (buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return out;
    let at = MAGIC.length;
    const headLen = buf.readUInt32LE(at);
    at += 4;
    const head = JSON.parse(buf.toString('utf8', at, at + headLen)) as Array<[string, string, number]>;
    at += headLen;
    for (const [filename, hash, len] of head) {
      if (typeof filename !== 'string' || typeof hash !== 'string' || !Number.isInteger(len) || len < 0 || at + len > buf.length) return new Map();
      out.set(filename, { hash, data: buf.subarray(at, at + len) });
      at += len;
    }
    return at === buf.length ? out : new Map();
  } catch {
    return new Map();
  }
}

/** Writes the entries to `file` atomically (a temporary name in the same folder, then a rename). */
export function writeCacheFile(file: string, entries: ReadonlyMap<string, CacheEntry>): void {
  const head: Array<[string, string, number]> = [];
  const parts: Buffer[] = [];
  for (const [filename, { hash, data }] of entries) {
    head.push([filename, hash, data.length]);
    parts.push(data);
  }
  const headBuf = Buffer.from(JSON.stringify(head));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(headBuf.length);
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    fs.writeFileSync(tmp, Buffer.concat([Buffer.from(MAGIC, 'latin1'), len, headBuf, ...parts]), { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

type Compile = (this: NodeModule, content: string, filename: string, format?: string) => unknown;
interface ModuleInternals {
  prototype: { _compile: Compile };
  wrap(content: string): string;
  _resolveFilename(request: string, parent: NodeModule, isMain: boolean, options?: unknown): string;
  _resolveLookupPaths(request: string, parent: NodeModule): string[] | null;
  _extensions: unknown;
  _cache: unknown;
}

/** `require` for `mod`, as Node makes it for a module it compiles itself. */
function requireFor(Module: ModuleInternals, mod: NodeModule): NodeJS.Require {
  const req = ((id: string) => mod.require(id)) as NodeJS.Require;
  const resolve = ((request: string, options?: unknown) => Module._resolveFilename(request, mod, false, options)) as NodeJS.RequireResolve;
  resolve.paths = (request: string) => Module._resolveLookupPaths(request, mod);
  req.resolve = resolve;
  req.main = process.mainModule;
  req.extensions = Module._extensions as NodeJS.RequireExtensions;
  req.cache = Module._cache as NodeJS.Dict<NodeModule>;
  return req;
}

let enabled = false;

/** Turns the cache on for the modules loaded from now on (once per process). Never throws. */
export function enableCompileCache(folder: string = cacheFolder()): void {
  if (enabled || process.env.KUBEDEV_NO_COMPILE_CACHE === '1' || process.env.NODE_DISABLE_COMPILE_CACHE) return;
  enabled = true;
  try {
    const Module = require('node:module') as ModuleInternals & { enableCompileCache?: (dir?: string) => unknown };
    if (typeof Module.enableCompileCache === 'function') {
      Module.enableCompileCache(folder);
      return;
    }
    hookCompile(Module, path.join(folder, `code-${process.version}-${process.arch}.bin`));
  } catch {
    // no cache: modules compile as before
  }
}

function hookCompile(Module: ModuleInternals, file: string): void {
  const old = readCacheFile(file);
  const compiled = new Map<string, { hash: string; script: vm.Script }>();
  let missed = false;
  const original = Module.prototype._compile;
  Module.prototype._compile = function (this: NodeModule, content: string, filename: string, format?: string): unknown {
    if ((format !== undefined && format !== 'commonjs') || content.startsWith('#!')) return original.call(this, content, filename, format);
    const hash = crypto.createHash('sha1').update(content).digest('hex');
    const entry = old.get(filename);
    const cachedData = entry?.hash === hash ? entry.data : undefined;
    let script: vm.Script;
    try {
      script = new vm.Script(Module.wrap(content), { filename, cachedData });
    } catch {
      return original.call(this, content, filename, format); // Node's own loader reports (or handles) it
    }
    if (!cachedData || script.cachedDataRejected) missed = true;
    compiled.set(filename, { hash, script });
    const fn = script.runInThisContext({ displayErrors: true }) as (...a: unknown[]) => unknown;
    return fn.call(this.exports, this.exports, requireFor(Module, this), this, filename, path.dirname(filename));
  };
  process.once('exit', () => {
    if (!missed) return;
    try {
      const next = new Map<string, CacheEntry>();
      for (const [filename, { hash, script }] of compiled) next.set(filename, { hash, data: script.createCachedData() });
      let bytes = [...next.values()].reduce((n, e) => n + e.data.length, 0);
      for (const [filename, e] of old) {
        if (next.has(filename) || bytes + e.data.length > MAX_BYTES || !fs.existsSync(filename)) continue;
        next.set(filename, e);
        bytes += e.data.length;
      }
      writeCacheFile(file, next);
    } catch {
      // not written: the next run compiles again
    }
  });
}
