/**
 * Two-way pulls while the container churns the remote tree: the container rewrites (same size, other
 * size, in place, by rename), truncates, appends to, deletes, or replaces (by a folder, a symlink inside
 * or leading out, a FIFO) a file between the listing and the fetch, or while it is fetched (alone, or
 * among many in the same tar stream), or removes its folder or makes it read-only; the developer may edit the same file
 * meanwhile. A pass finishes (a warning at most), never puts locally bytes that were never on the server
 * as one version, never records in the ancestor another version than the one written locally, never
 * loses the local edit; the next passes converge to the server's final bytes.
 *
 * The container's change is made deterministically: after the listing (scope.gatherFull wrapped), or
 * when the first MiB of the fetched file is written locally (fs.writeSync on the runner's temporary file).
 */
import * as crypto from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TarStandby } from '../../sync/engine/two-way/pull-bulk';
import * as remoteList from '../../sync/engine/two-way/remote-list';
import * as scope from '../../sync/engine/two-way/scope';
import { localSig } from '../../sync/engine/two-way/local-write';
import { sameSig, Sig, StateStore } from '../../sync/engine/two-way/state-store';
import { Arena, useArena } from '../support/hostile';
import { pass, PassResult, remote, stateFileOf, twoWay } from '../support/two-way';
import { tempDir } from '../support/trees';

jest.setTimeout(90_000);

const { sshd, arena } = useArena();

afterEach(() => jest.restoreAllMocks());

const MiB = 1024 * 1024;

/** Every version the server held of a path: its bytes and the sig the listing gives them. */
type Versions = { bytes: Buffer; sig: Sig }[];

/** A folder the sshd user may read, to hand the container whole versions. */
let drop: string;
beforeAll(() => {
  drop = tempDir('two-way-churn-drop');
  fs.chmodSync(drop, 0o755);
});
afterAll(() => fs.rmSync(drop, { recursive: true, force: true }));

/** `bytes` in a file the container can copy from; its path. */
function staged(bytes: Buffer): string {
  const f = path.join(drop, crypto.randomBytes(6).toString('hex'));
  fs.writeFileSync(f, bytes, { mode: 0o644 });
  return f;
}

/** The sig the two-way listing gives the server's `rel` now (as remote-list.ts parses `%T@`). */
function serverSig(a: Arena, rel: string): Sig {
  const [s, m, p] = remote(sshd(), a, `find ./${rel} -maxdepth 0 -printf '%s %T@ %m'`).split(' ');
  return { t: 'f', s: Number(s), m: Number(m) * 1000, p: parseInt(p, 8) };
}

/** The container writes `bytes` to `rel` (`how`: truncate and write, in place without truncating, or rename over); recorded in `v`. */
function write(a: Arena, v: Versions, rel: string, bytes: Buffer, how: 'cat' | 'dd' | 'mv' = 'cat'): void {
  const src = staged(bytes);
  const q = `'${rel}'`;
  const cmd = how === 'cat' ? `cat '${src}' > ${q}` : how === 'dd' ? `dd if='${src}' of=${q} conv=notrunc status=none` : `cp '${src}' ${q}.new && mv -f ${q}.new ${q}`;
  remote(sshd(), a, cmd);
  v.push({ bytes, sig: serverSig(a, rel) });
}

function store(a: Arena): StateStore {
  const s = sshd();
  return new StateStore(stateFileOf(a), { host: s.host, port: s.port, remoteRoot: a.remote, localRoot: a.local });
}

/**
 * The local `rel` and its ancestor: a regular file holds one version the server had whole (or `own`,
 * the developer's edit); when the ancestor says the local side is as agreed, the remote side it records
 * is the sig of that very version.
 */
function sound(a: Arena, rel: string, v: Versions, own?: Buffer, ancestor: StateStore = store(a)): void {
  const abs = path.join(a.local, rel);
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st?.isFile()) return;
  expect(fs.readdirSync(path.dirname(abs)).filter((n) => n.startsWith('.kubedev-'))).toEqual([]);
  const bytes = fs.readFileSync(abs);
  if (own?.equals(bytes)) return;
  const held = v.filter((x) => x.bytes.equals(bytes));
  expect(held.length > 0 ? 'a server version' : `torn: ${bytes.length} bytes that were never on the server`).toBe('a server version');
  const anc = ancestor.agreed(rel);
  if (anc && sameSig(anc.l, localSig(abs))) expect(held.map((x) => x.sig)).toContainEqual(anc.r);
}

/** The pass (a fresh session, `--once`): its warnings; a pass that throws fails the test. */
async function once(a: Arena): Promise<PassResult> {
  return pass(sshd(), a);
}

