// Float32 vectors as JSON numbers and as bytes: each value printed as the shortest decimal that
// reads back bit for bit (checked against an exhaustive search), and bytes kept unchanged.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { bytesToVector, MOST_JSON_BYTES_A_FLOAT, vectorToBytes, vectorToNumbers } from '../../shared/embeddings/float32.ts';

/** The decimal of `digits` significant digits next to `nearest` (a decimal of that length), on the value's other side. */
function decimalOnTheOtherSide(value: number, nearest: number, digits: number): number {
  const [mantissa, exponent] = Math.abs(nearest).toExponential(digits - 1).split('e');
  const step = Math.abs(nearest) < Math.abs(value) ? 1 : -1;
  return Number(`${value < 0 ? '-' : ''}${Number(mantissa!.replace('.', '')) + step}e${Number(exponent) - (digits - 1)}`);
}

/**
 * The reference: for 1 … 9 significant digits, the nearest decimal, else the next one on the
 * value's other side; the first that reads back as the float32. Where the float32 below is closer
 * than the one above (a power of two), a decimal above can read back while the nearer one below
 * does not; decimals further out on the nearest one's side never read back.
 */
function shortestByExhaustiveSearch(value: number): number {
  if (value === 0) return 0;
  for (let digits = 1; digits <= 9; digits += 1) {
    const nearest = Number(value.toPrecision(digits));
    if (Math.fround(nearest) === value) return nearest;
    const other = decimalOnTheOtherSide(value, nearest, digits);
    if (Math.fround(other) === value) return other;
  }
  throw new Error(`no decimal of at most 9 digits reads back as ${value}`);
}

/** Each value as a float32, printed as a response prints it. */
function printed(values: number[]): number[] {
  return vectorToNumbers(Float32Array.from(values));
}

/** Every 4,093rd positive float32 bit pattern and its negative: all exponents, subnormals included. */
function float32Sweep(): number[] {
  const float = new Float32Array(1);
  const bits = new Uint32Array(float.buffer);
  const values: number[] = [];
  for (let pattern = 1; pattern < 0x7f800000; pattern += 4093) {
    bits[0] = pattern;
    values.push(float[0]!, -float[0]!);
  }
  return values;
}

describe('float32 vectors as JSON numbers', () => {
  it('prints every float32 as the shortest decimal that reads back as it', () => {
    const values = float32Sweep();

    const shortest = printed(values);
    const mismatches = values.filter((value, i) => !Object.is(shortest[i], shortestByExhaustiveSearch(value)));

    expect(values.length).toBeGreaterThan(1_000_000);
    expect(mismatches.slice(0, 5)).toEqual([]);
  });

  it('reads back bit for bit, in a third less JSON than the floats printed as doubles', () => {
    const vector = Float32Array.from({ length: 1536 }, (_, i) => Math.sin(i * 12.9898) * 0.05);

    const json = JSON.stringify(vectorToNumbers(vector));

    expect(Float32Array.from(JSON.parse(json) as number[])).toEqual(vector);
    expect(json.length).toBeLessThan((JSON.stringify(Array.from(vector)).length * 2) / 3);
  });

  it('prints every float32 from 1e-6 to 1e-5, the longest decimals, in at most MOST_JSON_BYTES_A_FLOAT bytes with sign and comma', () => {
    const [first, last] = new Uint32Array(Float32Array.from([1e-6, 1e-5]).buffer);
    const batch = new Uint32Array(1 << 20);
    let longest = 0;

    for (let start = first!; start < last!; start += batch.length) {
      const count = Math.min(batch.length, last! - start);
      for (let i = 0; i < count; i += 1) batch[i] = start + i;
      const numbers = vectorToNumbers(new Float32Array(batch.buffer, 0, count));
      for (let i = 0; i < count; i += 1) longest = Math.max(longest, `-${JSON.stringify(numbers[i])},`.length);
    }

    expect(longest).toBe(MOST_JSON_BYTES_A_FLOAT);
  });

  it('prints no value under 1e9 in more than MOST_JSON_BYTES_A_FLOAT bytes, where fewer zeros or an exponent come before the digits', () => {
    const underABillion = fc.float({ noNaN: true, noDefaultInfinity: true, min: Math.fround(-999_999_940), max: Math.fround(999_999_940) });
    const longestOutside = Float32Array.from([-1.00000075e-36, -0.000099999998, -123456790, -0.00000012345678]);

    fc.assert(
      fc.property(fc.array(underABillion, { minLength: 1, maxLength: 64 }), (values) => {
        const vector = Float32Array.from(values);
        expect(JSON.stringify(vectorToNumbers(vector)).length - 1).toBeLessThanOrEqual(vector.length * MOST_JSON_BYTES_A_FLOAT);
      }),
    );
    for (const value of vectorToNumbers(longestOutside)) expect(`${JSON.stringify(value)},`.length).toBeLessThanOrEqual(MOST_JSON_BYTES_A_FLOAT);
  });

  it('keeps zero, the extremes and the powers of ten exact', () => {
    const values = [0, 1, -1, 10, 0.1, 1e-7, 3.4028234663852886e38, 1.401298464324817e-45, 1e6, 999999.9375];

    const shortest = printed(values);

    expect(shortest).toEqual([0, 1, -1, 10, 0.1, 1e-7, 3.4028235e38, 1e-45, 1e6, 999999.94]);
  });

  it('prints the float32 neighbours of every power of ten as the exhaustive search does, where the decimal exponent changes', () => {
    const float = new Float32Array(1);
    const bits = new Uint32Array(float.buffer);
    const values: number[] = [];
    for (let power = -14; power <= 7; power += 1) {
      float[0] = 10 ** power;
      const nearest = bits[0]!;
      for (let step = -3; step <= 3; step += 1) {
        bits[0] = nearest + step;
        values.push(float[0]!, -float[0]!);
      }
    }

    const shortest = printed(values);

    expect(values.filter((value, i) => !Object.is(shortest[i], shortestByExhaustiveSearch(value)))).toEqual([]);
  });

  it('prints every power of two as the shortest decimal that reads back, though it may lie further above than the nearest below', () => {
    const values = Array.from({ length: 277 }, (_, i) => 2 ** (i - 149)).flatMap((value) => [value, -value]);

    const shortest = printed(values);

    expect(shortest.slice(values.indexOf(2 ** -96), values.indexOf(2 ** -96) + 2)).toEqual([1.2621775e-29, -1.2621775e-29]);
    expect(values.filter((value, i) => !Object.is(shortest[i], shortestByExhaustiveSearch(value)))).toEqual([]);
  });

  it('prints negative zero as 0, as JSON would, and leaves what is not a number to JSON (null)', () => {
    const shortest = printed([-0, Number.NaN, Number.POSITIVE_INFINITY]);

    expect(JSON.stringify(shortest)).toBe('[0,null,null]');
  });

  it('keeps the bytes of a vector through the binary form', () => {
    const vector = Float32Array.from([0.25, -1.5, 3.4028234663852886e38, 1.401298464324817e-45]);

    expect(bytesToVector(vectorToBytes(vector))).toEqual(vector);
  });
});
