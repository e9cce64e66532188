/**
 * `kubedev up`'s live status on stderr. On a TTY one line is redrawn in place (files, bytes, last
 * batch, errors); elsewhere only milestones are printed, one line each. With --json, every event is
 * also one JSON object per line on stdout.
 */
export interface FolderStatus {
  readonly local: string;
  readonly remote: string;
  files: number;
  bytes: number;
  state: string;
}

export interface StatusIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export class StatusLine {
  private readonly io: StatusIO;
  private readonly json: boolean;
  private readonly tty: boolean;
  private readonly name: string;
  readonly folders: FolderStatus[] = [];
  private lastBatch = '';
  private errors = 0;
  private lastError = '';
  private phase = 'starting';
  private drawn = false;

  constructor(name: string, io: StatusIO, options: { json: boolean }) {
    this.io = io;
    this.name = name;
    this.json = options.json;
    this.tty = io.stderr.isTTY === true;
  }

  /** A machine event (stdout, --json only). */
  event(event: string, fields: Record<string, unknown> = {}): void {
    if (this.json) this.io.stdout.write(`${JSON.stringify({ event, env: this.name, ...fields })}\n`);
  }

  /** A milestone: printed as a line (above the live line on a TTY). */
  say(message: string): void {
    this.clear();
    this.io.stderr.write(`kubedev: ${message}\n`);
    this.draw();
  }

  /** A line of the dev process's output, on stdout (the live line on stderr redrawn below it). */
  output(line: string): void {
    this.clear();
    this.io.stdout.write(`${line}\n`);
    this.draw();
  }

  setPhase(phase: string): void {
    this.phase = phase;
    this.draw();
  }

  batch(folder: FolderStatus, stats: { files: number; deleted: number; bytes: number; ms: number }): void {
    folder.files += stats.files + stats.deleted;
    folder.bytes += stats.bytes;
    const at = new Date().toTimeString().slice(0, 8);
    this.lastBatch = `${stats.files} sent, ${stats.deleted} deleted, ${size(stats.bytes)} in ${Math.round(stats.ms)} ms at ${at} (${folder.remote})`;
    this.draw();
  }

  error(message: string): void {
    this.errors++;
    this.lastError = message;
    this.say(`error: ${message}`);
  }

  private line(): string {
    const files = this.folders.reduce((n, f) => n + f.files, 0);
    const bytes = this.folders.reduce((n, f) => n + f.bytes, 0);
    const parts = [`${this.name}: ${this.phase}`, `${files} files, ${size(bytes)} mirrored`];
    if (this.lastBatch) parts.push(`last batch ${this.lastBatch}`);
    parts.push(this.errors === 0 ? 'no errors' : `${this.errors} error${this.errors === 1 ? '' : 's'} (last: ${this.lastError})`);
    const text = parts.join(' | ');
    const width = this.io.stderr.columns ?? 120;
    return text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text;
  }

  private clear(): void {
    if (this.tty && this.drawn) this.io.stderr.write('\r\x1b[K');
    this.drawn = false;
  }

  private draw(): void {
    if (!this.tty) return;
    this.io.stderr.write(`\r\x1b[K${this.line()}`);
    this.drawn = true;
  }

  /** Leaves the cursor on a fresh line. */
  end(): void {
    if (this.tty && this.drawn) this.io.stderr.write('\n');
    this.drawn = false;
  }

  /** The summary printed at the end. */
  summary(): string {
    const files = this.folders.reduce((n, f) => n + f.files, 0);
    const bytes = this.folders.reduce((n, f) => n + f.bytes, 0);
    return `${files} files, ${size(bytes)} mirrored, ${this.errors} error${this.errors === 1 ? '' : 's'}`;
  }
}
