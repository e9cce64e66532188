/**
 * A persistent helper on one exec channel of the session's SSH connection, for saves over a slow link.
 *
 * Over SFTP one saved file takes three round trips (open; the writes, times, read-back and close; the
 * rename, sent only once the read-back matched). The helper takes one: the runner streams each file as
 * one request (header, path, bytes, commit) and never waits between requests; the helper answers each
 * once (remote-helper-script.ts holds its program and framing). Each request spawns `head`, `touch` and
 * `mv` on the server (about 1 ms each), so on a fast link SFTP stays quicker: the helper is used only
 * when the measured round trip is at least HELPER_MIN_RTT_MS.
 *
 * Guarantees, the same as apply-sftp.ts's:
 * - exactly the planned bytes (read whole before the request is sent: a file that shrank, grew or
 *   vanished is never sent) and a file changed since it was planned (`changedSince`, looked at after the
 *   read) is sent with an abort instead of a commit: its temporary file is removed, the target untouched;
 * - temporary name beside the target, renamed over it; never into a folder of that name (`mv -T`);
 * - never outside the root: the folder is entered with `cd -P` and must lie inside the physical root;
 * - a helper that refuses a request, dies or falls out of step: that file (and every request still
 *   unanswered) goes by SFTP; leftovers are `.kubedev-` names, removed by the next pass.
 */
import * as crypto from 'node:crypto';
import { ClientChannel } from 'ssh2';
import { HELPER_SCRIPT } from './remote-helper-script';
import { RemoteRootMovedError, samePlace, shBytesX } from './remote-place';
import { changedSince, LocalReadError, readSmallSync } from './local-read';
import { PlanItem } from './plan';
import { Connection, RemoteError } from './transport';
import { shQuote } from './tree';

/** Round trips shorter than this: SFTP is as fast or faster (see the note in the module comment). */
export const HELPER_MIN_RTT_MS = 4;
/** Files larger than this go by SFTP (read whole into memory before they are sent). */
export const HELPER_MAX_BYTES = 1024 * 1024;
/**
 * A batch gives the helper at most this many files; SFTP sends the rest at the same time. Within that,
 * the helper takes as many as it writes in two round trips (the time SFTP takes beyond the helper's
 * one), by its measured time per file (`share`).
 */
export const HELPER_BATCH_FILES = 32;
/** The server's time per file before any was measured (ms; 3 process starts on a loaded machine). */
const FIRST_SERVER_MS = 5;
/** Deletes of one batch the helper takes (one `rm` each); more go as one script. */
const HELPER_DELETES = 16;
/** How long the helper may take to start and answer its first pings. */
const START_TIMEOUT_MS = 10_000;
/** Pings at start: the smallest of their round trips is the link's. */
const PINGS = 3;
/**
 * The round trip is the smallest of the last RTT_SAMPLES pings; a batch starts a new one (in the
 * background) when the last is older than REPING_MS: pings made while a bulk transfer filled the link
 * read too long, and a link can get slower.
 */
const RTT_SAMPLES = 8;
const REPING_MS = 2_000;
/** A helper that died this many times on one connection is not started again there. */
const MAX_STARTS = 3;

/** The helper could not do a request (or is gone): send that file by SFTP. */
export class HelperRefused extends Error {
  constructor(readonly rel: string, readonly why: string) {
    super(`the remote helper did not write '${rel}' (${why})`);
    this.name = 'HelperRefused';
  }
}

/**
 * The folder of a file resolves outside the remote root on the server (a symlink made there since it
 * was listed): nothing was written, and SFTP must not try either (it would follow the link).
 */
export class OutsideRootError extends RemoteError {
  constructor(rel: string, remoteRoot: string) {
    super(`the remote folder of '${rel}' resolves outside '${remoteRoot}' on the server (a symlink made there since it was listed); nothing was written through it. Remove that symlink on the server (or make it a folder), then start the sync again`, null, '');
    this.name = 'OutsideRootError';
  }
}

interface Pending {
  readonly rel: string;
  /** When it was sent (ms), for writes only: their answers measure the server's time per file. */
  readonly sentAt?: number;
  resolve(word: string): void;
  reject(e: Error): void;
}

