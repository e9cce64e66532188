/**
 * The first mirror into an empty remote folder, begun while the local scan is still walking.
 *
 * When the first listing shows the remote root empty, every entry the local scan takes is new on the
 * server: the full pass will send all of them (tar, apply-tar.ts). So once the scan has taken more
 * than a bulk's worth (BULK_FILES), the archive starts: the local tar reads its member names as the
 * scan finds them (parents before their contents), and the server extracts into a staging folder as
 * apply-tar.ts does, while the walk goes on. The full pass then takes the running archive if its plan
 * is what was fed (nothing to delete or chmod, every item fed): it ends the names and goes on with
 * apply-tar.ts's checks and moves, which compare every file with the entry the plan holds. Anything
 * else (a plan with other items, an error, the end of the run) ends the archive and removes its
 * staging folder; the pass then sends as it always did. Nothing outside the staging folder is written
 * before the plan is made, so what the server shows under real names is unchanged.
 *
 * Only near links (the exec channel opened in less than COMPRESS_OPEN_MS): farther away the archive
 * is gzipped, the scan is a smaller part of the run, and its decision needs the plan's bytes.
 */
import * as crypto from 'node:crypto';
import { BULK_FILES, COALESCE_BYTES } from './apply-common';
import { moverCommand, stageExtract } from './apply-moves';
import { Coalesce } from './coalesce';
import { LocalTarFeed, localTarAvailable, localTarFeed } from './local-tar';
import { Plan } from './plan';
import { RemoteListing } from './remote-scan';
import { Connection, ExecResult } from './transport';

/** apply-tar.ts gzips the archive from this exec-channel opening time on (see COMPRESS_OPEN_MS there). */
export const EARLY_MAX_OPEN_MS = 60;

/** The archive a pass takes over: its staging folder and how its extraction and packing ended. */
export interface TakenArchive {
  readonly stage: string;
  readonly result: Promise<{ r: ExecResult; skipped: [string, string][] }>;
}

export class EarlyArchive {
  /** Entries taken by the scan, in its order; once started, only those not yet given to tar. */
  private waiting: string[] = [];
  private readonly fed = new Set<string>();
  private conn?: Connection;
  private state: 'scanning' | 'ready' | 'going' | 'over' = 'scanning';
  private tar?: LocalTarFeed;
  private run?: Promise<ExecResult>;
  private stageName?: string;
  private flushing = false;
  private starting?: Promise<void>;

  constructor(
    private readonly localRoot: string,
    private readonly remoteRoot: string,
    private readonly options: { signal?: AbortSignal; onBytes?: (n: number) => void; minEntries?: number } = {},
  ) {
    void localTarAvailable(); // asked now (once per process), answered by the time the listing comes
  }

  /** The scan's hook (ScanOptions.onEntry). */
  readonly onEntry = (rel: string): void => {
    if (this.state === 'over') return;
    this.fed.add(rel);
    this.waiting.push(rel);
    if (this.state === 'going') this.flushSoon();
    else if (this.state === 'ready') this.maybeStart();
  };

  /** The first listing: an empty remote root (and a near link) lets the archive start. */
  listed(conn: Connection, listing: RemoteListing): void {
    if (this.state !== 'scanning') return;
    if (listing.tree.size > 0 || listing.leftovers.length > 0 || listing.foreign.length > 0 || conn.execOpenMs >= EARLY_MAX_OPEN_MS) return this.drop();
    this.conn = conn;
    this.state = 'ready';
    this.maybeStart();
  }

  /** This archive when it goes over `conn` (or has not started), for a pass over `conn`. */
  on(conn: Connection): EarlyArchive | undefined {
    return this.conn === undefined || this.conn === conn ? this : undefined;
  }

  /** The staging folder, once started. */
  get stage(): string | undefined {
    return this.stageName;
  }

  /**
   * The running archive for `plan`, if the plan is exactly new items that were all fed; its names are
   * ended. Otherwise the archive is ended and its staging folder removed (awaited), and undefined.
   */
  async take(plan: Plan): Promise<TakenArchive | undefined> {
    await this.starting;
    if (this.state !== 'going' || !this.tar || !this.run) {
      await this.end();
      return undefined;
    }
    const fits = plan.deletes.length === 0 && plan.chmods.length === 0 && [plan.dirs, plan.files, plan.links].every((items) => items.every((i) => this.fed.has(i.rel)));
    if (!fits) {
      await this.end();
      return undefined;
    }
    this.flush();
    this.state = 'over';
    const { tar, run } = this;
    tar.end();
    const result = (async () => {
      try {
        const r = await run;
        const { skipped } = await tar.done;
        return { r, skipped };
      } catch (e) {
        tar.stream.destroy();
        tar.done.catch(() => undefined);
        throw e;
      }
    })();
    return { stage: this.stageName as string, result };
  }

  /** Ends what was started and not taken: the archive is closed and its staging folder removed. */
  async end(): Promise<void> {
    await this.starting;
    const was = this.state;
    this.drop();
    if (was !== 'going' || !this.tar || !this.run) return;
    this.tar.end();
    const conn = this.conn as Connection;
    await this.run.catch(() => undefined);
    await this.tar.done.catch(() => undefined);
    // The mover given no work removes the staging folder (apply-moves.ts).
    if (conn.alive) await conn.exec(moverCommand(this.remoteRoot, this.stageName as string), Buffer.alloc(0)).catch(() => undefined);
  }

  private drop(): void {
    this.state = 'over';
    this.waiting = [];
  }

  private maybeStart(): void {
    if (this.state !== 'ready' || this.fed.size <= (this.options.minEntries ?? BULK_FILES)) return;
    const conn = this.conn as Connection;
    if (!conn.alive) return this.drop();
    this.state = 'going';
    this.starting = localTarAvailable().then((ok) => {
      if (this.state !== 'going') return;
      if (!ok) return this.drop();
      this.stageName = `.kubedev-stage-${crypto.randomBytes(6).toString('hex')}`;
      this.tar = localTarFeed(this.localRoot);
      this.tar.done.catch(() => undefined); // read by take()
      // Folders' modes after their contents: a folder without u+w may come before its files.
      const unpack = 'tar -x -p -o --delay-directory-restore -f - -C "$S"';
      this.run = conn.exec(stageExtract(this.remoteRoot, this.stageName, unpack), this.tar.stream.pipe(new Coalesce(COALESCE_BYTES, this.options.onBytes)), { signal: this.options.signal });
      this.run.catch(() => undefined); // read by take() or end()
      this.flush();
    });
  }

  /** Names go to tar once per turn of the event loop (the scan takes entries in slices). */
  private flushSoon(): void {
    if (this.flushing || !this.tar) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      if (this.state === 'going') this.flush();
    });
  }

  private flush(): void {
    if (!this.tar || this.waiting.length === 0) return;
    this.tar.add(this.waiting);
    this.waiting = [];
  }
}
