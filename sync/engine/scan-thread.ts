/**
 * The first local scan of a one-shot run (`kubedev sync --once`) in a worker thread, on a machine
 * with cores to spare (scanThreadPays): the walk (lstat of every path, tens to hundreds of
 * milliseconds) runs on another core while the main thread loads ssh2, makes the SSH handshake and
 * reads the remote listing, instead of taking turns with them.
 *
 * Same walk, same rules: the worker runs tree.ts's scanLocalSync with the session's own ignore
 * patterns (so the same matcher), and sends back the entries (numbers in one transferred array),
 * the refusals, the hard-link names and the warnings for names other systems cannot hold
 * (portable-names.ts). A watching session does not use it: its scan must add each folder to the
 * watcher before listing it, on the main thread. If the worker cannot start or fails, the scan runs
 * on the main thread as before (a missing thread never changes what is sent).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { CompactIndex } from './index-store';
import { IgnoreMatcher, matcherOf } from './ignore';
import { portabilityWarnings } from './portable-names';
import { Entry, EntryType, Refusal, scanLocal, scanLocalSync, ScanResult } from './tree';

/** Fields per entry in the transferred array: type, size, mtimeMs, mode, and ino (a folder) or ctimeMs (a file). */
const FIELDS = 5;
const TYPES: readonly EntryType[] = ['file', 'dir', 'symlink'];
const MARK = 'kubedev-scan-thread';

interface Job {
  readonly mark: typeof MARK;
  readonly root: string;
  readonly patterns: readonly string[];
}

interface Reply {
  readonly keys: string[];
  readonly data: Float64Array;
  /** [entry number, link target] for each symlink. */
  readonly targets: Array<[number, string]>;
  readonly refused: Refusal[];
  readonly portable: Refusal[];
  /** [rel, dev:ino] for each file with several hard links. */
  readonly links: Array<[string, string]>;
}

export interface ThreadScan extends ScanResult {
  /** [rel, key] for each file with several hard links, in walk order. */
  readonly links: Array<[string, string]>;
  /** Whether the walk ran in a worker thread (false: it fell back to the main thread). */
  readonly threaded: boolean;
}

/** The walk in this (worker) thread, packed for the reply. */
function walkHere(job: Job): { reply: Reply; transfer: ArrayBuffer[] } {
  const tree = new Map<string, Entry>();
  const links: Array<[string, string]> = [];
  const { refused } = scanLocalSync(job.root, matcherOf(job.patterns), '', tree, [], { onHardLink: (rel, key) => links.push([rel, key]) });
  const keys = [...tree.keys()];
  const data = new Float64Array(keys.length * FIELDS);
  const targets: Array<[number, string]> = [];
  keys.forEach((k, i) => {
    const e = tree.get(k) as Entry;
    const o = i * FIELDS;
    data[o] = TYPES.indexOf(e.type);
    data[o + 1] = e.size;
    data[o + 2] = e.mtimeMs;
    data[o + 3] = e.mode;
    data[o + 4] = (e.type === 'dir' ? e.ino : e.ctimeMs) ?? 0;
    if (e.target !== undefined) targets.push([i, e.target]);
  });
  return { reply: { keys, data, targets, refused, portable: portabilityWarnings(keys), links }, transfer: [data.buffer as ArrayBuffer] };
}

/** The reply as the session's index (entries as a local stat makes them: exact mtimes). */
function unpack(r: Reply): ThreadScan {
  const tree = new CompactIndex();
  const target = new Map(r.targets);
  r.keys.forEach((k, i) => {
    const o = i * FIELDS;
    const type = TYPES[r.data[o]];
    const e: Entry = { type, size: r.data[o + 1], mtimeMs: r.data[o + 2], mode: r.data[o + 3], exact: true };
    if (type === 'dir') tree.set(k, { ...e, ino: r.data[o + 4] });
    else if (type === 'symlink') tree.set(k, { ...e, target: target.get(i) });
    else tree.set(k, r.data[o + 4] !== 0 ? { ...e, ctimeMs: r.data[o + 4] } : e);
  });
  return { tree, refused: r.refused, portable: r.portable, links: r.links, threaded: true };
}

