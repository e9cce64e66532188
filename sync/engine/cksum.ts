/**
 * POSIX `cksum` (CRC-32, polynomial 0x04C11DB7, most significant bit first, the length appended), the
 * one checksum every coreutils computes fast (carry-less multiply: 1.5-2 GB/s). The runner computes the
 * same values locally, so a block or a whole file can be compared with what `cksum` prints remotely.
 *
 * `crcUpdate` continues a raw register (no length, no complement) over more bytes; `crcCombine` joins
 * the raw registers of two adjacent pieces without reading them again; `cksumOf` finishes a register as
 * `cksum` prints it, and `crcOfCksum` undoes that (what `cksum` printed for a piece becomes its raw
 * register, to be combined). Slicing by 16 bytes: about 1.2 GB/s in V8 on a quiet machine.
 */

const POLY = 0x04c11db7;
const SLICES = 16;

/** TABLE[k * 256 + b]: the register contribution of byte b followed by k zero bytes. */
const TABLE = ((): Int32Array => {
  const t = new Int32Array(256 * SLICES);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let j = 0; j < 8; j++) c = c & 0x80000000 ? (c << 1) ^ POLY : c << 1;
    t[i] = c;
  }
  for (let k = 1; k < SLICES; k++) {
    for (let i = 0; i < 256; i++) {
      const prev = t[(k - 1) * 256 + i];
      t[k * 256 + i] = (prev << 8) ^ t[(prev >>> 24) & 255];
    }
  }
  return t;
})();

/** Continues the raw register `crc` over `b`. */
export function crcUpdate(crc: number, b: Uint8Array): number {
  const t = TABLE;
  const n = b.length;
  const end = n - (n & 15);
  let i = 0;
  while (i < end) {
    const a = crc ^ ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
    crc =
      t[3840 + (a >>> 24)] ^ t[3584 + ((a >>> 16) & 255)] ^ t[3328 + ((a >>> 8) & 255)] ^ t[3072 + (a & 255)] ^
      t[2816 + b[i + 4]] ^ t[2560 + b[i + 5]] ^ t[2304 + b[i + 6]] ^ t[2048 + b[i + 7]] ^
      t[1792 + b[i + 8]] ^ t[1536 + b[i + 9]] ^ t[1280 + b[i + 10]] ^ t[1024 + b[i + 11]] ^
      t[768 + b[i + 12]] ^ t[512 + b[i + 13]] ^ t[256 + b[i + 14]] ^ t[b[i + 15]];
    i += 16;
  }
  for (; i < n; i++) crc = (crc << 8) ^ t[((crc >>> 24) ^ b[i]) & 255];
  return crc;
}

/** a * b mod POLY (polynomials over GF(2), bit i the coefficient of x^i). */
function mulMod(a: number, b: number): number {
  let r = 0;
  for (let i = 31; i >= 0; i--) {
    r = r & 0x80000000 ? (r << 1) ^ POLY : r << 1;
    if ((b >>> i) & 1) r ^= a;
  }
  return r;
}

/** x^(8 * bytes) mod POLY: what a register becomes multiplied by when `bytes` more bytes follow. */
export function shiftFor(bytes: number): number {
  let result = 1;
  let base = 1 << 8; // x^8
  for (let n = bytes; n > 0; n = Math.floor(n / 2)) {
    if (n % 2 === 1) result = mulMod(result, base);
    base = mulMod(base, base);
  }
  return result;
}

/** The raw register of A followed by B, from A's and B's registers and B's length (or its shiftFor). */
export function crcCombine(crcA: number, crcB: number, shiftB: number): number {
  return mulMod(crcA, shiftB) ^ crcB;
}

/** INVERSE[T[i] & 255] = i: a table entry's low byte names it (the polynomial has the x^0 term). */
const INVERSE = ((): Uint8Array => {
  const inv = new Uint8Array(256);
  for (let i = 0; i < 256; i++) inv[TABLE[i] & 255] = i;
  return inv;
})();

/** The length's bytes as `cksum` appends them: least significant first, as many as it needs. */
function lengthBytes(length: number): number[] {
  const out: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) out.push(n % 256);
  return out;
}

/** The raw register of `length` bytes whose `cksum` is `value`: cksumOf undone (complement, then each length byte backwards). */
export function crcOfCksum(value: number, length: number): number {
  let c = ~value;
  for (const b of lengthBytes(length).reverse()) {
    // c was (p << 8) ^ TABLE[i] with i = (p >>> 24) ^ b: its low byte is TABLE[i]'s, and names i.
    const i = INVERSE[c & 255];
    c = (((i ^ b) << 24) | ((c ^ TABLE[i]) >>> 8)) | 0;
  }
  return c;
}

/** Finishes a raw register over `length` bytes as `cksum` prints it (the length appended, complemented). */
export function cksumOf(crc: number, length: number): number {
  let c = crc;
  for (const b of lengthBytes(length)) c = (c << 8) ^ TABLE[((c >>> 24) ^ b) & 255];
  return ~c >>> 0;
}
