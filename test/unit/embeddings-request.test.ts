import { describe, expect, it } from 'vitest';
import { inputCount, parseEmbeddingsRequest } from '../../shared/embeddings/request.ts';
import { HttpProblem } from '../../shared/problem.ts';

const accepted = { model: 'local-hash-384', dimensions: 384 };

function problemOf(body: unknown): HttpProblem {
  try {
    parseEmbeddingsRequest(body, accepted);
  } catch (error) {
    if (error instanceof HttpProblem) return error;
    throw error;
  }
  throw new Error('the body was accepted');
}

describe('the POST /embeddings body', () => {
  it('accepts one string as a batch of one, float encoded by default', () => {
    expect(parseEmbeddingsRequest({ input: 'hello' }, accepted)).toEqual({ texts: ['hello'], encoding: 'float' });
  });

  it('accepts 256 strings, the configured model and dimensions, base64, a user, and ignores unknown fields', () => {
    const input = Array.from({ length: 256 }, (_, i) => `text ${i}`);

    const request = parseEmbeddingsRequest(
      { input, model: 'local-hash-384', dimensions: 384, encoding_format: 'base64', user: 'u-1', extra: true },
      accepted,
    );

    expect(request).toEqual({ texts: input, encoding: 'base64' });
  });

  it('accepts 8192 characters, counting an emoji as one', () => {
    expect(() => parseEmbeddingsRequest({ input: ['a'.repeat(8192), '🧮'.repeat(8192)] }, accepted)).not.toThrow();
  });

  it.each([
    ['no body', undefined, '(body)'],
    ['an array body', ['hello'], '(body)'],
    ['no input', {}, 'input'],
    ['an empty string', { input: '' }, 'input'],
    ['an empty array', { input: [] }, 'input'],
    ['257 inputs', { input: Array.from({ length: 257 }, () => 'x') }, 'input'],
    ['an empty string in the batch', { input: ['ok', ''] }, 'input.1'],
    ['a number in the batch', { input: ['ok', 7] }, 'input.1'],
    ['8193 characters', { input: ['a'.repeat(8193)] }, 'input.0'],
    ['an object as input', { input: { text: 'x' } }, 'input'],
    ['another model', { input: 'x', model: 'text-embedding-3-large' }, 'model'],
    ['other dimensions', { input: 'x', dimensions: 1536 }, 'dimensions'],
    ['an unknown encoding', { input: 'x', encoding_format: 'int8' }, 'encoding_format'],
    ['a user that is not a string', { input: 'x', user: 42 }, 'user'],
  ])('refuses %s with a 400 naming the field', (_, body, path) => {
    const problem = problemOf(body);

    expect(problem.status).toBe(400);
    expect(problem.errors?.map((error) => error.path)).toContain(path);
  });

  it.each([
    ['one token array', { input: [1917, 3290] }],
    ['a batch of token arrays', { input: [[1917], [3290, 11]] }],
    ['a single token', { input: 1917 }],
  ])('refuses %s, saying that token arrays are not supported', (_, body) => {
    expect(problemOf(body).errors?.[0]?.message).toMatch(/token arrays are not supported/);
  });

  it('lists at most 20 errors for a batch of 256 bad inputs', () => {
    expect(problemOf({ input: Array.from({ length: 256 }, () => '') }).errors).toHaveLength(20);
  });

  it('costs the rate limiter one unit an input, and 1 for anything that is not a valid batch', () => {
    expect(inputCount({ input: ['a', 'b', 'c'] })).toBe(3);
    expect(inputCount({ input: 'a' })).toBe(1);
    expect(inputCount({ input: [] })).toBe(1);
    expect(inputCount({ input: Array.from({ length: 100_000 }, () => 'x') })).toBe(1);
    expect(inputCount('garbage')).toBe(1);
    expect(inputCount(undefined)).toBe(1);
  });
});
