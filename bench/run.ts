/**
 * `npm run bench`: kubedev sync against `rsync -a` over the same ssh, and `tar | ssh tar -x` (the
 * physical limit for bulk), on 127.0.0.1 and tmpfs, one run, side by side. Every timed run writes
 * into a fresh folder and nothing is deleted between timed runs (a disk's recent deletes would be
 * measured otherwise). Targets: ../shared/DESIGN.md "Sync performance targets".
 */
import { execFileSync, execSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SyncOptions, SyncSession, BatchStats } from '../sync/engine/session';
import { Sshd, startSshd } from '../test/support/sshd';
import { makeTree, rng } from './tree';

const BASE = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const FILES = Number(process.env.KUBEDEV_BENCH_FILES ?? 10_000);
const WATCH_FILES = Number(process.env.KUBEDEV_BENCH_WATCH_FILES ?? 100_000);
const EDITS = 100;

function ms(t0: number): number {
  return performance.now() - t0;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

function sshCommand(s: Sshd): string {
  return `ssh -p ${s.port} -i ${s.identity} -o UserKnownHostsFile=${s.knownHosts} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes`;
}

function sh(cmd: string): void {
  execSync(cmd, { stdio: ['ignore', 'ignore', 'inherit'], shell: '/bin/bash' });
}

function freshRemote(root: string, name: string, s: Sshd): string {
  const d = path.join(root, name);
  fs.mkdirSync(d);
  fs.chownSync(d, s.uid, s.gid);
  return d;
}

async function kubedevOnce(o: SyncOptions): Promise<BatchStats & { total: number }> {
  const sess = new SyncSession({ ...o, watch: false });
  try {
    return await sess.start();
  } finally {
    await sess.close();
  }
}

function procStats(pid: number): { rssMb: number; cpuTicks: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssMb: rss, cpuTicks: Number(f[11]) + Number(f[12]) };
}

/** Changes `n` files of the tree (new content, some size changes), deterministically. */
function changeFiles(root: string, paths: string[], n: number, seed: number): string[] {
  const r = rng(seed);
  const picked = new Set<string>();
  while (picked.size < n) picked.add(paths[Math.floor(r() * paths.length)]);
  for (const p of picked) {
    const abs = path.join(root, p);
    const old = fs.readFileSync(abs);
    fs.writeFileSync(abs, Buffer.concat([old.subarray(0, Math.max(0, old.length - 10)), Buffer.from(`/* ${seed} ${p} */\n`)]));
  }
  return [...picked];
}

interface Row {
  readonly what: string;
  readonly kubedev: string;
  readonly rsync: string;
  readonly tar: string;
  readonly ratio: string;
  readonly target: string;
}

