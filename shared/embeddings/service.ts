// Embeddings through the cache: identical inputs of a request are looked up and computed once,
// every lookup goes out in one round trip, only the misses reach the provider (in one call), and
// the misses are written back in one round trip before the answer leaves.
//
//   inputs ─ distinct ─ read all keys (1 round trip) ─┬─ all hits ─────────────────────────┐
//                                                     └─ misses ─ provider (1 call) ─ write ─┴─ vectors in input order
//
// The read is started by lookUpCached and awaited by embedWithCache, so a route can send it before
// it needs it (POST /embeddings sends it with its rate-limit check). Nothing is written when the
// provider fails: the error propagates before the write. A request can skip the read or the
// write (the client's `Cache-Control`, see cache/request-directives.ts).

import { config } from '../config.ts';
import { embeddingKey, type EmbeddingOwner } from '../keys.ts';
import { log } from '../logger.ts';
import { withRedis } from '../redis.ts';
import { withRedisSharingWrites } from '../redis-writes.ts';
import { recordTokenUsage } from '../telemetry/metrics.ts';
import { estimateTokens } from '../tokens-estimate.ts';
import { readVectors, writeVectors } from './cache.ts';
import type { EmbeddingInput, EmbeddingsProvider } from './provider.ts';

export interface EmbedOutcome {
  /** One vector per input, in input order. */
  vectors: Float32Array[];
  /** Inputs whose vector came from the cache (repeats of a cached input count, repeats of a miss do not). */
  hits: number;
  /**
   * Tokens of the request: the provider's count for the inputs it embedded, an estimate for every
   * other input (cache hits, repeats within the request): a token sequence's length, a text's
   * characters / 4.
   */
  promptTokens: number;
  /** Tokens the provider counted for the inputs it embedded: 0 when every input came from the cache. */
  providerTokens: number;
}

export interface EmbedWithCacheOptions {
  /** Aborts the provider call when the request's time is up. */
  signal?: AbortSignal;
  ttlSeconds?: number;
  /** Write nothing back: the client asked that its inputs be kept nowhere (`Cache-Control: no-store`). */
  noStore?: boolean;
}

/**
 * A text and a token sequence never share a key, not even a text that spells the ids: a token
 * sequence is hashed as its ids joined by commas, under a namespace of its own. Text keys stay as
 * they were, so vectors cached before token sequences were accepted are still served.
 */
function cacheKey(namespace: string, input: EmbeddingInput, owner: EmbeddingOwner): string {
  return typeof input === 'string' ? embeddingKey(namespace, input, owner) : embeddingKey(`${namespace}:tokens`, input.join(','), owner);
}

/** A request's inputs, their cache keys and the read of their vectors, already sent. */
export interface CacheLookup {
  readonly inputs: readonly EmbeddingInput[];
  readonly provider: EmbeddingsProvider;
  /** Each input's key, in input order; equal keys are equal inputs. */
  readonly keys: readonly string[];
  /** Each distinct key's first input, in order of first appearance. */
  readonly inputOf: ReadonlyMap<string, EmbeddingInput>;
  /** The vectors of the distinct keys, in the order of `inputOf` (undefined: not cached). */
  readonly cached: Promise<Array<Float32Array | undefined>>;
}

/**
 * Sends the read of `owner`'s vectors of the inputs (one round trip) without waiting for it.
 * `sharingWrites`: in one write with the commands of other requests in flight (`withRedisSharingWrites`).
 * `fresh`: reads nothing, every input is a miss (the client asked for fresh vectors, `Cache-Control: no-cache`).
 */
export function lookUpCached(
  inputs: readonly EmbeddingInput[],
  provider: EmbeddingsProvider,
  owner: EmbeddingOwner,
  { sharingWrites = false, fresh = false } = {},
): CacheLookup {
  const keys = inputs.map((input) => cacheKey(provider.cacheNamespace, input, owner));
  const inputOf = new Map<string, EmbeddingInput>();
  keys.forEach((key, position) => {
    if (!inputOf.has(key)) inputOf.set(key, inputs[position]!);
  });
  const distinct = [...inputOf.keys()];
  const cached = fresh
    ? Promise.resolve(distinct.map(() => undefined))
    : (sharingWrites ? withRedisSharingWrites : withRedis)((redis) => readVectors(redis, distinct, provider.dimensions));
  // A lookup may be left unread (a request the rate limit refuses); embedWithCache still sees a failure.
  cached.catch(() => {});
  return { inputs, provider, keys, inputOf, cached };
}

export async function embedWithCache(lookup: CacheLookup, options: EmbedWithCacheOptions = {}): Promise<EmbedOutcome> {
  const { inputs, provider, keys, inputOf } = lookup;
  const distinct = [...inputOf.keys()];
  const cached = await lookup.cached;

  const vectorOf = new Map<string, Float32Array>();
  const missing: string[] = [];
  distinct.forEach((key, i) => {
    const vector = cached[i];
    if (vector === undefined) missing.push(key);
    else vectorOf.set(key, vector);
  });
  const hitKeys = new Set(vectorOf.keys());

  let providerTokens = 0;
  if (missing.length > 0) {
    const computed = await provider.embed(
      missing.map((key) => inputOf.get(key)!),
      { signal: options.signal },
    );
    providerTokens = computed.promptTokens;
    recordTokenUsage({ operation: 'embeddings', provider: config().embeddings.provider, model: provider.model, inputTokens: providerTokens });
    missing.forEach((key, n) => vectorOf.set(key, computed.vectors[n]!));
    if (!options.noStore) {
      await storeMisses(
        missing.map((key, n) => ({ key, vector: computed.vectors[n]! })),
        options.ttlSeconds ?? config().cacheTtlSeconds,
      );
    }
  }

  const countedByProvider = new Set(missing);
  let estimatedTokens = 0;
  let hits = 0;
  keys.forEach((key, position) => {
    if (hitKeys.has(key)) hits += 1;
    // The provider counted each missing input once; its repeats and the hits are estimated.
    if (countedByProvider.has(key)) countedByProvider.delete(key);
    else estimatedTokens += estimateTokens(inputs[position]!);
  });
  return { vectors: keys.map((key) => vectorOf.get(key)!), hits, promptTokens: providerTokens + estimatedTokens, providerTokens };
}

/** The vectors are computed and paid for: a failed write costs a future recomputation, not this answer. */
async function storeMisses(entries: Array<{ key: string; vector: Float32Array }>, ttlSeconds: number): Promise<void> {
  try {
    await withRedis((redis) => writeVectors(redis, entries, ttlSeconds));
  } catch (error) {
    log.warn('embedding cache write failed; answering without caching', { err: error, entries: entries.length });
  }
}
