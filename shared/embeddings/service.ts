// Embeddings through the cache: identical texts of a request are looked up and computed once,
// every lookup goes out in one round trip, only the misses reach the provider (in one call), and
// the misses are written back in one round trip before the answer leaves.
//
//   texts ─ distinct ─ read all keys (1 round trip) ─┬─ all hits ─────────────────────────┐
//                                                    └─ misses ─ provider (1 call) ─ write ─┴─ vectors in input order
//
// Nothing is written when the provider fails: the error propagates before the write.

import { config } from '../config.ts';
import { embeddingKey } from '../keys.ts';
import { log } from '../logger.ts';
import { withRedis } from '../redis.ts';
import { recordTokenUsage } from '../telemetry/metrics.ts';
import { readVectors, writeVectors } from './cache.ts';
import { estimateTokens, type EmbeddingsProvider } from './provider.ts';

export interface EmbedOutcome {
  /** One vector per input text, in input order. */
  vectors: Float32Array[];
  /** Inputs whose vector came from the cache (repeats of a cached text count, repeats of a miss do not). */
  hits: number;
  /**
   * Tokens of the request: the provider's count for the texts it embedded, an estimate
   * (characters / 4) for every other input (cache hits, repeats within the request).
   */
  promptTokens: number;
}

export interface EmbedWithCacheOptions {
  /** Aborts the provider call when the request's time is up. */
  signal?: AbortSignal;
  ttlSeconds?: number;
}

export async function embedWithCache(
  texts: string[],
  provider: EmbeddingsProvider,
  options: EmbedWithCacheOptions = {},
): Promise<EmbedOutcome> {
  const distinct = [...new Set(texts)];
  const keys = distinct.map((text) => embeddingKey(provider.cacheNamespace, text));
  const cached = await withRedis((redis) => readVectors(redis, keys, provider.dimensions));

  const vectorOf = new Map<string, Float32Array>();
  const missing: number[] = [];
  distinct.forEach((text, i) => {
    const vector = cached[i];
    if (vector === undefined) missing.push(i);
    else vectorOf.set(text, vector);
  });
  const hitTexts = new Set(vectorOf.keys());

  let providerTokens = 0;
  if (missing.length > 0) {
    const computed = await provider.embed(
      missing.map((i) => distinct[i]!),
      { signal: options.signal },
    );
    providerTokens = computed.promptTokens;
    recordTokenUsage({ operation: 'embeddings', provider: config().embeddings.provider, model: provider.model, inputTokens: providerTokens });
    missing.forEach((i, n) => vectorOf.set(distinct[i]!, computed.vectors[n]!));
    await storeMisses(
      missing.map((i, n) => ({ key: keys[i]!, vector: computed.vectors[n]! })),
      options.ttlSeconds ?? config().cacheTtlSeconds,
    );
  }

  const countedByProvider = new Set(missing.map((i) => distinct[i]!));
  let estimatedTokens = 0;
  let hits = 0;
  for (const text of texts) {
    if (hitTexts.has(text)) hits += 1;
    // The provider counted each missing text once; its repeats and the hits are estimated.
    if (countedByProvider.has(text)) countedByProvider.delete(text);
    else estimatedTokens += estimateTokens(text);
  }
  return { vectors: texts.map((text) => vectorOf.get(text)!), hits, promptTokens: providerTokens + estimatedTokens };
}

/** The vectors are computed and paid for: a failed write costs a future recomputation, not this answer. */
async function storeMisses(entries: Array<{ key: string; vector: Float32Array }>, ttlSeconds: number): Promise<void> {
  try {
    await withRedis((redis) => writeVectors(redis, entries, ttlSeconds));
  } catch (error) {
    log.warn('embedding cache write failed; answering without caching', { err: error, entries: entries.length });
  }
}
