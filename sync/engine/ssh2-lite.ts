/**
 * The parts of ssh2 the runner uses, loaded without the rest of the package. `require('ssh2')` also
 * loads its server, agents and HTTP(S) agents (tls, http): about 40 % of its load time, paid by every
 * `kubedev` run before the first packet. ssh2 is pinned to an exact version (package.json), whose
 * lib/ layout this names; if that layout ever moves, the package's own index is used instead.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- deep, lazy requires are the point of this file */
import type * as Ssh2 from 'ssh2';

function part<T>(file: string, pick: (m: unknown) => T | undefined, fallback: (index: typeof Ssh2) => T): T {
  try {
    const v = pick(require(`ssh2/lib/${file}`));
    if (v !== undefined) return v;
  } catch {
    // layout changed: the index below
  }
  return fallback(require('ssh2') as typeof Ssh2);
}

let client: typeof Ssh2.Client | undefined;
/** ssh2's Client class. */
export function ssh2Client(): typeof Ssh2.Client {
  client ??= part('client.js', (m) => (typeof m === 'function' ? (m as typeof Ssh2.Client) : undefined), (i) => i.Client);
  return client;
}

/** ssh2's key parser (`utils.parseKey`). */
export function parseKey(data: Buffer | string, passphrase?: Buffer | string): ReturnType<typeof Ssh2.utils.parseKey> {
  const fn = part('protocol/keyParser.js', (m) => (m as { parseKey?: typeof Ssh2.utils.parseKey }).parseKey, (i) => i.utils.parseKey);
  return fn(data, passphrase);
}

/** ssh2's key pair generator (`utils.generateKeyPairSync`). */
export function generateKeyPairSync(type: 'ed25519', opts: { comment?: string }): ReturnType<typeof Ssh2.utils.generateKeyPairSync> {
  const fn = part('keygen.js', (m) => (m as { generateKeyPairSync?: typeof Ssh2.utils.generateKeyPairSync }).generateKeyPairSync, (i) => i.utils.generateKeyPairSync);
  return fn(type, opts);
}
