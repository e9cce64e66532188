/** known_hosts matching (sync/engine/known-hosts.ts): patterns, ports, hashed entries, markers, messages. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkHostKey, fingerprint, hostFieldMatches, parseKnownHosts } from '../sync/engine/known-hosts';
import { tempDir } from './support/trees';

function key(seed: string): { blob: Buffer; line: string } {
  const raw = crypto.createHash('sha256').update(seed).digest();
  const type = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([Buffer.from([0, 0, 0, type.length]), type, Buffer.from([0, 0, 0, 32]), raw]);
  return { blob, line: `ssh-ed25519 ${blob.toString('base64')}` };
}

function hashed(name: string): string {
  const salt = crypto.randomBytes(20);
  return `|1|${salt.toString('base64')}|${crypto.createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('host patterns', () => {
  test.each([
    ['example.com', 'example.com', 22, true],
    ['EXAMPLE.com', 'example.com', 22, true],
    ['example.com', 'example.com', 2222, false],
    ['[example.com]:2222', 'example.com', 2222, true],
    ['[example.com]:2222', 'example.com', 22, false],
    ['*.example.com', 'a.example.com', 22, true],
    ['?.example.com', 'ab.example.com', 22, false],
    ['*.example.com,!bad.example.com', 'bad.example.com', 22, false],
    ['[127.0.0.1]:*,[localhost]:*', '127.0.0.1', 40123, true],
    ['[127.0.0.1]:*', '127.0.0.2', 40123, false],
    ['a.example.com', 'a.example.co', 22, false],
  ] as const)('%s matches %s:%d -> %s', (field, host, port, want) => {
    expect(hostFieldMatches(field, host, port)).toBe(want);
  });

  test('hashed entries, with and without a port', () => {
    expect(hostFieldMatches(hashed('[127.0.0.1]:2222'), '127.0.0.1', 2222)).toBe(true);
    expect(hostFieldMatches(hashed('[127.0.0.1]:2222'), '127.0.0.1', 2223)).toBe(false);
    expect(hostFieldMatches(hashed('example.com'), 'example.com', 22)).toBe(true);
  });
});

describe('checkHostKey', () => {
  const dir = tempDir('known-hosts');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const good = key('good');
  const other = key('other');
  const write = (text: string): string => {
    const f = path.join(dir, `kh-${crypto.randomBytes(4).toString('hex')}`);
    fs.writeFileSync(f, text);
    return f;
  };

  test('accepts a listed key (comments, blank lines and other hosts around it)', () => {
    const f = write(`# comment\n\nother.example ${other.line}\n[127.0.0.1]:2222 ${good.line} a comment\n`);
    expect(checkHostKey(f, '127.0.0.1', 2222, good.blob)).toEqual({ ok: true, fingerprint: fingerprint(good.blob), type: 'ssh-ed25519' });
  });

  test('a changed key names the fingerprint and the line', () => {
    const f = write(`[127.0.0.1]:2222 ${other.line}\n`);
    expect(checkHostKey(f, '127.0.0.1', 2222, good.blob).reason).toBe(
      `host key of [127.0.0.1]:2222 has CHANGED: the server presented ssh-ed25519 ${fingerprint(good.blob)}, which does not match '${f}' (line 1). Someone may be intercepting the connection; if the server's key really changed, replace that line with the new key`,
    );
  });

  test('@revoked wins over a listing; @cert-authority lines are not host keys', () => {
    const f = write(`[127.0.0.1]:2222 ${good.line}\n@revoked * ${good.line}\n`);
    expect(checkHostKey(f, '127.0.0.1', 2222, good.blob).reason).toBe(`host key ssh-ed25519 ${fingerprint(good.blob)} of [127.0.0.1]:2222 is marked @revoked in '${f}'. Refusing to connect`);
    const ca = write(`@cert-authority [127.0.0.1]:2222 ${good.line}\n`);
    expect(checkHostKey(ca, '127.0.0.1', 2222, good.blob).ok).toBe(false);
    expect(parseKnownHosts(fs.readFileSync(ca, 'utf8'), '127.0.0.1', 2222).accepted).toEqual([]);
  });

  test('a missing file refuses, naming the file and the fingerprint', () => {
    const v = checkHostKey(path.join(dir, 'nope'), '127.0.0.1', 2222, good.blob);
    expect(v.ok).toBe(false);
    expect(v.reason).toBe(`host key for [127.0.0.1]:2222 cannot be checked: known hosts file '${path.join(dir, 'nope')}' is unreadable (ENOENT); the server presented ssh-ed25519 ${fingerprint(good.blob)}. Pass --known-hosts with a file that lists the server's key`);
  });
});
