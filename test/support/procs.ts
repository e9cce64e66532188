/** This machine's processes, read from /proc (the tests' sshd is local: its sessions' processes are here). */
import * as fs from 'node:fs';

export interface Proc {
  readonly pid: number;
  readonly ppid: number;
  readonly argv: string[];
}

/** The processes `match` picks (one that ends while it is read is left out). */
export function processes(match: (p: Proc) => boolean): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const ppid = Number(/^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${name}/status`, 'utf8'))?.[1]);
      if (match({ pid: Number(name), ppid, argv })) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
