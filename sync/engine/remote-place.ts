/**
 * Where the remote root leads. The root is entered with `cd -P` by every script that writes, and each
 * check of a folder inside it is made against the physical path reached. A root the server replaced by
 * a symlink since it was listed (or a folder above it: `mv /workspace /old; ln -s /elsewhere /workspace`)
 * would pass those checks and take the writes in another folder. So the listing prints the physical
 * path it entered (remote-scan.ts), the connection keeps it (Connection.listedRoots), and a script
 * entering the root compares: elsewhere, it writes nothing and exits ROOT_MOVED_EXIT with both places
 * on stderr; the session halts with RemoteRootMovedError. A builtin test after the `cd`: no process, no
 * round trip.
 *
 * A place is bytes (a path need not be UTF-8), with one leading `//` made `/`: bash keeps the `//` a
 * symlink's target starts with in `$PWD` (`cd -P`), dash, busybox and SFTP's realpath do not, and a
 * session's scripts run under both (`sh -s`, and the login shell).
 */
import { isUtf8 } from 'node:buffer';
import { RemoteError } from './transport';
import { shQuote } from './tree';

/** A script's exit code when the root led elsewhere (counted only with its stderr record: see movedFrom). */
export const ROOT_MOVED_EXIT = 75;
const TAG = 'KUBEDEV-ROOT-MOVED';

/** `p` with one leading `//` (not `///`) made `/`. */
export function normalPlace(p: Buffer): Buffer {
  return p.length > 2 && p[0] === 0x2f && p[1] === 0x2f && p[2] !== 0x2f ? p.subarray(1) : p;
}

/** Shell lines setting `$KUBEDEV_PLACE` to `$PWD`, a leading `//` made `/` (as normalPlace). */
export const PLACE_OF_PWD = 'KUBEDEV_PLACE=$PWD; case $KUBEDEV_PLACE in //[!/]*) KUBEDEV_PLACE=${KUBEDEV_PLACE#/} ;; esac';

/**
 * `b` and then an `x`, as one shell word: quoted text when UTF-8, else printf's octal escapes (a command
 * substitution, which would drop trailing newlines: hence the `x`, which the script strips).
 */
export function shBytesX(b: Buffer): string {
  if (isUtf8(b)) return shQuote(`${b.toString('utf8')}x`);
  return `"$(printf '${[...b].map((c) => `\\${c.toString(8).padStart(3, '0')}`).join('')}x')"`;
}

/** Whether two places (either unknown) are the same. */
export function samePlace(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

/**
 * Whether `text` (an answer decoded as UTF-8: SFTP's realpath, a script's line) names `place`; never
 * for a place that is not UTF-8 (the decoding lost bytes that could tell two names apart).
 */
export function placeIs(place: Buffer, text: string): boolean {
  return isUtf8(place) && normalPlace(Buffer.from(text, 'utf8')).equals(place);
}

/**
 * Shell lines entering `root` physically (`fail` runs when it cannot be entered); with `place`, the
 * place reached must be it.
 */
export function enterRoot(root: string, place: Buffer | undefined, fail: string): string {
  const cd = `cd -P -- ${shQuote(root)} || ${fail}`;
  if (place === undefined) return cd;
  const listed = `KUBEDEV_LISTED=${shBytesX(place)}; KUBEDEV_LISTED=\${KUBEDEV_LISTED%x}`;
  return `${cd}\n${PLACE_OF_PWD}\n${listed}\n[ "$KUBEDEV_PLACE" = "$KUBEDEV_LISTED" ] || { printf '${TAG}\\0%s\\0%s\\0' "$KUBEDEV_LISTED" "$KUBEDEV_PLACE" >&2; exit ${ROOT_MOVED_EXIT}; }`;
}

/** The listed and the present place when a script exited for a moved root (its code and stderr), else undefined. */
export function movedFrom(code: number | null, stderr: string): { listed: string; now: string } | undefined {
  if (code !== ROOT_MOVED_EXIT) return undefined;
  const at = stderr.indexOf(`${TAG}\0`);
  if (at < 0) return undefined;
  const [listed, now] = stderr.slice(at + TAG.length + 1).split('\0');
  return now === undefined ? undefined : { listed, now };
}

/** Throws RemoteRootMovedError when a script exited because the root leads elsewhere now (its code and stderr). */
export function throwIfMoved(remoteRoot: string, res: { readonly code: number | null; readonly stderr: string }): void {
  const moved = movedFrom(res.code, res.stderr);
  if (moved) throw new RemoteRootMovedError(remoteRoot, moved.listed, moved.now);
}

/** The remote root leads to another place than when it was listed: the session halts, nothing was written there. */
export class RemoteRootMovedError extends RemoteError {
  constructor(remoteRoot: string, listed: Buffer | string | undefined, now: Buffer | string | undefined) {
    const text = (p: Buffer | string): string => (typeof p === 'string' ? p : p.toString('utf8'));
    const where = now === undefined ? 'elsewhere' : `to '${text(now)}'`;
    const was = listed === undefined ? 'where it led when it was listed' : `to '${text(listed)}' where it led when it was listed`;
    super(
      `remote folder '${remoteRoot}' now leads ${where} on the server, not ${was}: something on the server replaced it (or a folder above it) with a symlink. ` +
        `The sync stopped; nothing was written or deleted there. Restore the folder, or start the sync again to mirror into its new place`,
      null,
      '',
    );
    this.name = 'RemoteRootMovedError';
  }
}