/** Whether the helper can carry this file at all (else: SFTP). */
export function helperCanSend(item: PlanItem): boolean {
  return item.entry.type === 'file' && item.entry.size <= HELPER_MAX_BYTES && !item.rel.includes('\n') && item.rel !== '';
}

/** The mode as umask (what `>` creates: 0666 & ~umask) and, when umask cannot give it, for chmod. */
export function modeArgs(mode: number): { umask: string; chmod: string } {
  const bits = mode & 0o7777;
  if ((bits & ~0o666) === 0) return { umask: (~bits & 0o777).toString(8).padStart(3, '0'), chmod: '-' };
  return { umask: '077', chmod: bits.toString(8) };
}

export class RemoteHelper {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private out = '';
  private err = '';
  private gone?: string;
  private ready?: (pid: number) => void;
  private failedStart?: (e: Error) => void;
  /** The link's round trip (ms): the smallest of the last RTT_SAMPLES no-op requests. */
  rttMs = Infinity;
  /** The server's time per file (ms): a moving average over the answers to writes. */
  serverMs = FIRST_SERVER_MS;
  private lastAnswerAt = 0;
  private readonly samples: number[] = [];
  private lastPing = 0;
  /** The helper's process id on the server (tests kill it). */
  pid = 0;
  /** Where the root led when it was listed, as the helper was told at start (it works in that folder). */
  physical?: Buffer;
  /** Files it was asked to write, and of those how many it wrote (tests, benchmarks). */
  writes = 0;
  written = 0;
  /** Paths it removed (tests). */
  removed = 0;

  private constructor(private readonly ch: ClientChannel, private readonly key: string, private readonly root: string) {
    ch.on('data', (b: Buffer) => this.onData(b.toString('latin1')));
    ch.stderr.on('data', (b: Buffer) => {
      this.err = (this.err + b.toString()).slice(-4096);
    });
    ch.on('close', () => this.die('the helper exited'));
    ch.on('error', (e: Error) => this.die(e.message));
  }

