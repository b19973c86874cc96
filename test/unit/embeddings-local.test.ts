// The local lexical embedder: deterministic unit vectors, similarity by shared words, n-grams and
// word order rather than meaning, token-id inputs kept apart from text, and its token estimates.

import { describe, expect, it } from 'vitest';
import { LocalEmbedder } from '../../shared/embeddings/local.ts';

const embedder = new LocalEmbedder('local-hash-384', 384);
const cosine = (a: Float32Array, b: Float32Array) => a.reduce((sum, value, i) => sum + value * b[i]!, 0);
const similarity = (a: string | number[], b: string | number[]) => cosine(embedder.embedOne(a), embedder.embedOne(b));

describe('the local lexical embedder', () => {
  it('gives the same vector for the same text, every time', async () => {
    const first = await embedder.embed(['How do fractions work?']);
    const second = await new LocalEmbedder('local-hash-384', 384).embed(['How do fractions work?']);

    expect(Array.from(second.vectors[0]!)).toEqual(Array.from(first.vectors[0]!));
  });

  it('gives unit vectors of the configured dimension', async () => {
    const wide = new LocalEmbedder('local-hash-768', 768);

    const { vectors } = await wide.embed(['a short sentence', 'x'.repeat(8192), '!!!', '   ', '数学の宿題 🧮']);

    expect(vectors).toHaveLength(5);
    for (const vector of vectors) {
      expect(vector).toHaveLength(768);
      expect(Math.hypot(...vector)).toBeCloseTo(1, 5);
    }
  });

  it('scores texts that share wording higher than unrelated texts', () => {
    const question = 'How do I compute the derivative of x squared?';

    const related = similarity(question, 'What is the derivative of x squared?');
    const unrelated = similarity(question, 'The French Revolution began in 1789.');

    expect(related).toBeGreaterThan(0.4);
    expect(unrelated).toBeLessThan(0.2);
    expect(related).toBeGreaterThan(unrelated + 0.3);
  });

  it('scores a misspelling close to the right spelling, through character n-grams', () => {
    const misspelt = similarity('photosynthesis in plant cells', 'photosyntesis in plant cels');
    const unrelated = similarity('photosynthesis in plant cells', 'stock market prices fell');

    expect(misspelt).toBeGreaterThan(unrelated + 0.3);
  });

  it('is lexical: a paraphrase in other words scores low (documented limitation)', () => {
    expect(similarity('the car is fast', 'an automobile moving quickly')).toBeLessThan(0.3);
  });

  it('distinguishes word order through bigrams', () => {
    expect(similarity('dog bites man', 'man bites dog')).toBeLessThan(0.9);
  });

  it('estimates a quarter of a token a character', async () => {
    const { promptTokens } = await embedder.embed(['abcd', 'abcde']);

    expect(promptTokens).toBe(1 + 2);
  });

  it('gives the same unit vector for the same token ids, every time', async () => {
    const ids = [791, 32013, 315, 865, 53363, 30];

    const first = await embedder.embed([ids]);
    const second = await new LocalEmbedder('local-hash-384', 384).embed([ids]);

    expect(Array.from(second.vectors[0]!)).toEqual(Array.from(first.vectors[0]!));
    expect(Math.hypot(...first.vectors[0]!)).toBeCloseTo(1, 5);
  });

  it('scores token sequences that share ids and id runs higher than unrelated ones', () => {
    const question = [4438, 656, 358, 12849, 279, 32905, 315, 865, 53363, 30];

    const related = similarity(question, [3923, 374, 279, 32905, 315, 865, 53363, 30]);
    const unrelated = similarity(question, [791, 8753, 22910, 6137, 304, 220, 11128, 24, 13]);

    expect(related).toBeGreaterThan(0.4);
    expect(unrelated).toBeLessThan(0.2);
  });

  it('distinguishes the order of token ids through id bigrams', () => {
    expect(similarity([11, 22, 33], [33, 22, 11])).toBeLessThan(0.9);
  });

  it('keeps token ids and text apart: ids written out as text are not close to the ids (documented)', () => {
    expect(similarity([1917, 3290], '1917 3290')).toBeLessThan(0.2);
  });

  it('tells large token ids apart by their high bits', () => {
    expect(similarity([2 ** 40 + 7], [7])).toBeLessThan(0.2);
  });

  it('counts a token sequence as its number of ids', async () => {
    const { promptTokens } = await embedder.embed([[1, 2, 3], [4]]);

    expect(promptTokens).toBe(3 + 1);
  });
});
