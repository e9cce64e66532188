/**
 * The agent's connections between runs (OpenSSH's ControlMaster/ControlPersist, for ssh2): a session
 * that ends hands its connection here; the next run to the same server with the same credentials takes
 * it and skips the TCP connect, the key exchange and the authentication (about 110 ms at 0 ms, three
 * round trips more at a distance).
 *
 * - The key is host, port, user and the texts of the key file and of known_hosts (read again at each
 *   take): a rotated key, or a host removed from known_hosts, never rides on an old connection.
 * - One idle connection per key; a second is ended. A connection that drops while idle, or stays
 *   unused `persistMs`, is ended and forgotten.
 * - ssh2's keepalive (every 5 s, 3 missed) keeps finding dead links while they wait here.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { ConnectionPool, ConnectOptions, IdleLink } from '../engine/transport';

interface Entry {
  link: IdleLink;
  timer: NodeJS.Timeout;
  forget: () => void;
  /** When it was kept (AgentPool.mark). */
  seq: number;
  /** Removes its listener of the SFTP session's end. */
  offSftp?: () => void;
}

function fileHash(file: string): string {
  try {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return `unreadable:${file}`;
  }
}

/** The key of a connection: what must be equal for two runs to share it. */
export function poolKey(o: ConnectOptions): string {
  return JSON.stringify([o.host, o.port, o.user, o.identity, fileHash(o.identity), o.knownHosts, fileHash(o.knownHosts)]);
}

/** Ends a link nobody holds (a late error must not reach an empty listener list and crash the agent). */
function end(link: IdleLink): void {
  link.client.on('error', () => undefined);
  link.client.end();
}

export class AgentPool implements ConnectionPool {
  private readonly idle = new Map<string, Entry>();
  private kept = 0;

  /** A mark: dropKeptSince(mark) ends the connections kept after it. */
  mark(): number {
    return this.kept;
  }

  /**
   * Ends the connections kept since `mark`: a run that failed or was stopped may have left requests
   * open on them (an SFTP handle of an upload cut short), which the next run must not inherit.
   */
  dropKeptSince(mark: number): void {
    for (const [key, e] of [...this.idle]) {
      if (e.seq <= mark) continue;
      this.release(key, e);
      end(e.link);
    }
  }

  constructor(private readonly persistMs: number) {}


  take(o: ConnectOptions): IdleLink | undefined {
    const key = poolKey(o);
    const e = this.idle.get(key);
    if (!e) return undefined;
    this.release(key, e);
    return e.link;
  }

  keep(o: ConnectOptions, link: IdleLink): boolean {
    const key = poolKey(o);
    if (this.idle.has(key)) return false;
    const entry: Entry = { link: { ...link }, timer: undefined as unknown as NodeJS.Timeout, forget: () => undefined, seq: ++this.kept };
    const forget = (): void => {
      if (this.idle.get(key) !== entry) return;
      this.release(key, entry);
      end(link);
    };
    entry.forget = forget;
    // An SFTP session the server ended is not handed on (the next run opens a new one).
    // Its listener goes when the link is taken (a connection kept and taken run after run would add one each time).
    const sftpGone = (): void => {
      entry.link = { ...entry.link, sftp: undefined };
    };
    link.sftp?.then(
      (s) => {
        if (this.idle.get(key) !== entry) return; // taken meanwhile
        s.once('close', sftpGone);
        entry.offSftp = () => s.removeListener('close', sftpGone);
      },
      sftpGone,
    );
    // While it waits here, a drop ends it (listeners removed when it is taken).
    link.client.on('error', forget);
    link.client.on('close', forget);
    entry.timer = setTimeout(forget, this.persistMs);
    entry.timer.unref();
    this.idle.set(key, entry);
    return true;
  }

  /** Ends every idle connection (the agent is leaving). */
  closeAll(): void {
    for (const [key, e] of [...this.idle]) {
      this.release(key, e);
      end(e.link);
    }
  }

  private release(key: string, e: Entry): void {
    e.offSftp?.();
    clearTimeout(e.timer);
    e.link.client.removeListener('error', e.forget);
    e.link.client.removeListener('close', e.forget);
    this.idle.delete(key);
  }
}