async function main(): Promise<void> {
  for (const tool of ['rsync', 'ssh', 'tar']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} not found: install it with 'apt-get install -y ${tool === 'ssh' ? 'openssh-client' : tool}'`);
    }
  }
  const work = fs.mkdtempSync(path.join(BASE, 'kubedev-bench-'));
  fs.chmodSync(work, 0o755); // the ssh user must reach the remote folders inside
  const sshd = await startSshd({ user: 'kubedev-test', asUser: true });
  const rows: Row[] = [];
  const ssh = sshCommand(sshd);
  const at = `${sshd.user}@127.0.0.1`;
  const conn = { host: sshd.host, port: sshd.port, user: sshd.user, identity: sshd.identity, knownHosts: sshd.knownHosts };
  const s = (x: number): string => `${(x / 1000).toFixed(3)} s`;
  const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)} x`;
  try {
    process.stderr.write(`bench: generating ${FILES} files in ${work} ...\n`);
    const src = path.join(work, 'src');
    const tree = makeTree(src, FILES, 1);
    process.stderr.write(`bench: ${tree.files} files, ${tree.dirs} folders, ${(tree.bytes / 1e6).toFixed(1)} MB\n`);
    const remotes = freshRemote(work, 'remote', sshd);

    // 1. First mirror, each tool into its own fresh folder.
    const rsyncDest = path.join(remotes, 'rsync');
    let t = performance.now();
    sh(`rsync -a -e '${ssh}' ${src}/ ${at}:${rsyncDest}/`);
    const rsyncFirst = ms(t);
    const tarDest = path.join(remotes, 'tar');
    t = performance.now();
    sh(`tar -C ${src} -cf - . | ${ssh} ${at} 'mkdir -p ${tarDest} && tar -x -C ${tarDest} -f -'`);
    const tarFirst = ms(t);
    const kdDest = path.join(remotes, 'kubedev');
    t = performance.now();
    const first = await kubedevOnce({ ...conn, localRoot: src, remoteRoot: kdDest });
    const kdFirst = ms(t);
    if (first.files < FILES) throw new Error(`kubedev sent ${first.files} entries, expected at least ${FILES}`);
    sh(`diff -r ${src} ${kdDest}`);
    rows.push({ what: `first mirror (${FILES} files, ${(tree.bytes / 1e6).toFixed(1)} MB)`, kubedev: s(kdFirst), rsync: s(rsyncFirst), tar: s(tarFirst), ratio: ratio(kdFirst, rsyncFirst), target: '<= 0.80 x' });

    // 2. No-op re-attach.
    t = performance.now();
    sh(`rsync -a -e '${ssh}' ${src}/ ${at}:${rsyncDest}/`);
    const rsyncNoop = ms(t);
    t = performance.now();
    const noop = await kubedevOnce({ ...conn, localRoot: src, remoteRoot: kdDest });
    const kdNoop = ms(t);
    if (noop.files !== 0 || noop.bytes !== 0) throw new Error(`no-op re-attach sent ${noop.files} entries`);
    rows.push({ what: 'no-op re-attach', kubedev: s(kdNoop), rsync: s(rsyncNoop), tar: 'n/a', ratio: ratio(kdNoop, rsyncNoop), target: '<= 1.00 x' });

    // 3. 1,000 files changed (a branch switch): re-attach after the change.
    const changed = changeFiles(src, tree.paths, 1000, 7);
    t = performance.now();
    sh(`rsync -a -e '${ssh}' ${src}/ ${at}:${rsyncDest}/`);
    const rsyncChange = ms(t);
    const list = path.join(work, 'changed.list');
    fs.writeFileSync(list, changed.join('\n') + '\n');
    t = performance.now();
    sh(`tar -C ${src} -cf - -T ${list} | ${ssh} ${at} 'tar -x -C ${tarDest} -f -'`);
    const tarChange = ms(t);
    t = performance.now();
    const re = await kubedevOnce({ ...conn, localRoot: src, remoteRoot: kdDest });
    const kdChange = ms(t);
    if (re.files !== 1000) throw new Error(`re-attach after 1,000 changes sent ${re.files} entries`);
    sh(`diff -r ${src} ${kdDest}`);
    rows.push({ what: '1,000 files changed, re-attach', kubedev: s(kdChange), rsync: s(rsyncChange), tar: s(tarChange), ratio: ratio(kdChange, rsyncChange), target: '<= 1.00 x' });

    // 4. While watching: 1,000 files changed at once, then 100 single edits.
    const sess = new SyncSession({ ...conn, localRoot: src, remoteRoot: kdDest });
    await sess.start();
    let sent = 0;
    let lastSynced = 0;
    sess.on('synced', (b) => {
      sent += b.files;
      lastSynced = performance.now();
    });
    const changed2 = new Set<string>();
    t = performance.now();
    for (const p of changeFiles(src, tree.paths, 1000, 11)) changed2.add(p);
    const wroteAt = ms(t);
    const deadline = performance.now() + 60_000;
    while (sent < 1000 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    const kdWatchChange = lastSynced - t;
    sh(`diff -r ${src} ${kdDest}`);
    t = performance.now();
    sh(`rsync -a -e '${ssh}' ${src}/ ${at}:${rsyncDest}/`);
    const rsyncChange2 = ms(t);
    rows.push({ what: `1,000 files changed, watching (writes took ${wroteAt.toFixed(0)} ms)`, kubedev: s(kdWatchChange), rsync: s(rsyncChange2), tar: s(tarChange), ratio: ratio(kdWatchChange, rsyncChange2), target: '<= 1.00 x' });

    const lat: number[] = [];
    const r = rng(99);
    for (let i = 0; i < EDITS; i++) {
      const rel = tree.paths[Math.floor(r() * tree.paths.length)];
      const body = Buffer.from(`edit ${i} of ${rel}\n`.repeat(1 + (i % 7)));
      const done = new Promise<number>((resolve) => sess.once('synced', () => resolve(performance.now())));
      const t0 = performance.now();
      fs.writeFileSync(path.join(src, rel), body);
      const t1 = await Promise.race([done, new Promise<number>((res) => setTimeout(() => res(Number.NaN), 5000))]);
      if (!fs.readFileSync(path.join(kdDest, rel)).equals(body)) throw new Error(`edit ${i}: remote '${rel}' differs after the synced event`);
      lat.push(t1 - t0);
      await new Promise((res) => setTimeout(res, 20));
    }
    await sess.close();
    // rsync's latency for one edit: a full run after each of 10 edits.
    const rlat: number[] = [];
    for (let i = 0; i < 10; i++) {
      const rel = tree.paths[Math.floor(r() * tree.paths.length)];
      const t0 = performance.now();
      fs.writeFileSync(path.join(src, rel), `rsync edit ${i}\n`);
      sh(`rsync -a -e '${ssh}' ${src}/ ${at}:${rsyncDest}/`);
      rlat.push(ms(t0));
    }
    const p = (q: number): string => `${percentile(lat, q).toFixed(1)} ms`;
    rows.push({ what: `single edit -> byte-equal remote, p50 (${EDITS} edits)`, kubedev: p(50), rsync: `${percentile(rlat, 50).toFixed(1)} ms`, tar: 'n/a', ratio: ratio(percentile(lat, 50), percentile(rlat, 50)), target: '<= 15 ms' });
    rows.push({ what: 'single edit, p95', kubedev: p(95), rsync: `${percentile(rlat, 95).toFixed(1)} ms`, tar: 'n/a', ratio: ratio(percentile(lat, 95), percentile(rlat, 95)), target: '' });
    rows.push({ what: 'single edit, p99', kubedev: p(99), rsync: `${percentile(rlat, 100).toFixed(1)} ms (max of 10)`, tar: 'n/a', ratio: ratio(percentile(lat, 99), percentile(rlat, 100)), target: '<= 75 ms' });

    // 5. Watching 100,000 files: resident memory and idle CPU of a watching runner, in its own process.
    process.stderr.write(`bench: generating ${WATCH_FILES} files for the watch test ...\n`);
    const big = path.join(work, 'big');
    makeTree(big, WATCH_FILES, 3, false);
    const bigDest = path.join(remotes, 'big');
    const compiled = path.join(__dirname, 'watch-child.js');
    const script = fs.existsSync(compiled) ? [compiled] : ['-r', 'tsx/cjs', path.join(__dirname, 'watch-child.ts')];
    const child = spawn(process.execPath, [...script, JSON.stringify({ ...conn, localRoot: big, remoteRoot: bigDest })], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    t = performance.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('watch child: not ready within 180 s')), 180_000);
      child.stdout.on('data', (d: string) => {
        out += d;
        if (out.includes('READY')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`watch child exited with ${code}`)));
    });
    const readyMs = ms(t);
    await new Promise((res) => setTimeout(res, 3000)); // let start-up garbage be collected
    const a = procStats(child.pid as number);
    const idleSeconds = 10;
    await new Promise((res) => setTimeout(res, idleSeconds * 1000));
    const b = procStats(child.pid as number);
    const hz = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
    const cpu = ((b.cpuTicks - a.cpuTicks) / hz / idleSeconds) * 100;
    child.kill('SIGTERM');
    await new Promise((res) => child.once('exit', res));
    rows.push({ what: `watching ${WATCH_FILES} files: resident memory`, kubedev: `${b.rssMb.toFixed(0)} MB`, rsync: 'n/a', tar: 'n/a', ratio: '', target: '<= 150 MB' });
    rows.push({ what: `watching ${WATCH_FILES} files: idle CPU (${idleSeconds} s)`, kubedev: `${cpu.toFixed(2)} %`, rsync: 'n/a', tar: 'n/a', ratio: '', target: '< 1 %' });
    rows.push({ what: `watching ${WATCH_FILES} files: first mirror + watching ready`, kubedev: s(readyMs), rsync: 'n/a', tar: 'n/a', ratio: '', target: '' });
  } finally {
    await sshd.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const head = ['measure', 'kubedev', 'rsync -a', 'tar | ssh', 'kubedev/rsync', 'target'];
  const table = [head, ...rows.map((r) => [r.what, r.kubedev, r.rsync, r.tar, r.ratio, r.target])];
  const widths = head.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  process.stdout.write(`\n${line(head)}\n| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |\n${rows.map((r) => line([r.what, r.kubedev, r.rsync, r.tar, r.ratio, r.target])).join('\n')}\n`);
  process.stdout.write(`\n${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}; node ${process.version}; ${execSync('ssh -V 2>&1').toString().trim()}; ${execSync('rsync --version').toString().split('\n')[0]}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
