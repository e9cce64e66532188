/**
 * The remote side of a session: preparing the root (created, checked writable, resolved on the server
 * and checked again by lib's rule, tools present) and listing it.
 */
import { remoteRootProblem, remoteRootShellCheck } from '../../lib/remote-root';
import { IgnoreMatcher } from './ignore';
import { ListingMarkerError, ListingParser, listingMarker, RemoteListing, remoteScanCommand } from './remote-scan';
import { Connection, ExecResult, RemoteError } from './transport';
import { shQuote } from './tree';

/** The checks and `mkdir` of prepareRemote as shell lines (failures exit with the codes prepareFailure reads). */
function prepareLines(r: string): string[] {
  return [
    `r=${shQuote(r)}`,
    // The root as the server resolves it (symlinks followed), checked before anything is made there.
    'real=$(realpath -m -- "$r" 2>/dev/null) || real=$r',
    `( ${remoteRootShellCheck('real', 9)} ) || { printf '%s' "$real" >&2; exit 9; }`,
    'if [ -e "$r" ] && [ ! -d "$r" ]; then exit 3; fi',
    'mkdir -p -- "$r" || exit 4',
    '[ -w "$r" ] && [ -x "$r" ] || exit 5',
    'command -v tar >/dev/null 2>&1 || exit 6',
    'command -v find >/dev/null 2>&1 || exit 7',
  ];
}

/** The error for a prepare step's exit code (3 to 9), or undefined for any other code. */
function prepareFailure(res: ExecResult, o: { remoteRoot: string; user: string; host: string }): RemoteError | undefined {
  const r = o.remoteRoot;
  const at = `${o.user}@${o.host}`;
  const msg: Record<number, string> = {
    3: `remote path '${r}' on ${at} is a file, not a folder. Remove it or pass another --remote`,
    4: `cannot create remote folder '${r}' on ${at}: ${res.stderr.trim().replace(/\n/g, '; ')}. Create it with the right owner, or pass a --remote the user '${o.user}' may write`,
    5: `remote folder '${r}' on ${at} is not writable by '${o.user}'. Fix its owner or mode (chown/chmod), or pass another --remote`,
    6: `the server ${at} has no 'tar' on its PATH. Install tar in the sidecar image`,
    7: `the server ${at} has no 'find' on its PATH. Install findutils in the sidecar image`,
    9: `remote folder '${r}' on ${at} resolves to '${res.stderr}' on the server (through a symlink), which ${remoteRootProblem(res.stderr)?.what ?? 'is refused'}; nothing was written. Pass a --remote that is a folder of its own, e.g. '/workspace'`,
  };
  const m = msg[res.code ?? -1];
  return m === undefined ? undefined : new RemoteError(m, res.code, res.stderr);
}

/** Creates the remote folder and checks it is a writable folder that resolves to a safe place. */
export async function prepareRemote(conn: Connection, o: { remoteRoot: string; user: string; host: string }, signal?: AbortSignal): Promise<void> {
  const res = await conn.exec('sh -s', [...prepareLines(o.remoteRoot), 'exit 0'].join('\n'), { signal: signal });
  if (res.code !== 0) throw prepareFailure(res, o) ?? new RemoteError(`preparing '${o.remoteRoot}' on ${o.user}@${o.host} failed (exit ${res.code}): ${res.stderr.trim()}`, res.code, res.stderr);
}

/**
 * prepareRemote and listRemote in one command (one channel, one process start, one round trip): the
 * listing starts only once every check passed and the folder exists.
 */
export async function prepareAndList(conn: Connection, o: { remoteRoot: string; user: string; host: string }, ig: IgnoreMatcher, signal?: AbortSignal): Promise<RemoteListing> {
  const marker = listingMarker();
  const script = [...prepareLines(o.remoteRoot), remoteScanCommand(o.remoteRoot, ig.prunableNames, marker), ''].join('\n');
  const parser = new ListingParser(ig, marker, o.remoteRoot);
  const res = await conn.exec('sh -s', script, { signal: signal, onStdout: (b) => parser.push(b) });
  const refused = res.code === 0 ? undefined : prepareFailure(res, o);
  if (refused) throw refused;
  return listingOf(res, o.remoteRoot, parser);
}

/** Lists the remote root (see remote-scan.ts). */
export async function listRemote(conn: Connection, root: string, ig: IgnoreMatcher, signal?: AbortSignal): Promise<RemoteListing> {
  const marker = listingMarker();
  const parser = new ListingParser(ig, marker, root);
  const res = await conn.exec(remoteScanCommand(root, ig.prunableNames, marker), undefined, { signal: signal, onStdout: (b) => parser.push(b) });
  return listingOf(res, root, parser);
}

/** The listing the command's output was read into, or the error its result reports. */
function listingOf(res: ExecResult, root: string, parser: ListingParser): RemoteListing {
  if (res.code !== 0) {
    if (/printf|unknown predicate|invalid/i.test(res.stderr)) {
      throw new RemoteError(`listing '${root}' needs GNU find (find -printf) on the server: ${res.stderr.trim()}. Install findutils in the sidecar image`, res.code, res.stderr);
    }
    throw new RemoteError(`listing remote folder '${root}' failed (exit ${res.code}): ${res.stderr.trim()}. Check that the user may read it`, res.code, res.stderr);
  }
  try {
    return parser.end();
  } catch (e) {
    if (e instanceof ListingMarkerError) throw new RemoteError(e.message, res.code, res.stderr);
    throw new RemoteError(`the listing of '${root}' came back garbled (the server's login shell may print text at start). Make the shell start silently for non-interactive sessions`, res.code, res.stderr);
  }
}
