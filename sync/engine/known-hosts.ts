/**
 * OpenSSH known_hosts checking, done before any of the user's bytes are sent.
 *
 * Reads the format sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT" describes: comma-separated host patterns
 * (`*` and `?` wildcards, `!` negation, `[host]:port` for a port other than 22), hashed entries
 * `|1|<base64 salt>|<base64 HMAC-SHA1(salt, host)>`, the `@revoked` marker (a revoked key is refused
 * even if listed elsewhere) and `@cert-authority` lines (skipped: kubedev does not accept host
 * certificates). No npm package for this is maintained, so it is written here, small and tested.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

export interface KnownHostKey {
  readonly type: string;
  /** The key blob (base64-decoded). */
  readonly blob: Buffer;
  readonly line: number;
}

export interface KnownHosts {
  /** Keys listed for `host` at `port`. */
  readonly accepted: readonly KnownHostKey[];
  /** Keys marked `@revoked` (whatever host they name). */
  readonly revoked: readonly KnownHostKey[];
}

/** `SHA256:<base64 without padding>`: the fingerprint ssh and ssh-keygen -l print. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** The key type named inside a key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + n).toString('latin1');
}

/** The name known_hosts uses for a host: `host`, or `[host]:port` when the port is not 22. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i');
}

function matchesHashed(entry: string, name: string): boolean {
  const parts = entry.split('|'); // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2], 'base64');
  const want = Buffer.from(parts[3], 'base64');
  const got = crypto.createHmac('sha1', salt).update(name).digest();
  return want.length === got.length && crypto.timingSafeEqual(want, got);
}

/**
 * Whether a host field (comma-separated patterns) names `host:port`. A negated pattern that matches
 * rules the line out, as in OpenSSH.
 */
export function hostFieldMatches(field: string, host: string, port: number): boolean {
  if (field.startsWith('|')) return matchesHashed(field, hostKeyName(host, port));
  const name = hostKeyName(host, port);
  let matched = false;
  for (const raw of field.split(',')) {
    const negated = raw.startsWith('!');
    const pat = negated ? raw.slice(1) : raw;
    let hostPat = pat;
    let portPat = 22;
    const m = /^\[(.*)\]:(\d+)$/.exec(pat);
    if (m) {
      hostPat = m[1];
      portPat = Number(m[2]);
    } else if (pat.startsWith('[') && (pat.endsWith(']:*') || pat.endsWith(']:?'))) {
      // `[host]:*` style: treat the port part as a pattern too.
      const mm = /^\[(.*)\]:(.*)$/.exec(pat);
      if (mm && globToRegExp(mm[2]).test(String(port))) {
        if (globToRegExp(mm[1]).test(host)) {
          if (negated) return false;
          matched = true;
        }
      }
      continue;
    }
    if (portPat !== port) continue;
    if (globToRegExp(hostPat).test(host) || hostPat.toLowerCase() === name.toLowerCase()) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** Parses known_hosts text and keeps what applies to `host:port`. */
export function parseKnownHosts(text: string, host: string, port: number): KnownHosts {
  const accepted: KnownHostKey[] = [];
  const revoked: KnownHostKey[] = [];
  text.split(/\r?\n/).forEach((rawLine, i) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0].startsWith('@')) marker = fields.shift();
    if (fields.length < 3) return;
    const [hosts, type, b64] = fields;
    let blob: Buffer;
    try {
      blob = Buffer.from(b64, 'base64');
    } catch {
      return;
    }
    if (blob.length === 0) return;
    const key = { type, blob, line: i + 1 };
    if (marker === '@revoked') {
      revoked.push(key);
      return;
    }
    if (marker !== undefined) return; // @cert-authority and unknown markers: not for plain host keys
    if (hostFieldMatches(hosts, host, port)) accepted.push(key);
  });
  return { accepted, revoked };
}

/** The outcome of checking one presented host key. */
export interface HostKeyVerdict {
  readonly ok: boolean;
  readonly fingerprint: string;
  readonly type: string;
  /** Why it was refused, naming the fingerprint, the file and the fix. */
  readonly reason?: string;
}

/**
 * Checks a presented key blob against a known_hosts file for host:port.
 * @param file path of the known_hosts file (read now; a missing file refuses every key).
 */
export function checkHostKey(file: string, host: string, port: number, blob: Buffer): HostKeyVerdict {
  const fp = fingerprint(blob);
  const type = keyType(blob);
  const name = hostKeyName(host, port);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return {
      ok: false,
      fingerprint: fp,
      type,
      reason: `host key for ${name} cannot be checked: known hosts file '${file}' is unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the server presented ${type} ${fp}. Pass --known-hosts with a file that lists the server's key`,
    };
  }
  const kh = parseKnownHosts(text, host, port);
  if (kh.revoked.some((k) => k.blob.equals(blob))) {
    return { ok: false, fingerprint: fp, type, reason: `host key ${type} ${fp} of ${name} is marked @revoked in '${file}'. Refusing to connect` };
  }
  if (kh.accepted.some((k) => k.blob.equals(blob))) return { ok: true, fingerprint: fp, type };
  if (kh.accepted.length > 0) {
    const lines = kh.accepted.map((k) => k.line).join(', ');
    return {
      ok: false,
      fingerprint: fp,
      type,
      reason: `host key of ${name} has CHANGED: the server presented ${type} ${fp}, which does not match '${file}' (line ${lines}). Someone may be intercepting the connection; if the server's key really changed, replace that line with the new key`,
    };
  }
  return {
    ok: false,
    fingerprint: fp,
    type,
    reason: `host ${name} is unknown: the server presented ${type} ${fp}, which '${file}' does not list. Add the server's public key to that file as '${name} <type> <key>' after checking the fingerprint`,
  };
}