  /** Starts a helper in `remoteRoot` and measures the round trip. Rejects when it cannot run there. */
  static async start(conn: Connection, remoteRoot: string): Promise<RemoteHelper> {
    const key = crypto.randomBytes(12).toString('hex');
    const physical = conn.listedRoots.get(remoteRoot);
    const h = new RemoteHelper(await conn.channel(`exec sh -c ${shQuote(HELPER_SCRIPT)} kubedev-helper ${shQuote(remoteRoot)} ${physical ? shBytesX(physical) : "''"}`), key, remoteRoot);
    h.physical = physical;
    h.ch.write(`${key} ${crypto.randomBytes(6).toString('hex')}\n`);
    let timer: NodeJS.Timeout | undefined;
    try {
      h.pid = await new Promise<number>((resolve, reject) => {
        h.ready = resolve;
        h.failedStart = reject;
        timer = setTimeout(() => reject(new Error(`the remote helper did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      });
      for (let i = 0; i < PINGS; i++) await h.ping();
    } catch (e) {
      h.close();
      throw e;
    } finally {
      clearTimeout(timer);
      h.ready = undefined;
      h.failedStart = undefined;
    }
    return h;
  }

  /** The error for a request answered `moved`: the root leads elsewhere than where the helper works. */
  moved(): RemoteRootMovedError {
    return new RemoteRootMovedError(this.root, this.physical, undefined);
  }

  private why(): string {
    return this.err.trim().split('\n').slice(-2).join('; ') || this.out.trim().split('\n').pop() || 'no message';
  }

  get alive(): boolean {
    return this.gone === undefined;
  }

  private onData(s: string): void {
    this.out += s;
    let nl: number;
    while ((nl = this.out.indexOf('\n')) >= 0) {
      const line = this.out.slice(0, nl);
      this.out = this.out.slice(nl + 1);
      const ready = /^ready K([0-9a-f]+) (\d+)$/.exec(line);
      if (ready && ready[1] === this.key) {
        this.ready?.(Number(ready[2]));
        continue;
      }
      const m = /^(\d+) (\w+)$/.exec(line);
      const p = m ? this.pending.get(Number(m[1])) : undefined;
      if (!m || !p) continue; // what a login shell prints before the helper runs
      this.pending.delete(Number(m[1]));
      if (p.sentAt !== undefined) this.measure(p.sentAt);
      p.resolve(m[2]);
    }
  }

  /** A write answered: queued behind another, its time is the gap since that one's answer; else its time less a round trip. */
  private measure(sentAt: number): void {
    const now = performance.now();
    const sample = sentAt < this.lastAnswerAt ? now - this.lastAnswerAt : now - sentAt - this.rttMs;
    this.lastAnswerAt = now;
    if (sample >= 0) this.serverMs = 0.7 * this.serverMs + 0.3 * sample;
  }

  /** How many files of a batch the helper should take: what it writes in two round trips, 1 to HELPER_BATCH_FILES. */
  share(): number {
    return Math.max(1, Math.min(HELPER_BATCH_FILES, Math.floor((2 * this.rttMs) / Math.max(this.serverMs, 0.1))));
  }

  private die(why: string): void {
    if (this.gone !== undefined) return;
    this.gone = `${why}: ${this.why()}`;
    this.failedStart?.(new Error(`the remote helper could not start: ${this.gone}`));
    for (const [, p] of this.pending) p.reject(new HelperRefused(p.rel, this.gone));
    this.pending.clear();
  }

  private request(rel: string, parts: (string | Buffer)[], write = false): { id: number; answer: Promise<string> } {
    const id = this.nextId++;
    if (this.gone !== undefined) return { id, answer: Promise.reject(new HelperRefused(rel, this.gone)) };
    const sentAt = write ? performance.now() : undefined;
    const answer = new Promise<string>((resolve, reject) => this.pending.set(id, { rel, sentAt, resolve, reject }));
    for (const p of parts) this.ch.write(p);
    return { id, answer };
  }

  /** One no-op request; resolves with its round trip in ms (which joins the samples of rttMs). */
  async ping(): Promise<number> {
    const t0 = performance.now();
    this.lastPing = t0;
    const { answer } = this.request('', [`K${this.key} p ${this.nextId}\n`]);
    await answer;
    const ms = performance.now() - t0;
    this.samples.push(ms);
    if (this.samples.length > RTT_SAMPLES) this.samples.shift();
    this.rttMs = Math.min(...this.samples);
    return ms;
  }

  /** Starts a ping in the background when the last one is older than REPING_MS. */
  refresh(): void {
    if (performance.now() - this.lastPing > REPING_MS) void this.ping().catch(() => undefined);
  }

  /**
   * Writes one file: read whole (exactly its planned size, else LocalReadError), sent, committed only
   * if it did not change since it was planned. Resolves once the server renamed it into place; rejects
   * with LocalReadError (nothing changed remotely) or HelperRefused (send it by SFTP).
   */
  async write(abs: string, item: PlanItem): Promise<void> {
    this.writes++;
    const e = item.entry;
    const data = readSmallSync(abs, item.rel, e.size);
    const commit = changedSince(abs, e) ? 'a' : 'c';
    const { umask, chmod } = modeArgs(e.mode);
    const relBytes = Buffer.from(item.rel, 'utf8');
    const id = this.nextId;
    const { answer } = this.request(item.rel, [
      `K${this.key} w ${id} ${e.size} ${umask} ${chmod} ${Math.floor(e.mtimeMs / 1000)} ${relBytes.length}\n`,
      Buffer.concat([relBytes, Buffer.from('\n'), data, Buffer.from(`K${this.key} ${commit} ${id}\n`)]),
    ], true);
    const word = await answer;
    if (word === 'ok') {
      this.written++;
      return;
    }
    if (word === 'aborted') throw new LocalReadError(item.rel, 'changed', `'${item.rel}' changed while it was sent`);
    if (word === 'outside') throw new OutsideRootError(item.rel, this.root);
    if (word === 'moved') throw this.moved();
    throw new HelperRefused(item.rel, word);
  }

  /**
   * Removes one path (`rm -rf`, read-only folders below it opened). Resolves with the helper's word
   * (ok, nodir, outside, refused, delete); rejects with HelperRefused when the helper is gone.
   */
  async remove(rel: string): Promise<string> {
    const word = await this.pathRequest('r', rel, '');
    if (word === 'ok') this.removed++;
    return word;
  }

  /** Makes one folder with `mode` (exactly: `mkdir -m`). Resolves with the helper's word (ok, mkdir, nodir, outside, refused). */
  mkdir(rel: string, mode: number): Promise<string> {
    return this.pathRequest('d', rel, `${(mode & 0o7777).toString(8)} `);
  }

  private pathRequest(op: 'r' | 'd', rel: string, args: string): Promise<string> {
    const relBytes = Buffer.from(rel, 'utf8');
    return this.request(rel, [Buffer.concat([Buffer.from(`K${this.key} ${op} ${this.nextId} ${args}${relBytes.length}\n`), relBytes, Buffer.from('\n')])]).answer;
  }

  /** Ends the helper (it exits at the end of its input). */
  close(): void {
    this.die('closed');
    this.ch.end();
  }
}

interface Slot {
  helper?: RemoteHelper;
  starting?: Promise<void>;
  starts: number;
}

const slots = new WeakMap<Connection, Map<string, Slot>>();

/**
 * The helper for `conn` and `remoteRoot` when one is running and the link is slow enough for it to win;
 * otherwise undefined, and (unless it failed MAX_STARTS times) one is started in the background for the
 * next batches: a batch never waits for the helper to start.
 */
export function helperFor(conn: Connection, remoteRoot: string): RemoteHelper | undefined {
  let byRoot = slots.get(conn);
  if (!byRoot) slots.set(conn, (byRoot = new Map()));
  let slot = byRoot.get(remoteRoot);
  if (!slot) byRoot.set(remoteRoot, (slot = { starts: 0 }));
  if (slot.helper?.alive && !samePlace(slot.helper.physical, conn.listedRoots.get(remoteRoot))) {
    // Started before this listing, for a place the root no longer leads to (or not told one): a new one.
    slot.helper.close();
    slot.helper = undefined;
  }
  if (slot.helper?.alive) {
    slot.helper.refresh();
    return slot.helper.rttMs >= HELPER_MIN_RTT_MS ? slot.helper : undefined;
  }
  if (!slot.starting && slot.starts < MAX_STARTS && conn.alive) {
    const s = slot;
    s.starts++;
    s.starting = RemoteHelper.start(conn, remoteRoot)
      .then((h) => {
        s.helper = h;
      })
      .catch(() => undefined)
      .finally(() => {
        s.starting = undefined;
      });
  }
  return undefined;
}

/** What decides whether a batch uses the helper (ApplyContext's fields). */
export interface HelperChoice {
  readonly conn: Connection;
  readonly remoteRoot: string;
  readonly method?: string;
  readonly watching?: boolean;
}

/**
 * The helper a batch should use: none when SFTP or tar is forced or for a one-shot run (no save
 * follows), the started one when it is forced, else helperFor's choice.
 */
export async function helperToUse(o: HelperChoice): Promise<RemoteHelper | undefined> {
  if (o.method === 'sftp' || o.method === 'tar' || (o.watching === false && o.method !== 'helper')) return undefined;
  return o.method === 'helper' ? helperStarted(o.conn, o.remoteRoot) : helperFor(o.conn, o.remoteRoot);
}

/**
 * Deletes `deletes` (top-most remote paths) through the helper, all requests sent at once: one round
 * trip. False when it could not do them all (the caller then sends every path to remote-fix.ts:
 * removing what is gone already is a no-op). Throws OutsideRootError when a path's folder leads out
 * of the root on the server (a script would follow that link).
 */
export async function deleteByHelper(o: HelperChoice, deletes: readonly string[]): Promise<boolean> {
  if (deletes.length === 0 || deletes.length > HELPER_DELETES || deletes.some((d) => d === '' || d.includes('\n'))) return false;
  const helper = await helperToUse(o);
  if (!helper) return false;
  const words = await Promise.all(deletes.map((d) => helper.remove(d).catch(() => 'gone')));
  if (words.includes('moved')) throw helper.moved();
  const out = deletes.find((_, i) => words[i] === 'outside');
  if (out !== undefined) throw new OutsideRootError(out, o.remoteRoot);
  return words.every((w) => w === 'ok');
}

/** Waits for a helper being started for `conn` and `remoteRoot` (tests, benchmarks). */
export async function helperStarted(conn: Connection, remoteRoot: string): Promise<RemoteHelper | undefined> {
  helperFor(conn, remoteRoot);
  const slot = slots.get(conn)?.get(remoteRoot);
  await slot?.starting;
  return slot?.helper?.alive ? slot.helper : undefined;
}
