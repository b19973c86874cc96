// The `local` provider: a lexical embedder that needs no model and no network. It hashes word
// unigrams, word bigrams and character 3- to 5-grams of each word into a fixed number of
// dimensions (signed feature hashing, L2-normalised). Texts that share words, phrases or word
// pieces (typos, inflections) get a high cosine similarity; synonyms and paraphrases with
// different words do not. It is honest retrieval by overlapping wording, not by meaning.
//
// A token sequence gets the same treatment with token ids for words: ids, id bigrams and id
// trigrams, hashed from prefixes of their own. Without the client's tokenizer the ids cannot be
// read back as text, so a token sequence and a text live in different feature spaces: the tokens
// of "photosynthesis" are not close to the text "photosynthesis". Compare like with like.

import { estimateTokens } from '../tokens-estimate.ts';
import type { EmbeddingInput, EmbedResult, EmbeddingsProvider } from './provider.ts';

/** Bumped whenever a text or a token sequence would get a different vector, so that old cache entries are not served. */
const ALGORITHM = 'lexical-v1';

/**
 * Relative weights of the three feature kinds. Character n-grams are many per word: their weight
 * is low so that they tolerate spelling variants without drowning whole-word matches.
 */
const WEIGHT = { word: 1, bigram: 0.8, charGram: 0.25 } as const;
const MIN_GRAM = 3;
const MAX_GRAM = 5;
/**
 * Weights of token-id n-grams, by length. A subword tokenizer splits words into pieces, so id
 * bigrams and trigrams stand for words and short phrases, as word bigrams do for text.
 */
const TOKEN_GRAM_WEIGHTS = [1, 0.8, 0.5] as const;

const WORD = /[\p{L}\p{N}]+/gu;

// FNV-1a over UTF-16 code units, then murmur3's finaliser (FNV's low bits alone mix poorly).
// Split in steps so that character n-grams are hashed in place, without building their strings.
const FNV_OFFSET = 0x811c9dc5;

function fnvAdd(h: number, code: number): number {
  return Math.imul(h ^ code, 0x01000193);
}

function fnvText(h: number, text: string): number {
  for (let i = 0; i < text.length; i += 1) h = fnvAdd(h, text.charCodeAt(i));
  return h;
}

function finalise(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Each feature kind hashes from its own prefix, so a word and an equal n-gram do not collide. */
const WORD_SEED = fnvText(FNV_OFFSET, 'w\u0000');
const BIGRAM_SEED = fnvText(FNV_OFFSET, 'b\u0000');
const CHAR_SEED = fnvText(FNV_OFFSET, 'c\u0000');
const TOKEN_GRAM_SEEDS = TOKEN_GRAM_WEIGHTS.map((_, i) => fnvText(FNV_OFFSET, `t${i + 1}\u0000`));

/** Token ids are safe integers, up to 53 bits: hashed as their low and high 32-bit halves. */
function fnvTokenId(h: number, id: number): number {
  return fnvAdd(fnvAdd(h, id >>> 0), Math.floor(id / 2 ** 32));
}

function wordsOf(text: string): string[] {
  const words = text.normalize('NFKC').toLowerCase().match(WORD) ?? [];
  // Punctuation-only or blank text still deserves a vector of its own.
  return words.length > 0 ? words : [text.trim() === '' ? ' ' : text.trim()];
}

export class LocalEmbedder implements EmbeddingsProvider {
  readonly model: string;
  readonly dimensions: number;
  readonly cacheNamespace: string;

  constructor(model: string, dimensions: number) {
    this.model = model;
    this.dimensions = dimensions;
    this.cacheNamespace = `${model}:${dimensions}:${ALGORITHM}`;
  }

  async embed(inputs: readonly EmbeddingInput[]): Promise<EmbedResult> {
    return {
      vectors: inputs.map((input) => this.embedOne(input)),
      promptTokens: inputs.reduce((sum, input) => sum + estimateTokens(input), 0),
    };
  }

  embedOne(input: EmbeddingInput): Float32Array {
    const sums = new Float64Array(this.dimensions);
    const add = (h: number, weight: number) => {
      const index = h % this.dimensions;
      // The sign comes from bits the index did not use, so collisions cancel out on average.
      const sign = Math.floor(h / this.dimensions) % 2 === 0 ? 1 : -1;
      sums[index]! += sign * weight;
    };
    if (typeof input === 'string') addTextFeatures(input, add);
    else addTokenFeatures(input, add);
    return normalise(sums);
  }
}

function addTextFeatures(text: string, add: (hash: number, weight: number) => void): void {
  const words = wordsOf(text);
  words.forEach((word, i) => {
    add(finalise(fnvText(WORD_SEED, word)), WEIGHT.word);
    if (i > 0) add(finalise(fnvText(BIGRAM_SEED, `${words[i - 1]} ${word}`)), WEIGHT.bigram);
    addCharGrams(`<${word}>`, (h) => add(h, WEIGHT.charGram));
  });
}

function addTokenFeatures(ids: readonly number[], add: (hash: number, weight: number) => void): void {
  TOKEN_GRAM_WEIGHTS.forEach((weight, n) => {
    for (let start = 0; start + n < ids.length; start += 1) {
      let h = TOKEN_GRAM_SEEDS[n]!;
      for (let i = start; i <= start + n; i += 1) h = fnvTokenId(h, ids[i]!);
      add(finalise(h), weight);
    }
  });
}

/** Hashes of every 3-, 4- and 5-gram of UTF-16 code units (astral characters count as two; harmless for hashing). */
function addCharGrams(padded: string, add: (hash: number) => void): void {
  for (let start = 0; start + MIN_GRAM <= padded.length; start += 1) {
    let h = CHAR_SEED;
    for (let size = 1; size <= MAX_GRAM && start + size <= padded.length; size += 1) {
      h = fnvAdd(h, padded.charCodeAt(start + size - 1));
      if (size >= MIN_GRAM) add(finalise(h));
    }
  }
}

function normalise(sums: Float64Array): Float32Array {
  let squares = 0;
  for (const value of sums) squares += value * value;
  const vector = new Float32Array(sums.length);
  if (squares === 0) {
    vector[0] = 1; // every feature cancelled out: still a unit vector
    return vector;
  }
  const norm = Math.sqrt(squares);
  for (let i = 0; i < sums.length; i += 1) vector[i] = sums[i]! / norm;
  return vector;
}
