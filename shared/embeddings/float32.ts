// Vectors as bytes: float32, little-endian, 4 bytes a dimension. The one encoding used for the
// Redis cache values, the base64 `embedding` of the OpenAI wire format (both directions) and the
// benchmark, so that a vector goes from upstream to Redis to the client without changing a bit.

import { endianness } from 'node:os';

const NATIVE_LITTLE_ENDIAN = endianness() === 'LE';

/** The vector's bytes, float32 little-endian (a copy). */
export function vectorToBytes(vector: Float32Array): Buffer {
  if (NATIVE_LITTLE_ENDIAN) return Buffer.from(vector.buffer.slice(vector.byteOffset, vector.byteOffset + vector.byteLength));
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i += 1) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes;
}

/** The vector held by float32 little-endian bytes; undefined when the length is not a whole number of floats. */
export function bytesToVector(bytes: Uint8Array): Float32Array | undefined {
  if (bytes.byteLength % 4 !== 0) return undefined;
  // Copied: a Buffer from a socket is a slice of a pooled buffer, rarely 4-byte aligned.
  const copy = new Uint8Array(bytes);
  if (NATIVE_LITTLE_ENDIAN) return new Float32Array(copy.buffer);
  const view = new DataView(copy.buffer);
  const vector = new Float32Array(copy.byteLength / 4);
  for (let i = 0; i < vector.length; i += 1) vector[i] = view.getFloat32(i * 4, true);
  return vector;
}

export function vectorToBase64(vector: Float32Array): string {
  return vectorToBytes(vector).toString('base64');
}

export function base64ToVector(text: string): Float32Array | undefined {
  return bytesToVector(Buffer.from(text, 'base64'));
}

/** 10^0 … 10^22: the powers of ten a double holds exactly. */
const POWERS_OF_TEN = Array.from({ length: 23 }, (_, power) => 10 ** power);

/**
 * The shortest decimal that reads back as the same float32 (at most 9 significant digits, where
 * printing the float32 as a double would take up to 17): JSON vectors a third of the size, and
 * `Math.fround(parsed)` gives the cached float exactly.
 *
 * Tries 6, 7, 8 then 9 significant digits (for a normal float32, which carries 7.2 digits, a
 * decimal of fewer digits that reads back is also the 6-digit one). A try is arithmetic, not
 * `toPrecision` and a parse: with m = round(|value| · 10^k), `m / 10^k` is the double nearest the
 * decimal m·10⁻ᵏ, since m and 10^k are exact doubles and division rounds correctly. A vector
 * response does this for every dimension, which made it the costliest step of a cached answer.
 * Magnitudes outside [1e-13, 1e6), where 10^k would pass 10^22 and stop being exact, and
 * subnormals, which carry fewer digits, take the string route from one digit up.
 */
export function shortestFloat32(value: number): number {
  const magnitude = Math.abs(value);
  if (magnitude >= 1e-13 && magnitude < 1e6) {
    const exponent = Math.floor(Math.log10(magnitude));
    for (let digits = 6; digits <= 9; digits += 1) {
      const scale = POWERS_OF_TEN[digits - 1 - exponent]!;
      // Halves round away from zero, as toPrecision does (Math.round alone rounds them up).
      const scaled = Math.round(magnitude * scale);
      const candidate = (value < 0 ? -scaled : scaled) / scale;
      if (Math.fround(candidate) === value) return candidate;
    }
  }
  return shortestFloat32ByStrings(value);
}

function shortestFloat32ByStrings(value: number): number {
  for (let digits = 1; digits < 9; digits += 1) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return Number(value.toPrecision(9));
}

/** The vector as plain numbers for the `float` encoding of a JSON response. */
export function vectorToNumbers(vector: Float32Array): number[] {
  const numbers = new Array<number>(vector.length);
  for (let i = 0; i < vector.length; i += 1) numbers[i] = shortestFloat32(vector[i]!);
  return numbers;
}
