// Vectors as bytes: float32, little-endian, 4 bytes a dimension. The one encoding used for the
// Redis cache values, the base64 `embedding` of the OpenAI wire format (both directions) and the
// benchmark, so that a vector goes from upstream to Redis to the client without changing a bit.

import { endianness } from 'node:os';
import { SHORTEST_FLOAT32_WASM } from './shortest-float32.wasm.ts';

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

/** The decimal of `digits` significant digits after `nearest` (one of that length), away from zero. */
function nextDecimalAwayFromZero(nearest: number, digits: number): number {
  const [mantissa, exponent] = Math.abs(nearest).toExponential(digits - 1).split('e');
  return Number(`${nearest < 0 ? '-' : ''}${Number(mantissa!.replace('.', '')) + 1}e${Number(exponent) - (digits - 1)}`);
}

/** The shortest decimal of a float32 by `toPrecision` and a parse, from one digit up: for what the kernel leaves. */
function shortestFloat32ByStrings(value: number): number {
  for (let digits = 1; digits < 9; digits += 1) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
    // A power of two is closer to the float32 below it than to the one above, so more decimals
    // above it read back than below: when the nearest decimal (below) does not, the next one up
    // may (2^-96 is 1.2621775e-29, not 1.26217745e-29).
    if (Math.abs(candidate) < Math.abs(value)) {
      const above = nextDecimalAwayFromZero(candidate, digits);
      if (Math.fround(above) === value) return above;
    }
  }
  return Number(value.toPrecision(9));
}

/** The part of the WebAssembly API used here (the project's es2023 libs leave it out; the DOM's declare it). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: object };
}

interface ShortestFloat32Kernel {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  /** Writes an f64 at OUT for each of the COUNT float32 at IN; returns how many are NaN (undecided). */
  shortestFloat32s(inOffset: number, outOffset: number, count: number): number;
}

/** Where the vector goes in the module's memory: after its table of powers of ten (23 f64). */
const INPUT_OFFSET = 256;
const WASM_PAGE_BYTES = 65_536;

let kernel: ShortestFloat32Kernel | undefined;

/** Compiled on first use (about 0.3 ms): a function that never answers in floats never pays it. */
function shortestFloat32Kernel(): ShortestFloat32Kernel {
  if (kernel === undefined) {
    const { Module, Instance } = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
    kernel = new Instance(new Module(Buffer.from(SHORTEST_FLOAT32_WASM, 'base64'))).exports as ShortestFloat32Kernel;
  }
  return kernel;
}

/**
 * The most bytes one value of `vectorToNumbers` takes in a JSON array, its comma included, for
 * magnitudes under 1e9: `-0.0000010000001,`. Only between 1e-6 and 1e-5 does JSON print five
 * zeros before the digits, and there no float32 needs more than eight (every one was tried);
 * smaller values take an exponent (`-1.00000075e-36`), larger ones fewer zeros.
 */
export const MOST_JSON_BYTES_A_FLOAT = 17;

/**
 * The vector as plain numbers for the `float` encoding of a JSON response, each the shortest
 * decimal that reads back as the same float32 (at most 9 significant digits, where
 * printing the float32 as a double would take up to 17): JSON vectors a third of the size, and
 * `Math.fround(parsed)` gives the cached float exactly.
 *
 * Tries 6, 7, 8 then 9 significant digits (for a normal float32, which carries 7.2 digits, a
 * decimal of fewer digits that reads back is also the 6-digit one). A try is arithmetic, not
 * `toPrecision` and a parse: with m = round(|value| · 10^k), `m / 10^k` is the double nearest the
 * decimal m·10⁻ᵏ, since m and 10^k are exact doubles and division rounds correctly. That
 * arithmetic runs in WebAssembly (shortest-float32.wat), a whole vector a call; in its range no
 * power of two needs the decimal above the nearest, as on the string route (a test checks every
 * one). Magnitudes outside [1e-13, 1e6), where 10^k would pass 10^22 and stop being exact,
 * subnormals, which carry fewer digits, and values that are not finite take the string route
 * here, from one digit up.
 */
export function vectorToNumbers(vector: Float32Array): number[] {
  const { memory, shortestFloat32s } = shortestFloat32Kernel();
  const outputOffset = INPUT_OFFSET + Math.ceil((vector.length * 4) / 8) * 8;
  const bytesNeeded = outputOffset + vector.length * 8;
  if (memory.buffer.byteLength < bytesNeeded) memory.grow(Math.ceil((bytesNeeded - memory.buffer.byteLength) / WASM_PAGE_BYTES));

  new Float32Array(memory.buffer, INPUT_OFFSET, vector.length).set(vector);
  const undecided = shortestFloat32s(INPUT_OFFSET, outputOffset, vector.length);
  const shortest = new Float64Array(memory.buffer, outputOffset, vector.length);
  // A plain loop: as fast as Array.from or slice on a cold start, and twenty times faster once optimised.
  const numbers = new Array<number>(vector.length);
  for (let i = 0; i < numbers.length; i += 1) numbers[i] = shortest[i]!;
  if (undecided > 0) {
    for (let i = 0; i < numbers.length; i += 1) {
      if (Number.isNaN(numbers[i])) numbers[i] = shortestFloat32ByStrings(vector[i]!);
    }
  }
  return numbers;
}