/** Waits (at most 10 s) until `ok()`. */
async function until(ok: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 10_000; !ok(); ) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Passes until nothing more is pulled (at most 4): the local side then holds the server's final bytes. */
async function converge(a: Arena, rel: string, v: Versions): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await once(a);
    sound(a, rel, v);
  }
  expect(a.differences()).toEqual([]);
}

/** The container runs `script` once the next pass has listed both sides (before anything is fetched). */
function afterListing(script: () => void): void {
  const real = scope.gatherFull;
  jest.spyOn(scope, 'gatherFull').mockImplementationOnce(async (h, run) => {
    const got = await real(h, run);
    script();
    return got;
  });
}

/**
 * A pass while the container replaces `rel` by a FIFO just after the listing; it must finish within
 * 10 s. Should a read block on the FIFO, a writer opened after 15 s releases it (the test then fails on time).
 */
async function onceWithFifo(a: Arena, rel: string): Promise<void> {
  afterListing(() => void remote(sshd(), a, `rm '${rel}' && mkfifo '${rel}'`));
  const t0 = Date.now();
  const release = setTimeout(() => spawn('sh', ['-c', `printf x > '${path.join(a.remote, rel)}'`], { stdio: 'ignore' }), 15_000);
  try {
    await once(a);
  } finally {
    clearTimeout(release);
  }
  expect(Date.now() - t0).toBeLessThan(10_000);
}

/** `seen(total)` for every chunk of remote bytes the pass fetches (the tar channel, as the runner reads it; it may throw, which fails the fetch). */
function onFetched(seen: (total: number) => void): void {
  let total = 0;
  const take = TarStandby.prototype.take;
  jest.spyOn(TarStandby.prototype, 'take').mockImplementation(async function (this: TarStandby) {
    const ch = await take.call(this);
    ch.on('data', (b: Buffer) => {
      total += b.length;
      try {
        seen(total);
      } catch (e) {
        ch.emit('error', e as Error);
      }
    });
    return ch;
  });
}

/** The container runs `script` once the first `after` bytes of the fetch went by (the fetch under way). */
function duringFetch(script: () => void, after = MiB): void {
  let done = false;
  onFetched((total) => {
    if (done || total < after) return;
    done = true;
    script();
  });
}

/** `n` other files changed in the container too, so the pass fetches many members in one tar stream rather than one. */
function others(a: Arena, n: number): void {
  const tag = crypto.randomBytes(3).toString('hex');
  remote(sshd(), a, `mkdir -p many && i=0; while [ $i -lt ${n} ]; do printf "v$i-${tag}" > many/f$i; i=$((i+1)); done`);
}

/** `rel` agreed on both sides as V0, then changed in the container (V1): the next pass pulls it. */
async function seeded(a: Arena, rel: string, size: number, bulk: boolean): Promise<Versions> {
  const v: Versions = [];
  remote(sshd(), a, `mkdir -p "$(dirname '${rel}')"`);
  write(a, v, rel, crypto.randomBytes(size));
  remote(sshd(), a, "printf k > keep.txt && printf k > keep2.txt");
  await once(a);
  expect(a.differences()).toEqual([]);
  write(a, v, rel, crypto.randomBytes(size));
  if (bulk) others(a, 40);
  return v;
}

const paths = [
  ['alone', false],
  ['among 40 others', true],
] as const;

