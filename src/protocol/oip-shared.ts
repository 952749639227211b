/**
 * What both directions of the OIP codec share: the check that a tensor's bytes match its shape
 * and datatype (BYTES: length-prefixed elements), and IEEE 754 half-precision conversions.
 */
import { SkiffError, type ErrorCode } from '../errors.js';
import { ELEMENT_SIZE } from '../tensor/datatype.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Check that `t.data` holds exactly product(shape) elements of its datatype (for BYTES: that it
 * splits into that many length-prefixed elements with no bytes left over).
 */
export function checkTensorBytes(t: Tensor, code: ErrorCode, count = shapeCount(t, code)): void {
  const size = ELEMENT_SIZE[t.datatype];
  if (size > 0) {
    if (t.data.length !== count * size) {
      throw new SkiffError(code, `tensor "${t.name}": ${t.data.length} bytes, shape needs ${count * size} for ${t.datatype}`);
    }
    return;
  }
  const found = countBytesElements(t.data);
  if (found !== count) {
    throw new SkiffError(code, `tensor "${t.name}": BYTES data ${found < 0 ? 'is malformed' : `holds ${found} elements`}, shape needs ${count}`);
  }
}

function shapeCount(t: Tensor, code: ErrorCode): number {
  let n = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new SkiffError(code, `tensor "${t.name}": shape [${t.shape.join(',')}] is not valid`);
    n *= d;
  }
  return n;
}

/** Number of length-prefixed elements in BYTES wire data, or -1 if it does not split exactly. */
function countBytesElements(b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 0;
  let n = 0;
  while (off < b.length) {
    if (b.length - off < 4) return -1;
    const len = dv.getUint32(off, true);
    off += 4;
    if (len > b.length - off) return -1;
    off += len;
    n++;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// IEEE 754 half precision

/** Smallest magnitude that rounds to infinity as a float16 (65504 plus half an ulp). */
export const FP16_OVERFLOW = 65520;

const f64 = new Float64Array(1);
const f64Hi = new Uint32Array(f64.buffer, 4, 1);

/** The float16 bit pattern nearest to `x` (round to nearest, ties to even; overflow gives infinity). */
export function fp16FromNumber(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || (x === 0 && 1 / x < 0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= FP16_OVERFLOW) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (or rounds up to the smallest normal)
  f64[0] = a;
  const e = (f64Hi[0]! >>> 20) - 1023; // -14..15 here
  const m = (a / 2 ** e - 1) * 1024; // exact: a / 2^e is in [1, 2)
  return sign | (((e + 15) << 10) + roundHalfEven(m)); // a mantissa carry bumps the exponent, as it should
}

function roundHalfEven(m: number): number {
  const f = Math.floor(m);
  const d = m - f;
  return d > 0.5 || (d === 0.5 && (f & 1) === 1) ? f + 1 : f;
}

/** The value of a float16 bit pattern. */
export function fp16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (1024 + m) * 2 ** (e - 25);
}
