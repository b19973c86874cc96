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

/**
 * The shortest decimal that reads back as the same float32 (at most 9 significant digits, where
 * printing the float32 as a double would take up to 17): JSON vectors a third of the size, and
 * `Math.fround(parsed)` gives the cached float exactly.
 */
export function shortestFloat32(value: number): number {
  for (let digits = 6; digits < 9; digits += 1) {
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
