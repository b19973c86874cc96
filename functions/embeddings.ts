// POST /embeddings, OpenAI-compatible: a client of the OpenAI embeddings API (the official SDKs,
// LangChain, LlamaIndex) pointed at this base URL, with a session token as its API key, gets
// vectors from the cache, or from the configured provider for the inputs not cached yet. Whatever
// model the client names, the configured one embeds, and the answer says so. A request's
// Cache-Control no-cache skips the cache read, no-store its write (cache/request-directives.ts).
//
//   openAiErrorMember → httpBasics → authenticate → cache prefetch (validate, send the read) → rate limit → embeddings
//
// The prefetch sends the cache read while the rate-limit script is in flight, so a cached answer
// waits for two round trips (the session, then the limit with the read), as the chat's does. Only
// a small read is sent ahead: a request the limit refuses has its read thrown away, and a flood of
// refused batches must not make Redis send megabytes for nothing.

import middy, { type MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { authenticate, type AuthenticatedEvent } from '#shared/auth/middleware.ts';
import { cacheDirectivesOf } from '#shared/cache/request-directives.ts';
import { config } from '#shared/config.ts';
import { embeddingsProvider } from '#shared/embeddings/configured-provider.ts';
import { MOST_JSON_BYTES_A_FLOAT, vectorToBase64, vectorToNumbers } from '#shared/embeddings/float32.ts';
import { openAiErrorMember } from '#shared/embeddings/openai-error.ts';
import type { EmbeddingsProvider } from '#shared/embeddings/provider.ts';
import { parseEmbeddingsRequest, type EmbeddingsRequest, type EncodingFormat } from '#shared/embeddings/request.ts';
import { embedWithCache, lookUpCached, type CacheLookup, type EmbedOutcome } from '#shared/embeddings/service.ts';
import { httpBasics, jsonText, withRequestLogging, type HttpResult } from '#shared/http.ts';
import type { EmbeddingOwner } from '#shared/keys.ts';
import { annotateRequest } from '#shared/logger.ts';
import { HttpProblem } from '#shared/problem.ts';
import { rateLimit } from '#shared/rate-limit/middleware.ts';
import { requestSlot } from '#shared/request-slot.ts';
import { countCacheRequests } from '#shared/telemetry/metrics.ts';
import { countUsageInBackground } from '#shared/usage/counters.ts';

/**
 * The largest answer body sent. Lambda refuses a result over 6 MiB and 100 bytes, which reaches
 * the client as an opaque 502; that counts the whole result as JSON (status, headers, the body
 * escaped as a string), to which the round 6,000,000 leaves about 290 KB.
 */
const MAX_ANSWER_BODY_BYTES = 6_000_000;
/** An entry's own fields (`{"object":"embedding","index":255,"embedding":…},`), generously. */
const MOST_BYTES_AN_ENTRY = 64;
/** The list's own fields (object, model, usage), generously. */
const MOST_BYTES_OF_THE_LIST = 1024;
/** Time kept back from the function's time-out to write the cache and answer after the provider. */
const ANSWER_MARGIN_MS = 1000;
/** The largest cache read sent before the rate limit has answered (vectors of 4 bytes a dimension). */
const PREFETCH_MAX_BYTES = 64 * 1024;

const validated = requestSlot<AuthenticatedEvent, EmbeddingsRequest>('embeddings request');
const prefetched = requestSlot<AuthenticatedEvent, CacheLookup>('embeddings cache prefetch');

/** The most vectors of `dimensions` an answer in `encoding` holds within Lambda's limit, whatever their values. */
function mostVectorsAnswered(dimensions: number, encoding: EncodingFormat): number {
  const vectorBytes = encoding === 'base64' ? 4 * Math.ceil((dimensions * 4) / 3) : dimensions * MOST_JSON_BYTES_A_FLOAT;
  return Math.floor((MAX_ANSWER_BODY_BYTES - MOST_BYTES_OF_THE_LIST) / (vectorBytes + MOST_BYTES_AN_ENTRY));
}

/**
 * Refuses, before the rate limit spends anything and the provider is called, a batch whose answer
 * could pass Lambda's 6 MB: many inputs of many dimensions as JSON numbers (3072 dimensions fit
 * 114 vectors), or of 8192 dimensions even in base64.
 */
function refuseAnswerTooLarge(request: EmbeddingsRequest, dimensions: number): void {
  const most = mostVectorsAnswered(dimensions, request.encoding);
  if (request.inputs.length <= most) return;
  const inBase64 = Math.min(request.inputs.length, mostVectorsAnswered(dimensions, 'base64'));
  const otherwise = request.encoding === 'float' && inBase64 > most ? `, or encoding_format "base64" (at most ${inBase64})` : '';
  throw new HttpProblem(413, 'response-too-large', {
    detail: `An answer of ${request.inputs.length} vectors of ${dimensions} dimensions in ${request.encoding} could exceed the 6 MB response limit: send at most ${most} inputs a request${otherwise}.`,
  });
}

/** The validated request (parsed once per request); throws its 400 problem, or its 413 when its answer could not be sent. */
function requestOf(event: AuthenticatedEvent, provider: EmbeddingsProvider): EmbeddingsRequest {
  let request = validated.get(event);
  if (request === undefined) {
    request = parseEmbeddingsRequest(event.jsonBody, provider);
    refuseAnswerTooLarge(request, provider.dimensions);
    validated.set(event, request);
  }
  return request;
}

/**
 * Whose cache a request reads and fills: its user's by default, so that a hit never tells one
 * user what another has embedded; everyone's when EMBEDDINGS_CACHE_SCOPE is `global`.
 */
function cacheOwner(event: AuthenticatedEvent): EmbeddingOwner {
  return config().embeddings.cacheScope === 'global' ? 'everyone' : { userId: event.user.id };
}

/** Sends the cache read of a small, valid request before the rate limit; the handler reads it. */
function cachePrefetch(): MiddlewareObj<AuthenticatedEvent, HttpResult> {
  return {
    name: 'embeddingsCachePrefetch',
    before: ({ event }) => {
      const provider = embeddingsProvider();
      let request: EmbeddingsRequest;
      try {
        request = requestOf(event, provider);
      } catch {
        return; // answered by the handler, after the rate limit, with the rate-limit headers
      }
      if (request.inputs.length * provider.dimensions * 4 > PREFETCH_MAX_BYTES || cacheDirectivesOf(event).fresh) return;
      // With other requests in flight, it leaves with their commands and the turn's rate-limit run.
      prefetched.set(event, lookUpCached(request.inputs, provider, cacheOwner(event), { sharingWrites: true }));
    },
  };
}

function deadline(context: Context): AbortSignal {
  const remaining = context?.getRemainingTimeInMillis?.() ?? config().embeddings.timeoutMs;
  return AbortSignal.timeout(Math.max(100, remaining - ANSWER_MARGIN_MS));
}

function encode(vector: Float32Array, encoding: EncodingFormat): string | number[] {
  return encoding === 'base64' ? vectorToBase64(vector) : vectorToNumbers(vector);
}

/** The `usage` member of an OpenAI embeddings answer. */
interface OpenAiUsage {
  prompt_tokens: number;
  total_tokens: number;
}

/**
 * The one place where a request's usage is final, once its answer is: the tokens the provider
 * counted for its misses (as for the chat, what came from the cache cost the user none) and its
 * cache hits out of its inputs. Usage counters for GET /usage (and cache metrics) are written here.
 * Inputs of a request that asked for fresh vectors are bypasses, as the chat counts its own.
 */
function countUsage(event: AuthenticatedEvent, outcome: EmbedOutcome, inputs: number, fresh: boolean): void {
  countUsageInBackground({
    userId: event.user.id,
    route: 'POST /embeddings',
    requests: 1,
    inputTokens: outcome.providerTokens,
    cacheHits: outcome.hits,
  });
  countCacheRequests('embeddings', 'hit', outcome.hits);
  countCacheRequests('embeddings', fresh ? 'bypass' : 'miss', inputs - outcome.hits);
  annotateRequest({ cache: `${outcome.hits}/${inputs}` });
}

async function embeddings(event: AuthenticatedEvent, context: Context): Promise<HttpResult> {
  const provider = embeddingsProvider();
  const request = requestOf(event, provider);
  const { fresh, noStore } = cacheDirectivesOf(event);
  const lookup = prefetched.get(event) ?? lookUpCached(request.inputs, provider, cacheOwner(event), { fresh });
  const outcome = await embedWithCache(lookup, { signal: deadline(context), ttlSeconds: config().cacheTtlSeconds, noStore });

  const usage: OpenAiUsage = { prompt_tokens: outcome.promptTokens, total_tokens: outcome.promptTokens };

  const body = JSON.stringify({
    object: 'list',
    model: lookup.provider.model,
    data: outcome.vectors.map((vector, index) => ({ object: 'embedding', index, embedding: encode(vector, request.encoding) })),
    usage,
  });
  // The provider has been paid for what it embedded, and its vectors are cached, whatever comes next.
  countUsage(event, outcome, request.inputs.length, fresh);
  if (Buffer.byteLength(body) > MAX_ANSWER_BODY_BYTES) {
    // Only components of a billion or more print longer than MOST_JSON_BYTES_A_FLOAT (embeddings are unit vectors).
    throw new HttpProblem(502, 'embeddings-upstream-error', { detail: 'The embeddings provider sent vectors too large to answer with.' });
  }
  return jsonText(200, body, { 'X-Cache-Hits': `${outcome.hits}/${request.inputs.length}` });
}

export const handler = withRequestLogging(
  'POST /embeddings',
  middy<AuthenticatedEvent, HttpResult>()
    // Before httpBasics, so that its onError runs after the problem response is built.
    .use(openAiErrorMember())
    .use(httpBasics({ deferBodyProblems: true }))
    .use(authenticate())
    .use(cachePrefetch())
    // Cost: one unit an input; an invalid request spends nothing (its 400 comes from the handler).
    .use(
      rateLimit({
        bucket: 'embeddings',
        limit: () => config().rateLimits.embeddings,
        cost: (event) => requestOf(event as AuthenticatedEvent, embeddingsProvider()).inputs.length,
      }),
    )
    .handler(embeddings),
);
