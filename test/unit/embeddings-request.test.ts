// The POST /embeddings body: texts and token arrays accepted up to every bound of the contract,
// any model name, and 400 problems naming the field, at most 20 errors each.

import { describe, expect, it } from 'vitest';
import { parseEmbeddingsRequest } from '../../shared/embeddings/request.ts';
import { HttpProblem } from '../../shared/problem.ts';

const accepted = { dimensions: 384 };

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
    expect(parseEmbeddingsRequest({ input: 'hello' }, accepted)).toEqual({ inputs: ['hello'], encoding: 'float' });
  });

  it('accepts 256 strings, the configured dimensions, base64, a user, and ignores unknown fields', () => {
    const input = Array.from({ length: 256 }, (_, i) => `text ${i}`);

    const request = parseEmbeddingsRequest(
      { input, model: 'local-hash-384', dimensions: 384, encoding_format: 'base64', user: 'u-1', extra: true },
      accepted,
    );

    expect(request).toEqual({ inputs: input, encoding: 'base64' });
  });

  it.each(['text-embedding-3-small', 'text-embedding-ada-002', 'local-hash-384', 'anything at all'])(
    'accepts the model name %s, whatever the configured model',
    (model) => {
      expect(parseEmbeddingsRequest({ input: 'x', model }, accepted).inputs).toEqual(['x']);
    },
  );

  it('accepts one array of token ids as one input', () => {
    expect(parseEmbeddingsRequest({ input: [1917, 3290, 0] }, accepted).inputs).toEqual([[1917, 3290, 0]]);
  });

  it('accepts an array of token-id arrays as one input each', () => {
    expect(parseEmbeddingsRequest({ input: [[1917], [3290, 11]] }, accepted).inputs).toEqual([[1917], [3290, 11]]);
  });

  it('accepts 256 token arrays of 8192 ids each, up to the largest safe integer', () => {
    const longest = Array.from({ length: 8192 }, (_, i) => (i === 0 ? Number.MAX_SAFE_INTEGER : i));
    const input = Array.from({ length: 256 }, () => longest);

    const request = parseEmbeddingsRequest({ input }, accepted);

    expect(request.inputs).toEqual(input);
  });

  it('accepts one token array longer than 256 ids (the input limit counts arrays, not ids)', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => i);

    expect(parseEmbeddingsRequest({ input: ids }, accepted).inputs).toEqual([ids]);
  });

  it('accepts 8192 characters, counting an emoji as one', () => {
    const input = ['a'.repeat(8192), '🧮'.repeat(8192)];

    expect(parseEmbeddingsRequest({ input }, accepted).inputs).toEqual(input);
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
    ['a single number as input', { input: 1917 }, 'input'],
    ['a model that is not a string', { input: 'x', model: 42 }, 'model'],
    ['an empty model name', { input: 'x', model: '' }, 'model'],
    ['an empty token array', { input: [[1], []] }, 'input.1'],
    ['8193 tokens in one array', { input: Array.from({ length: 8193 }, () => 1) }, 'input'],
    ['8193 tokens in a batch', { input: [[1], Array.from({ length: 8193 }, () => 1)] }, 'input.1'],
    ['257 token arrays', { input: Array.from({ length: 257 }, () => [1]) }, 'input'],
    ['a negative token id', { input: [5, -1] }, 'input.1'],
    ['a fractional token id in a batch', { input: [[5], [6, 1.5]] }, 'input.1.1'],
    ['a token id beyond the safe integers', { input: [[2 ** 53]] }, 'input.0.0'],
    ['a token array that is not an array in a batch', { input: [[5], 6] }, 'input.1'],
    ['other dimensions', { input: 'x', dimensions: 1536 }, 'dimensions'],
    ['an unknown encoding', { input: 'x', encoding_format: 'int8' }, 'encoding_format'],
    ['a user that is not a string', { input: 'x', user: 42 }, 'user'],
  ])('refuses %s with a 400 naming the field', (_, body, path) => {
    const problem = problemOf(body);

    expect(problem.status).toBe(400);
    expect(problem.errors?.map((error) => error.path)).toContain(path);
  });

  it.each([
    ['a token array among texts', { input: ['text', [1917]] }, 'input.1'],
    ['a text among token arrays', { input: [[1917], 'text'] }, 'input.1'],
    ['a text among token ids', { input: [1917, 'text'] }, 'input.1'],
  ])('refuses %s, saying that text and token arrays cannot be mixed', (_, body, path) => {
    expect(problemOf(body).errors).toEqual([{ path, message: expect.stringMatching(/cannot be mixed/) }]);
  });

  it('lists at most 20 errors for a token array of 8192 bad ids', () => {
    expect(problemOf({ input: [Array.from({ length: 8192 }, () => -1)] }).errors).toHaveLength(20);
  });

  it('lists at most 20 errors for a batch of 256 bad inputs', () => {
    expect(problemOf({ input: Array.from({ length: 256 }, () => '') }).errors).toHaveLength(20);
  });
});