/** The compiled file runs as is; from the TypeScript sources (tests), the worker loads them through tsx. */
function workerExecArgv(): string[] | undefined {
  if (path.extname(__filename) !== '.ts') return undefined;
  const hooked = process.execArgv.some((a) => a.includes('tsx'));
  return hooked ? undefined : ['-r', require.resolve('tsx/cjs')];
}

/**
 * Cores from which the thread pays. On 2 cores it did not (whole-process no-op, 10,000 files: 1.04x
 * the main-thread walk on an otherwise idle machine, 1.12x on a loaded one; the thread's own start
 * costs ~50 ms of CPU, and the server's processes want the second core during the handshake).
 */
const MIN_CORES = 4;

/** Whether this machine has the cores for the scan thread (see MIN_CORES). */
export function scanThreadPays(): boolean {
  return (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length) >= MIN_CORES;
}

/** A thread started ahead (prestartScanThread), waiting for its job; dropped if it ends first. */
let spare: Worker | undefined;

/** A new scan thread, waiting for its job (a message). Throws if it cannot be started. */
function spawn(): Worker {
  const w = new Worker(__filename, { workerData: { mark: MARK }, execArgv: workerExecArgv(), stdout: false, stderr: false });
  const drop = (): void => {
    if (spare === w) spare = undefined;
  };
  w.once('error', drop);
  w.once('exit', drop);
  return w;
}

/**
 * Starts a scan thread now, for the next scanInThread: bin/kubedev.js calls it first thing for
 * `kubedev sync --once`, so the thread's own start-up (tens of milliseconds) overlaps the CLI's
 * loading. An unused one holds nothing up: it does not keep the process alive.
 */
export function prestartScanThread(pays = scanThreadPays()): void {
  if (spare || !pays) return;
  try {
    spare = spawn();
    spare.unref();
  } catch {
    spare = undefined; // scanInThread starts one, or walks here
  }
}

/** @internal Whether a thread started ahead is waiting (tests). */
export function hasSpareScanThread(): boolean {
  return spare !== undefined;
}

/**
 * Scans `root` with `ig` in a worker thread. Falls back to the main-thread walk (scanLocal) if the
 * thread cannot start or fails; `threaded` says which ran.
 */
export function scanInThread(root: string, ig: IgnoreMatcher): Promise<ThreadScan> {
  const fallback = async (): Promise<ThreadScan> => {
    const links: Array<[string, string]> = [];
    const r = await scanLocal(root, ig, '', new CompactIndex(), [], { onHardLink: (rel, key) => links.push([rel, key]) });
    return { ...r, links, threaded: false };
  };
  let w: Worker;
  try {
    w = spare ?? spawn();
    spare = undefined;
    w.ref();
    const job: Job = { mark: MARK, root, patterns: [...ig.patterns] };
    w.postMessage(job);
  } catch {
    return fallback();
  }
  return new Promise<ThreadScan>((resolve) => {
    let settled = false;
    const settle = (result: () => Promise<ThreadScan> | ThreadScan): void => {
      if (settled) return;
      settled = true;
      resolve(result());
    };
    w.once('message', (r: Reply) => settle(() => unpack(r)));
    // A thread that fails, or ends without its reply: the walk runs here instead.
    w.once('error', () => settle(fallback));
    w.once('exit', () => settle(fallback));
  });
}

// The thread: one job, one reply, then it ends (its port closed).
if (!isMainThread && (workerData as { mark?: string } | undefined)?.mark === MARK && parentPort) {
  const port = parentPort;
  port.once('message', (job: Job) => {
    const { reply, transfer } = walkHere(job);
    port.postMessage(reply, transfer);
    port.close();
  });
}
