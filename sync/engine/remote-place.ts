/**
 * Where the remote root leads. The root is entered with `cd -P` by every script that writes, and each
 * check of a folder inside it is made against the physical path reached. A root the server replaced by
 * a symlink since it was listed (or a folder above it: `mv /workspace /old; ln -s /elsewhere /workspace`)
 * would pass those checks and take the writes in another folder. So the listing prints the physical
 * path it entered (remote-scan.ts), the connection keeps it (Connection.listedRoots), and a script
 * entering the root compares: elsewhere, it writes nothing and exits ROOT_MOVED_EXIT with both places
 * on stderr; the session halts with RemoteRootMovedError. A builtin test after the `cd`: no process, no
 * round trip.
 */
import { RemoteError } from './transport';
import { shQuote } from './tree';

/** A script's exit code when the root led elsewhere (counted only with its stderr line: see movedFrom). */
export const ROOT_MOVED_EXIT = 75;
const TAG = 'KUBEDEV-ROOT-MOVED';

/**
 * Shell lines entering `root` physically (`fail` runs when it cannot be entered); with `physical`, the
 * place reached must be it.
 */
export function enterRoot(root: string, physical: string | undefined, fail: string): string {
  const cd = `cd -P -- ${shQuote(root)} || ${fail}`;
  if (physical === undefined) return cd;
  return `${cd}\n[ "$PWD" = ${shQuote(physical)} ] || { printf '${TAG}\\t%s\\t%s\\n' ${shQuote(physical)} "$PWD" >&2; exit ${ROOT_MOVED_EXIT}; }`;
}

/** The listed and the present place when a script exited for a moved root (its code and stderr), else undefined. */
export function movedFrom(code: number | null, stderr: string): { listed: string; now: string } | undefined {
  if (code !== ROOT_MOVED_EXIT) return undefined;
  const m = new RegExp(`^${TAG}\\t([^\\t\\n]*)\\t([^\\n]*)$`, 'm').exec(stderr);
  return m ? { listed: m[1], now: m[2] } : undefined;
}

/** The remote root leads to another place than when it was listed: the session halts, nothing was written there. */
export class RemoteRootMovedError extends RemoteError {
  constructor(remoteRoot: string, listed: string | undefined, now: string | undefined) {
    const where = now === undefined ? 'elsewhere' : `to '${now}'`;
    const was = listed === undefined ? 'where it led when it was listed' : `to '${listed}' where it led when it was listed`;
    super(
      `remote folder '${remoteRoot}' now leads ${where} on the server, not ${was}: something on the server replaced it (or a folder above it) with a symlink. ` +
        `The sync stopped; nothing was written or deleted there. Restore the folder, or start the sync again to mirror into its new place`,
      null,
      '',
    );
    this.name = 'RemoteRootMovedError';
  }
}
