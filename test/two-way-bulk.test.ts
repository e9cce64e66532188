/**
 * 1,000 files generated in the container (an `npm install`-style burst) reach the laptop while the
 * runner watches; the time is printed beside `rsync -a` pulling the same tree over the same sshd.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TwoWaySession } from '../sync/engine/two-way';
import { useArena } from './support/hostile';
import { eventually, tempDir } from './support/trees';
import { remote, twoWay } from './support/two-way';

jest.setTimeout(120_000);
const { sshd, arena } = useArena();
let session: TwoWaySession | undefined;
afterEach(async () => {
  await session?.close();
  session = undefined;
});

const GENERATE = 'mkdir -p node_modules/pkg && i=0; while [ $i -lt 1000 ]; do mkdir -p node_modules/pkg/d$((i % 50)); printf "module %s %0200d" $i 0 > node_modules/pkg/d$((i % 50))/f$i.js; i=$((i+1)); done';

test('1,000 files made in the container all arrive locally, byte for byte', async () => {
  const a = arena();
  session = twoWay(sshd(), a);
  await session.start();
  const t0 = performance.now();
  remote(sshd(), a, GENERATE);
  const made = performance.now();
  await eventually(() => a.differences(), 30_000, 'generated files local');
  const twoWayMs = performance.now() - made;
  // rsync -a pulling the same tree (fresh destination), over the same sshd and key.
  const s = sshd();
  const dest = tempDir('rsync-pull');
  const r0 = performance.now();
  execFileSync('rsync', ['-a', '-e', `ssh -i ${s.identity} -p ${s.port} -o UserKnownHostsFile=${s.knownHosts} -o StrictHostKeyChecking=yes -o BatchMode=yes`, `${s.user}@${s.host}:${a.remote}/`, `${dest}/`]);
  const rsyncMs = performance.now() - r0;
  fs.rmSync(dest, { recursive: true, force: true });
  process.stdout.write(`two-way: 1,000 container files -> local in ${twoWayMs.toFixed(0)} ms after the generator ended (generator ${(made - t0).toFixed(0)} ms); rsync -a pull of the same tree ${rsyncMs.toFixed(0)} ms\n`);
  expect(fs.readdirSync(path.join(a.local, 'node_modules/pkg'))).toHaveLength(50);
});
