/**
 * The server's large file changes while it goes by changed blocks: the container deletes, truncates,
 * rewrites, replaces (by a folder, a symlink) the remote file, makes its folder read-only or removes it,
 * between the listing and the script (a whole pass, the change made before applyPlan) or between the
 * hashing and the commit (the afterPrepare hook). The file ends byte-equal to the local one or the pass
 * says it could not send it; never a wrong or half file under its name, no `.kubedev-` temporaries, and
 * the next pass converges.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as apply from '../../sync/engine/apply';
import { ApplyResult } from '../../sync/engine/apply';
import { Connection } from '../../sync/engine/transport';
import { deltaContext, leftovers, put, scatter, sendOne } from '../support/delta';
import { Arena, passWarnings, useArena } from '../support/hostile';
import { remote } from '../support/two-way';

jest.setTimeout(90_000);

const MiB = 1024 * 1024;
const SIZE = 20 * MiB;
const REL = 'd/big.bin';

const { sshd, arena } = useArena();

afterEach(() => jest.restoreAllMocks());

const once = (a: Arena, method: 'tar' | 'sftp'): Promise<string[]> => passWarnings(a, { method });

/** A large file on both sides, then changed locally by scattered blocks. */
async function seeded(a: Arena, method: 'tar' | 'sftp'): Promise<Buffer> {
  const base = crypto.randomBytes(SIZE);
  put(a, REL, base);
  put(a, 'keep.txt', Buffer.from('k'));
  await once(a, method);
  expect(a.differences()).toEqual([]);
  const next = scatter(base, 4, 256 * 1024);
  put(a, REL, next);
  return next;
}

/** What the remote name holds: the local bytes, or (the pass said it could not) what the container left, never the runner's half file. */
function sound(a: Arena, next: Buffer, said: boolean, before: Buffer | undefined): void {
  const abs = path.join(a.remote, REL);
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  const now = st?.isFile() ? fs.readFileSync(abs) : undefined;
  if (now?.equals(next)) return;
  expect(said).toBe(true);
  if (now && before) expect(now.equals(before)).toBe(true);
}

/** The remote file as the container left it (a regular file), if any. */
function containers(a: Arena): Buffer | undefined {
  const abs = path.join(a.remote, REL);
  return fs.lstatSync(abs, { throwIfNoEntry: false })?.isFile() ? fs.readFileSync(abs) : undefined;
}

const changes: [string, string][] = [
  ['deleted', 'rm d/big.bin'],
  ['truncated', 'truncate -s 1000 d/big.bin'],
  ['rewritten', 'head -c 20971520 /dev/urandom > d/big.bin'],
  ['replaced by a folder', 'rm d/big.bin && mkdir d/big.bin && echo x > d/big.bin/inner'],
  ['replaced by a symlink', 'rm d/big.bin && echo t > d/target && ln -s target d/big.bin'],
  ['its folder made read-only', 'chmod 0555 d'],
  ['its folder removed', 'rm -rf d || rm -rf d'],
];

describe.each(['sftp', 'tar'] as const)('between the listing and the script (%s)', (method) => {
  test.each(changes)('the remote file %s', async (_, script) => {
    const a = arena();
    const next = await seeded(a, method);
    const real = apply.applyPlan;
    let before: Buffer | undefined;
    jest.spyOn(apply, 'applyPlan').mockImplementationOnce((ctx, plan) => {
      remote(sshd(), a, script);
      before = containers(a);
      return real(ctx, plan);
    });
    // Finishes (a warning if the file was not sent) or fails naming it.
    const warnings = await once(a, method).catch((e: Error) => [e.message]);
    if (warnings.length > 0) expect(warnings.join('\n')).toMatch(/'d(\/big\.bin)?'/);
    sound(a, next, warnings.length > 0, before);
    expect(leftovers(a.remote)).toEqual([]);
    await once(a, method);
    expect(a.differences()).toEqual([]);
  });
});

describe('between the hashing and the commit', () => {
  let conn: Connection | undefined;
  afterEach(async () => {
    await conn?.close();
    conn = undefined;
  });

  test.each(changes)('the remote file %s', async (_, script) => {
    const a = arena();
    const next = await seeded(a, 'sftp');
    const ctx = await deltaContext(sshd(), a);
    conn = ctx.conn;

    let res: ApplyResult | undefined;
    let err: unknown;
    let before: Buffer | undefined;
    try {
      res = await sendOne(ctx, REL, { afterPrepare: () => void remote(sshd(), a, script) });
      before = containers(a);
    } catch (e) {
      err = e;
    }
    sound(a, next, err !== undefined || (res?.unsent.length ?? 0) > 0 || (res?.warnings.length ?? 0) > 0, before);
    expect(leftovers(a.remote)).toEqual([]);
    await once(a, 'sftp');
    expect(a.differences()).toEqual([]);
  });
});
