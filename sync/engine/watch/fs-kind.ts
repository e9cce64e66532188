/**
 * Whether a local folder lives on a file system that delivers no change events for what others write
 * (network mounts: NFS, SMB, 9p as in WSL's /mnt/c, FUSE such as sshfs, VirtualBox shared folders).
 * There 'auto' polls.
 *
 * Decided by the file system's type, not by a probe: a probe would write into the developer's folder
 * (the runner never modifies anything local) and wait for an event that a loaded machine may deliver
 * late, making start-up slow and the choice flaky. The type is read once, in well under a millisecond
 * (Linux: statfs magic; macOS: `mount`'s list; Windows: a UNC path). What this misses is still caught
 * by the periodic rescan, and `--watch poll` forces polling.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

/** statfs f_type of Linux network and pass-through file systems (linux/magic.h). */
const LINUX_NETWORK_MAGIC: ReadonlyMap<number, string> = new Map([
  [0x6969, 'nfs'],
  [0x517b, 'smb'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x01021997, '9p'],
  [0x65735546, 'fuse'],
  [0x786f4256, 'vboxsf'],
  [0x00c36400, 'ceph'],
  [0x5346414f, 'afs'],
  [0x73757245, 'coda'],
]);

/** `mount` type names of macOS network file systems. */
const DARWIN_NETWORK = /^(nfs|smbfs|afpfs|webdav|cifs|ftp|macfuse|osxfuse|fusefs.*)$/;

/** The longest mount point of `mountOutput` (macOS `mount` lines) holding `dir`, with its type. */
export function darwinMountOf(mountOutput: string, dir: string): { point: string; type: string } | undefined {
  let best: { point: string; type: string } | undefined;
  for (const line of mountOutput.split('\n')) {
    const m = / on (.+) \(([^,)]+)/.exec(line);
    if (!m) continue;
    const [point, type] = [m[1], m[2].trim()];
    const inside = point === '/' || dir === point || dir.startsWith(`${point}/`);
    if (inside && (!best || point.length > best.point.length)) best = { point, type };
  }
  return best;
}

/** The network file system `dir` is on ('nfs', 'smbfs', ...), or undefined for a local one (or unknown). */
export function networkFsOf(dir: string, platform: NodeJS.Platform = process.platform): string | undefined {
  try {
    if (platform === 'linux') return LINUX_NETWORK_MAGIC.get(Number(fs.statfsSync(dir).type));
    if (platform === 'win32') return /^\\\\(?![?.]\\)/.test(dir) ? 'unc' : undefined;
    if (platform === 'darwin') {
      const m = darwinMountOf(execFileSync('/sbin/mount', { encoding: 'utf8', timeout: 2_000 }), dir);
      return m && DARWIN_NETWORK.test(m.type) ? m.type : undefined;
    }
  } catch {
    return undefined; // cannot tell: watch, and let the periodic rescan catch what events miss
  }
  return undefined;
}
