/**
 * Applies a plan to the remote: tar for bulk, SFTP otherwise (see apply-common.ts for the guarantees).
 */
import { applySftp } from './apply-sftp';
import { applyTar } from './apply-tar';
import { ApplyContext, ApplyResult, BULK_BYTES, BULK_FILES } from './apply-common';
import { withDeltas } from './delta';
import { Plan } from './plan';
import { remoteDelete, withWritableParents } from './remote-fix';
import { helperFor } from './remote-helper';

export type { ApplyContext, ApplyResult } from './apply-common';
export { remoteDelete } from './remote-fix';
export { remoteFailure, COALESCE_BYTES, BULK_FILES, BULK_BYTES, SFTP_PARALLEL } from './apply-common';

/** Applies `plan`: large files whose remote copy exists by changed blocks (delta.ts), the rest by applyWhole. */
export function applyPlan(ctx: ApplyContext, plan: Plan): Promise<ApplyResult> {
  // A watching session starts the remote helper in the background on the first plan of a connection
  // (the first pass), so the first save over a slow link already finds it (remote-helper.ts).
  if (ctx.method === undefined && ctx.watching !== false) helperFor(ctx.conn, ctx.remoteRoot);
  return withDeltas(ctx, plan, applyWhole);
}

/** Applies `plan` choosing tar for bulk, SFTP otherwise. */
async function applyWhole(ctx: ApplyContext, plan: Plan): Promise<ApplyResult> {
  const bytes = plan.files.reduce((n, f) => n + f.entry.size, 0);
  const count = plan.files.length + plan.links.length + plan.dirs.length;
  if (count === 0 && plan.chmods.length === 0) {
    await remoteDelete(ctx, plan.deletes);
    return { changed: [], unsent: [], warnings: [], bytes: 0, method: plan.deletes.length > 0 ? 'sftp' : 'none' };
  }
  const bulk = ctx.method ? ctx.method === 'tar' : count > BULK_FILES || (bytes > BULK_BYTES && plan.files.length > 1);
  return withWritableParents(ctx, plan, () => (bulk ? applyTar(ctx, plan, bytes) : applySftp(ctx, plan, bytes)));
}