describe.each(paths)('after the listing, before the fetch, %s', (_, bulk) => {
  const REL = 'd/f.bin';
  const SIZE = 200 * 1024;

  test.each([
    ['rewritten, same size', 'cat'],
    ['rewritten in place, same size', 'dd'],
    ['replaced by rename, same size', 'mv'],
  ] as const)('%s: the local file is one server version, the ancestor records that version', async (_, how) => {
    const a = arena();
    const v = await seeded(a, REL, SIZE, bulk);
    afterListing(() => write(a, v, REL, crypto.randomBytes(SIZE), how));
    await once(a);
    sound(a, REL, v);
    await converge(a, REL, v);
  });

  test('rewritten with another size: not put in place half, converges', async () => {
    const a = arena();
    const v = await seeded(a, REL, SIZE, bulk);
    afterListing(() => write(a, v, REL, crypto.randomBytes(SIZE + 4096)));
    await once(a);
    sound(a, REL, v);
    await converge(a, REL, v);
  });

  test.each([
    ['deleted', `rm d/f.bin`],
    ['its folder removed', 'rm -rf d'],
    ['replaced by a folder', 'rm d/f.bin && mkdir d/f.bin && printf x > d/f.bin/inner'],
    ['replaced by a symlink inside', 'printf t > d/target && rm d/f.bin && ln -s target d/f.bin'],
    ['its folder made read-only', 'chmod 0555 d'],
  ])('%s: the pass finishes, converges', async (_, script) => {
    const a = arena();
    const v = await seeded(a, REL, SIZE, bulk);
    afterListing(() => void remote(sshd(), a, script));
    await once(a);
    sound(a, REL, v);
    await converge(a, REL, v);
    remote(sshd(), a, 'chmod -R u+w . 2>/dev/null || true');
  });

  test('replaced by a symlink leading out of the root to a file of the same size: those bytes never land locally', async () => {
    const a = arena();
    const v = await seeded(a, REL, SIZE, bulk);
    const outside = path.join(a.base, 'outside.bin');
    fs.writeFileSync(outside, crypto.randomBytes(SIZE));
    execFileSync('chown', [`${sshd().uid}:${sshd().gid}`, outside]);
    afterListing(() => void remote(sshd(), a, `rm d/f.bin && ln -s ../../outside.bin d/f.bin`));
    const r = await once(a);
    sound(a, REL, v);
    const r2 = await once(a);
    sound(a, REL, v);
    expect([...r.warnings, ...r2.warnings].join('\n')).toMatch(/d\/f\.bin' -> '\.\.\/\.\.\/outside\.bin' leads outside/);
  });

  test('replaced by a symlink to /dev/zero: the fetch reads no more than the listed size', async () => {
    const a = arena();
    const v = await seeded(a, REL, SIZE, bulk);
    afterListing(() => void remote(sshd(), a, `rm d/f.bin && ln -s /dev/zero d/f.bin`));
    onFetched((total) => {
      if (total > 16 * MiB) throw new Error('runaway fetch: more than 16 MiB read for a file listed at 200 KiB');
    });
    await once(a);
    sound(a, REL, v);
  });

  test('replaced by a FIFO: the pass finishes (no fetch waits on it)', async () => {
    const a = arena();
    const v = await seeded(a, REL, SIZE, bulk);
    await onceWithFifo(a, REL);
    sound(a, REL, v);
  });
});

describe.each(paths)('while the file is fetched, %s', (_, bulk) => {
  const REL = 'd/big.bin';
  const SIZE = 24 * MiB;

  test.each([
    ['rewritten in place with other bytes (dd, no truncation)', (a: Arena, v: Versions) => write(a, v, REL, crypto.randomBytes(SIZE), 'dd')],
    ['rewritten (truncated, then written)', (a: Arena, v: Versions) => write(a, v, REL, crypto.randomBytes(SIZE), 'cat')],
    ['replaced by rename', (a: Arena, v: Versions) => write(a, v, REL, crypto.randomBytes(SIZE), 'mv')],
    ['truncated to 1000 bytes', (a: Arena, v: Versions) => {
      remote(sshd(), a, `truncate -s 1000 ${REL}`);
      v.push({ bytes: v[v.length - 1].bytes.subarray(0, 1000), sig: serverSig(a, REL) });
    }],
    ['appended to', (a: Arena, v: Versions) => {
      const more = crypto.randomBytes(MiB);
      remote(sshd(), a, `cat '${staged(more)}' >> ${REL}`);
      v.push({ bytes: Buffer.concat([v[v.length - 1].bytes, more]), sig: serverSig(a, REL) });
    }],
    ['deleted', (a: Arena) => void remote(sshd(), a, `rm ${REL}`)],
  ] as const)('%s: never torn locally, converges', async (_, change) => {
    const a = arena();
    const v = await seeded(a, REL, SIZE, bulk);
    duringFetch(() => change(a, v));
    await once(a);
    sound(a, REL, v);
    jest.restoreAllMocks();
    await converge(a, REL, v);
  });
});

describe.each(paths)('the developer edits the file while the container rewrites it, %s', (_, bulk) => {
  const REL = 'd/big.bin';
  const SIZE = 8 * MiB;

  test.each([
    ['after the listing', false],
    ['during the fetch', true],
  ])('%s: the local edit stays, the container version is kept as a conflict copy', async (_, during) => {
    const a = arena();
    const v = await seeded(a, REL, SIZE, bulk);
    const mine = Buffer.from('the developer edit\n');
    const race = (): void => {
      fs.writeFileSync(path.join(a.local, REL), mine);
      write(a, v, REL, crypto.randomBytes(SIZE), 'dd');
    };
    if (during) duringFetch(race);
    else afterListing(race);
    // The run's owed pass looks at the path again: the conflict is found and reported by this run.
    const r = await once(a);
    jest.restoreAllMocks();
    expect(fs.readFileSync(path.join(a.local, REL))).toEqual(mine);
    expect(r.conflicts.map((c) => c.rel)).toEqual([REL]);
    const copy = fs.readFileSync(path.join(a.local, r.conflicts[0].copy as string));
    expect(copy.equals(v[v.length - 1].bytes)).toBe(true);
    expect((await once(a)).conflicts).toEqual([]); // known: not reported again
    expect(fs.readFileSync(path.join(a.local, REL))).toEqual(mine);
    await once(a);
    expect(fs.readFileSync(path.join(a.local, REL))).toEqual(mine);
    expect(fs.readFileSync(path.join(a.remote, REL)).equals(v[v.length - 1].bytes)).toBe(true);
  });

  test('the container replaces it by a FIFO after the listing: the pass finishes (the conflict copy is not read from it), the local edit stays', async () => {
    const a = arena();
    await seeded(a, REL, SIZE, bulk);
    const mine = Buffer.from('the developer edit\n');
    fs.writeFileSync(path.join(a.local, REL), mine);
    await onceWithFifo(a, REL);
    expect(fs.readFileSync(path.join(a.local, REL))).toEqual(mine);
    expect(fs.readdirSync(path.join(a.local, 'd')).filter((n) => n.includes('.conflict-remote-') || n.startsWith('.kubedev-'))).toEqual([]);
  });
});

test('watching: a small file the container rewrites (same size) between the listing and the read of its bytes inside the listing: one server version, the ancestor records it', async () => {
  const a = arena();
  const REL = 'f.txt';
  const v: Versions = [];
  write(a, v, REL, Buffer.from('v0v0'));
  remote(sshd(), a, 'printf k > keep.txt && printf k > keep2.txt');
  const s = twoWay(sshd(), a);
  const checked: string[] = [];
  s.on('pulled', (p) => {
    if (!p.paths.includes(REL)) return;
    sound(a, REL, v, undefined, s.store);
    checked.push(fs.readFileSync(path.join(a.local, REL), 'utf8'));
  });
  try {
    await s.start();
    // The container's second write runs inside the scoped listing's command, after the find and before the base64.
    const real = remoteList.listRemoteExact;
    let raced = false;
    jest.spyOn(remoteList, 'listRemoteExact').mockImplementation((run, root, ig, scoped, inline = []) => {
      if (!inline.includes(REL) || raced) return real(run, root, ig, scoped, inline);
      raced = true;
      const src = staged(Buffer.from('v2v2'));
      return real((cmd) => run(cmd.replace(/\nprintf '%s\\0' ('[^']*-INLINE')/, `\ncat '${src}' > ${REL}; printf '%s\\0' $1`)), root, ig, scoped, inline);
    });
    write(a, v, REL, Buffer.from('v1v1'));
    await until(() => raced);
    v.push({ bytes: Buffer.from('v2v2'), sig: serverSig(a, REL) });
    await until(() => fs.readFileSync(path.join(a.local, REL), 'utf8') === 'v2v2');
    sound(a, REL, v, undefined, s.store);
    expect(checked.length).toBeGreaterThan(0);
  } finally {
    await s.close();
  }
});

describe.each(paths)('--once, %s', (_, bulk) => {
  test('a file the container rewrites after the listing is fetched again within the same run (its owed pass looks at it)', async () => {
    const a = arena();
    const REL = 'd/f.bin';
    const v = await seeded(a, REL, 200 * 1024, bulk);
    afterListing(() => write(a, v, REL, crypto.randomBytes(200 * 1024)));
    await once(a);
    sound(a, REL, v);
    expect(fs.readFileSync(path.join(a.local, REL)).equals(v[v.length - 1].bytes)).toBe(true);
  });

  test('a file the container rewrites after every listing: the run ends after a few passes with a warning naming it', async () => {
    const a = arena();
    const REL = 'd/f.bin';
    const v = await seeded(a, REL, 200 * 1024, bulk);
    afterListing(() => write(a, v, REL, crypto.randomBytes(200 * 1024)));
    const real = scope.gatherScoped;
    jest.spyOn(scope, 'gatherScoped').mockImplementation(async (...args) => {
      const got = await real(...args);
      write(a, v, REL, crypto.randomBytes(200 * 1024));
      return got;
    });
    const r = await once(a);
    sound(a, REL, v);
    expect(r.warnings.join('\n')).toMatch(/kept changing while \d+ passes ran \('d\/f\.bin'\)/);
  });
});
