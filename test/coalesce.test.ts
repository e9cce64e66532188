/**
 * Coalesce (sync/engine/coalesce.ts): small writes are merged into chunks of about the size asked (one
 * SSH packet per write), a chunk of a full packet or more goes on as it is, and nothing is reordered,
 * lost or counted twice.
 */
import { Readable } from 'node:stream';
import { Coalesce, PASS_BYTES } from '../sync/engine/coalesce';

async function through(chunks: Buffer[], size: number): Promise<{ out: Buffer[]; counted: number }> {
  let counted = 0;
  const c = Readable.from(chunks).pipe(new Coalesce(size, (n) => (counted += n)));
  // 'data' gives each chunk as pushed (async iteration reads whatever is buffered, joined).
  const out: Buffer[] = [];
  c.on('data', (b: Buffer) => out.push(b));
  await new Promise((resolve, reject) => c.on('end', resolve).on('error', reject));
  return { out, counted };
}

test('small writes are merged up to the size; a full-packet chunk passes as it is, after what was gathered; bytes and order kept', async () => {
  const small = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);
  const big = Buffer.alloc(PASS_BYTES, 9);
  const chunks = [small(512, 1), small(512, 2), small(600, 3), big, small(100, 4), small(2000, 5), small(10, 6)];
  const { out, counted } = await through(chunks, 1024);
  expect(out.map((b) => b.length)).toEqual([1024, 600, PASS_BYTES, 2100, 10]);
  expect(out[2]).toBe(big); // not copied
  expect(Buffer.concat(out).equals(Buffer.concat(chunks))).toBe(true);
  expect(counted).toBe(Buffer.concat(chunks).length);
});

test('the local tar\'s 64 KiB pipe reads go on one for one, never copied', async () => {
  const chunks = Array.from({ length: 8 }, (_, i) => Buffer.alloc(64 * 1024, i));
  const { out } = await through(chunks, 256 * 1024);
  expect(out.length).toBe(8);
  out.forEach((b, i) => expect(b).toBe(chunks[i]));
});
