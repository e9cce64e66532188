/**
 * `npm run soak`: the `kubedev sync` process (as users start it) watching a 3,000-file tree for
 * KUBEDEV_SOAK_SECONDS (default 180) while saves land across the tree every 20 ms and every 50th
 * operation deletes and recreates a folder of 20 files. Once a second a probe file is written and timed
 * until the remote holds it; the runner's resident memory is sampled once a second. At the end the
 * trees must be equal within 1 s of the last write. Exits 1 (with the figures) when a probe or the final
 * convergence takes over 1 s, or memory grows by more than 25 % between the first and last thirds.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderSshdConfig } from '../lib/sshd';
import { startSshd } from '../test/support/sshd';
import { rng } from './tree';

const SECONDS = Number(process.env.KUBEDEV_SOAK_SECONDS ?? 180);
const FILES = 3_000;
const FOLDERS = 60;
const BASE = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
/** The command under test (KUBEDEV_BIN: another build's bin/kubedev.js, e.g. to compare with a release). */
const BIN = process.env.KUBEDEV_BIN ?? path.resolve(__dirname, '..', '..', 'bin', 'kubedev.js');

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** Every file under `root` with its content (small trees only). */
function contents(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const d of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel === '' ? d.name : `${rel}/${d.name}`;
      if (d.isDirectory()) walk(r);
      else out.set(r, fs.readFileSync(path.join(root, r), 'utf8'));
    }
  };
  walk('');
  return out;
}

function differ(a: Map<string, string>, b: Map<string, string>): number {
  let n = 0;
  for (const [k, v] of a) if (b.get(k) !== v) n++;
  for (const k of b.keys()) if (!a.has(k)) n++;
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, ms: number): Promise<number> {
  const t0 = performance.now();
  while (!check()) {
    if (performance.now() - t0 > ms) return Infinity;
    await sleep(5);
  }
  return performance.now() - t0;
}

async function main(): Promise<void> {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run 'npm run build' first (npm run soak does)`);
  const work = fs.mkdtempSync(path.join(BASE, 'kubedev-soak-'));
  fs.chmodSync(work, 0o755);
  const sshd = await startSshd({
    user: 'kubedev-test',
    asUser: true,
    config: (p) => renderSshdConfig({ port: p.port, user: p.user, listenAddress: '127.0.0.1', hostKey: p.hostKey, authorizedKeysFile: p.authorizedKeys, pidFile: p.pidFile }),
  });
  const local = path.join(work, 'local');
  const remote = path.join(work, 'remote');
  fs.mkdirSync(remote);
  fs.chownSync(remote, sshd.uid, sshd.gid);
  for (let i = 0; i < FILES; i++) {
    const f = path.join(local, `dir${i % FOLDERS}`, `file-${i}.txt`);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, `initial ${i}\n`);
  }
  fs.mkdirSync(path.join(local, 'probes'));
  let child: ChildProcess | undefined;
  let failed = false;
  try {
    child = spawn(process.execPath, [BIN, 'sync', '--local', local, '--remote', path.join(remote, 'ws'), '--host', sshd.host, '--port', String(sshd.port), '--user', sshd.user, '--identity', sshd.identity, '--known-hosts', sshd.knownHosts, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: string[] = [];
    child.stdout?.setEncoding('utf8').on('data', (s: string) => out.push(s));
    const ready = await waitFor(() => out.join('').includes('"event":"ready"'), 60_000);
    if (!Number.isFinite(ready)) throw new Error(`the runner did not get ready within 60 s: ${out.join('')}`);
    const pid = child.pid as number;
    const dest = path.join(remote, 'ws');
    const r = rng(42);
    const probes: number[] = [];
    const rss: number[] = [];
    let saves = 0;
    let churns = 0;
    let op = 0;
    const stopAt = performance.now() + SECONDS * 1000;
    let nextProbe = performance.now() + 1000;
    let nextSample = performance.now();
    let probing: Promise<void> | undefined;
    while (performance.now() < stopAt) {
      op++;
      if (op % 50 === 0) {
        const g = path.join(local, `gen${op % 3}`);
        fs.rmSync(g, { recursive: true, force: true });
        fs.mkdirSync(g);
        for (let k = 0; k < 20; k++) fs.writeFileSync(path.join(g, `g-${op}-${k}.txt`), `generated ${op} ${k}\n`);
        churns++;
      } else {
        const i = Math.floor(r() * FILES);
        fs.writeFileSync(path.join(local, `dir${i % FOLDERS}`, `file-${i}.txt`), `save ${op} of file ${i}\n`);
        saves++;
      }
      const now = performance.now();
      if (now >= nextProbe && !probing) {
        nextProbe = now + 1000;
        const name = `probe-${op}.txt`;
        const text = `probe at op ${op}\n`;
        fs.writeFileSync(path.join(local, 'probes', name), text);
        const t0 = performance.now();
        probing = waitFor(() => {
          try {
            return fs.readFileSync(path.join(dest, 'probes', name), 'utf8') === text;
          } catch {
            return false;
          }
        }, 10_000).then((ms) => {
          probes.push(ms === Infinity ? Infinity : performance.now() - t0);
          probing = undefined;
        });
      }
      if (now >= nextSample) {
        nextSample = now + 1000;
        rss.push(rssMb(pid));
      }
      await sleep(20);
    }
    await probing;
    fs.writeFileSync(path.join(local, 'last.txt'), 'the last write\n');
    const localNow = contents(local);
    const converge = await waitFor(() => differ(localNow, contents(dest)) === 0, 10_000);
    const third = Math.max(1, Math.floor(rss.length / 3));
    const early = percentile(rss.slice(0, third), 50);
    const late = percentile(rss.slice(-third), 50);
    const growth = (late - early) / early;
    const report = {
      seconds: SECONDS,
      files: FILES,
      saves,
      folderChurns: churns,
      probes: probes.length,
      probesLost: probes.filter((p) => p === Infinity).length,
      probeP50Ms: Math.round(percentile(probes, 50)),
      probeP99Ms: Math.round(percentile(probes, 99)),
      probeMaxMs: Math.round(Math.max(...probes)),
      finalConvergeMs: Number.isFinite(converge) ? Math.round(converge) : 'never (10 s)',
      rssEarlyMb: Math.round(early),
      rssLateMb: Math.round(late),
      rssMaxMb: Math.round(Math.max(...rss)),
      rssGrowthPct: Math.round(growth * 1000) / 10,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
    const problems: string[] = [];
    if (report.probesLost > 0) problems.push(`${report.probesLost} of ${probes.length} probes never reached the remote (10 s each)`);
    else if (!(report.probeMaxMs <= 1000)) problems.push(`a probe took ${report.probeMaxMs} ms (over 1 s)`);
    if (!(converge <= 1000)) problems.push(`the trees were equal ${Number.isFinite(converge) ? `${Math.round(converge)} ms` : 'never (10 s)'} after the last write (over 1 s)`);
    if (growth > 0.25) problems.push(`resident memory grew ${report.rssGrowthPct} % (${report.rssEarlyMb} -> ${report.rssLateMb} MB)`);
    if (problems.length > 0) {
      failed = true;
      process.stderr.write(`soak: FAILED: ${problems.join('; ')}\n`);
    } else process.stderr.write('soak: passed\n');
  } finally {
    child?.kill('SIGTERM');
    await sshd.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`soak: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
