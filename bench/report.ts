/** The bench's figures: alternated runs, medians with min–max, and one markdown table per delay. */
import { execSync } from 'node:child_process';
import * as os from 'node:os';

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const median = (xs: readonly number[]): number => percentile(xs, 50);

/**
 * Runs each tool `runs` times, alternated (A B C, then B C A, ...), so a machine that slows down or
 * speeds up meanwhile is shared fairly; returns each tool's times in ms.
 */
export async function alternate(runs: number, tools: ReadonlyArray<(i: number) => Promise<number>>): Promise<number[][]> {
  const out = tools.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < tools.length; k++) {
      const t = (i + k) % tools.length;
      out[t].push(await tools[t](i));
    }
  }
  return out;
}

/** "1.234 s (1.10–1.40)" or "12.3 ms (10.1–15.0)": the median, then min–max. */
export function fmt(xs: readonly number[] | undefined, unit: 's' | 'ms' = 's'): string {
  if (!xs || xs.length === 0) return 'n/a';
  const f = (v: number): string => (unit === 's' ? (v / 1000).toFixed(3) : v.toFixed(1));
  const one = `${f(median(xs))} ${unit}`;
  return xs.length === 1 ? one : `${one} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

export function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB`;
}

export interface Row {
  readonly what: string;
  readonly kubedev: string;
  readonly rsync?: string;
  readonly tar?: string;
  /** kubedev / rsync, medians. */
  readonly ratio?: number;
  readonly target?: string;
  /** undefined: no target; otherwise whether it is met. */
  readonly met?: boolean;
  /** Anything a reader must know (a row that failed says why here). */
  readonly note?: string;
}

/** A row comparing medians, with a ratio target (e.g. 0.8 for "≤ 0.8×"). */
export function ratioRow(what: string, kd: number[], rs: number[], tar: number[] | undefined, target: number): Row {
  const ratio = median(kd) / median(rs);
  return { what, kubedev: fmt(kd), rsync: fmt(rs), tar: tar ? fmt(tar) : undefined, ratio, target: `≤ ${target.toFixed(2)}×`, met: ratio <= target };
}

/** A row that could not be measured: printed, never skipped. */
export function failedRow(what: string, e: unknown): Row {
  return { what, kubedev: 'FAILED', note: (e as Error).message.split('\n')[0].slice(0, 300), met: false };
}

export function table(rows: readonly Row[]): string {
  const head = ['measure', 'kubedev (median, min–max)', 'rsync -a', 'tar | ssh', 'ratio', 'target', 'met?'];
  const cells = rows.map((r) => [
    r.note ? `${r.what} — ${r.note}` : r.what,
    r.kubedev,
    r.rsync ?? 'n/a',
    r.tar ?? 'n/a',
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : '**no**',
  ]);
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  const line = (c: string[]): string => `| ${c.map(esc).join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...cells.map(line)].join('\n');
}

export function machineLine(): string {
  const first = (cmd: string): string => {
    try {
      return execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
    } catch (e) {
      return `(${cmd}: ${(e as Error).message.split('\n')[0]})`;
    }
  };
  return `${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; node ${process.version}; ${first('ssh -V 2>&1')}; ${first('rsync --version')}`;
}
