/**
 * The remote listing read as it arrives (remote-scan.ts ListingParser): whatever the chunking, the
 * result is the one a single read of the whole output gives, with a login shell's text before the
 * marker, names that are not UTF-8, the runner's leftovers, links, fractions of seconds, ignores.
 */
import { buildIgnore } from '../sync/engine/ignore';
import { fieldsAfterMarker, ListingMarkerError, ListingParser, parseRemoteScan, RemoteListing } from '../sync/engine/remote-scan';
import { Entry } from '../sync/engine/tree';

const MARKER = 'KUBEDEV-LISTING-0123456789abcdef';

function rec(y: string, size: number, mtime: string, mode: string, rel: string | Buffer, target = ''): Buffer {
  return Buffer.concat([Buffer.from(`${y}\0${size}\0${mtime}\0${mode}\0`), Buffer.from(rel), Buffer.from(`\0${target}\0`)]);
}

const OUTPUT = Buffer.concat([
  Buffer.from('Welcome! (a chatty .bashrc)\n'),
  Buffer.from(`${MARKER}\0`),
  rec('d', 4096, '1700000000.0000000000', '755', 'src'),
  rec('f', 12, '1700000000.0000000000', '644', 'src/a.ts'),
  rec('f', 7, '1700000001.5000000000', '600', 'src/ünï ☃.ts'),
  rec('l', 5, '1700000002.0000000000', '777', 'src/link', 'a.ts'),
  rec('f', 3, '1700000003.0000000000', '644', Buffer.concat([Buffer.from('bad-'), Buffer.from([0xff]), Buffer.from('.txt')])),
  rec('d', 4096, '1700000000.0000000000', '700', '.kubedev-stage-1'),
  rec('f', 1, '1700000000.0000000000', '644', 'src/.kubedev-tmp-2'),
  rec('d', 4096, '1700000000.0000000000', '755', 'build'),
  rec('f', 9, '1700000000.0000000000', '644', 'build/out.o'),
  rec('f', 9, '1700000000.0000000000', '644', 'with\nnewline'),
]);

function plain(l: RemoteListing): { tree: Record<string, Entry>; leftovers: string[]; foreign: string[] } {
  const tree: Record<string, Entry> = {};
  for (const [k, v] of l.tree.entries()) tree[k] = { ...v };
  return { tree, leftovers: l.leftovers, foreign: l.foreign };
}

// No .kubedevignore there: the defaults and the flag only.
const ig = buildIgnore('/nonexistent/kubedev-listing-parser', ['build/']);

test('every way of cutting the output into two or three chunks reads the same listing as one read', () => {
  const whole = plain(parseRemoteScan(OUTPUT, ig, MARKER));
  expect(Object.keys(whole.tree).sort()).toEqual(['src', 'src/a.ts', 'src/link', 'src/ünï ☃.ts', 'with\nnewline']);
  expect(whole.tree['src/ünï ☃.ts'].mtimeMs).toBe(1_700_000_001_000.5);
  expect(whole.tree['src/link'].target).toBe('a.ts');
  expect(whole.leftovers.sort()).toEqual(['.kubedev-stage-1', 'src/.kubedev-tmp-2']);
  expect(whole.foreign).toEqual(['bad-\uFFFD.txt']);
  for (let i = 0; i <= OUTPUT.length; i++) {
    const p = new ListingParser(ig, MARKER, '/ws');
    p.push(OUTPUT.subarray(0, i));
    p.push(OUTPUT.subarray(i));
    expect(plain(p.end())).toEqual(whole);
  }
  for (let i = 0; i <= OUTPUT.length; i += 17) {
    for (let j = i; j <= OUTPUT.length; j += 13) {
      const p = new ListingParser(ig, MARKER, '/ws');
      for (const part of [OUTPUT.subarray(0, i), OUTPUT.subarray(i, j), OUTPUT.subarray(j)]) p.push(part);
      expect(plain(p.end())).toEqual(whole);
    }
  }
});

test('one byte at a time, and output without the marker is an error at the end', () => {
  const p = new ListingParser(ig, MARKER, '/ws');
  for (let i = 0; i < OUTPUT.length; i++) p.push(OUTPUT.subarray(i, i + 1));
  expect(plain(p.end())).toEqual(plain(parseRemoteScan(OUTPUT, ig, MARKER)));
  const none = new ListingParser(ig, MARKER, '/ws');
  none.push(Buffer.from('motd only\n'));
  expect(() => none.end()).toThrow(
    new Error(
      'the listing of remote folder \'/ws\' did not start with its marker (got 10 bytes: "motd only\\n"). The command did not run as sent: ' +
        "the SSH user's login shell is not a POSIX shell (nologin, a restricted or menu shell), or a shell start file (~/.bashrc, ~/.profile, /etc/profile) " +
        'printed this and exited or ran something else. Give the user /bin/sh or bash as its login shell, and make its start files print nothing and ' +
        'return early for non-interactive sessions (for example `case $- in *i*) ;; *) return ;; esac` first in ~/.bashrc)',
    ),
  );
});

test('without the marker, what came instead is shown escaped and capped; nothing at all is said too', () => {
  const odd = Buffer.concat([Buffer.from('This account is not available.\r\n\t\\'), Buffer.from([0, 0xff, 0x1b]), Buffer.alloc(300, 'x')]);
  const e = new ListingParser(ig, MARKER, '/ws');
  e.push(odd);
  expect(() => e.end()).toThrow(`(got ${odd.length} bytes: "This account is not available.\\r\\n\\t\\\\\\0\\xff\\x1b${'x'.repeat(120 - 37)}...").`);
  expect(() => fieldsAfterMarker(odd, MARKER, '/ws')).toThrow(ListingMarkerError);
  const empty = new ListingParser(ig, MARKER, '/ws');
  expect(() => empty.end()).toThrow("the listing of remote folder '/ws' did not start with its marker (got 0 bytes). The command did not run as sent");
});

test('the physical root printed before the marker is read as bytes, in any chunking; a leading // is made /; a missing or relative one is undefined', () => {
  const tagged = (p: Buffer | string, before = 'Welcome!\n'): Buffer => Buffer.concat([Buffer.from(before), Buffer.from(`${MARKER}-ROOT\0`), Buffer.from(p), Buffer.from(`\0${MARKER}\0`), rec('f', 1, '1700000000.0', '644', 'a')]);
  const read = (out: Buffer, at?: number): string | undefined => {
    const p = new ListingParser(ig, MARKER, '/ws');
    if (at === undefined) p.push(out);
    else {
      p.push(out.subarray(0, at));
      p.push(out.subarray(at));
    }
    return p.end().physicalRoot?.toString('latin1');
  };
  const out = tagged('/data/ws ünï');
  for (let at = 0; at <= out.length; at++) expect(read(out, at)).toBe(Buffer.from('/data/ws ünï').toString('latin1'));
  expect(read(tagged('/data/ws', `${MARKER}-ROOT\0/forged\0`))).toBe('/data/ws'); // the last tag counts
  expect(read(tagged(Buffer.from([0x2f, 0xff])))).toBe('/\xff'); // not UTF-8: kept as bytes
  expect(read(tagged('//data/ws'))).toBe('/data/ws'); // bash's $PWD after cd -P through a link to //data/ws
  expect(read(tagged('///data'))).toBe('///data');
  expect(read(tagged('relative'))).toBeUndefined();
  expect(read(OUTPUT)).toBeUndefined();
});
