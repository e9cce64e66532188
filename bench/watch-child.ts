/**
 * Runs one watching SyncSession in its own process so the parent can read its resident memory and CPU
 * time from /proc. Argument: JSON SyncOptions. Prints READY <json> once the first mirror is done.
 */
import { SyncSession } from '../sync/engine/session';

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2]);
  const s = new SyncSession({ ...options, watch: true });
  s.on('error', (e) => {
    process.stderr.write(`watch-child: ${e.message}\n`);
    process.exit(1);
  });
  const r = await s.start();
  process.stdout.write(`READY ${JSON.stringify(r)}\n`);
  const stop = (): void => void s.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write(`watch-child: ${(e as Error).message}\n`);
  process.exit(1);
});
