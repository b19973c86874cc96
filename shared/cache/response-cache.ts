// A response cache for JSON routes whose answer depends only on the request (and on who asks):
// the chat today, any costly, deterministic-enough route tomorrow. Identical requests within the
// TTL are answered from Redis; identical concurrent misses compute once (see single-flight.ts).
//
//   httpBasics → auth → cache.prefetch() → rate limit → cache.handler(compute)
//                        │ validate, key,               │ serve the read if it hit (X-Cache: HIT),
//                        │ start the GET (not awaited)  │ else single-flight: compute, store, MISS
//
// Why two parts: the GET is sent while the rate-limit script is in flight, so a warm cached
// request costs two round trips in all (auth, then rate limit + read together), and the answer is
// still served only once the rate limit has admitted the request. The prefetch is optional; the
// handler reads by itself when it did not run. Why the handler and not a middy `before` that
// returns early: middy skips every `after` on an early return, and with them the security
// and rate-limit headers that each response must carry.
//
// The key is a digest of the validated question (model, prompt version, messages, parameters)
// and of its owner: the user (default) or `*` for a route configured as global. Values are the
// answer as one compact JSON string, with a TTL. Errors are never stored, nor answers the route
// calls uncacheable (refusals); such an answer, or a failure of the computation, is only shared,
// for a few seconds, with the identical requests that were waiting for it (see single-flight.ts).
// A request's `Cache-Control` is honoured as request-directives.ts reads it: no-cache skips the
// read (the fresh answer is still stored), no-store keeps the answer out. Redis down: 503
// (from withRedis), or an uncached answer when configured.

import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import type { CacheScope } from '../config.ts';
import { json, type HttpEvent, type HttpResult } from '../http.ts';
import { digest, responseCacheKeys } from '../keys.ts';
import { annotateRequest, log } from '../logger.ts';
import { requestSlot } from '../request-slot.ts';
import type { CacheOutcome } from '../telemetry/metrics.ts';
import { cacheDirectivesOf } from './request-directives.ts';
import { readAnswerSharingWrites, singleFlight, type FlightOptions, type FlightOutcome } from './single-flight.ts';

export interface ResponseCacheOptions<E extends HttpEvent, Q, A> {
  /** Names the cache in keys and logs, e.g. `chat`. */
  name: string;
  /** The validated, normalised question (throws a 400 problem); its JSON is what the key digests. */
  question: (event: E) => Q;
  /** The user the answer belongs to under the `user` scope (the route has authenticated them). */
  owner: (event: E) => string;
  scope: () => CacheScope;
  ttlSeconds: () => number;
  /** The longest one computation may take (e.g. Claude's time-out). Waiters wait as long. */
  computeBudgetMs: () => number;
  /** With Redis down: answer uncached (X-Cache: BYPASS) instead of 503. */
  degradeWhenRedisDown: () => boolean;
  /** Answers that must not be stored (refusals). Errors never are. */
  isCacheable: (answer: A) => boolean;
  /** The response body for an answer and how it was obtained (e.g. adds `cached`). */
  present: (answer: A, outcome: CacheOutcome) => unknown;
  /** Called once per answered request, fresh or cached (usage counters, metrics). */
  onServed?: (event: E, answer: A, outcome: CacheOutcome) => void | Promise<void>;
}

/** Computes the answer of a miss; `deadline` (epoch ms) bounds it, retries included. */
export type Compute<Q, A> = (question: Q, budget: { deadline: number }) => Promise<A>;

export interface ResponseCache<E extends HttpEvent, Q, A> {
  prefetch(): MiddlewareObj<E, HttpResult>;
  /** Throws the request's 400 problem when its question is invalid (computed once per request). */
  validate(event: E): void;
  handler(compute: Compute<Q, A>): (event: E, context: Context) => Promise<HttpResult>;
}

interface Lookup<Q> {
  question: Q;
  keys: FlightOptions['keys'];
  /** Skip the read: the client asked for a fresh answer. */
  fresh: boolean;
  /** Store nothing computed for this request: the client asked for no copy to be kept. */
  noStore: boolean;
  read?: Promise<string | null>;
}

const CACHE_OUTCOME: Record<FlightOutcome, CacheOutcome> = {
  hit: 'hit',
  shared: 'hit',
  computed: 'miss',
  fresh: 'bypass',
  uncached: 'bypass',
};

/** The X-Cache header, also the request's `cache` log field. */
const X_CACHE: Record<CacheOutcome, string> = { hit: 'HIT', miss: 'MISS', bypass: 'BYPASS' };

/** Room left for the response after a computation, within the Lambda's own time-out. */
const RESPONSE_MARGIN_MS = 500;
/** The lock outlives the computation by this much, so the holder can still store and release it. */
const LOCK_MARGIN_MS = 1_000;

export function responseCache<E extends HttpEvent, Q, A>(options: ResponseCacheOptions<E, Q, A>): ResponseCache<E, Q, A> {
  const lookups = requestSlot<E, Lookup<Q>>(`${options.name} cache lookup`);

  /** Each request's question and keys, computed once whether or not the prefetch ran. */
  function lookupOf(event: E): Lookup<Q> {
    const known = lookups.get(event);
    if (known) return known;
    const question = options.question(event);
    const owner = options.scope() === 'global' ? '*' : options.owner(event);
    const keys = responseCacheKeys(options.name, digest(JSON.stringify([owner, question])));
    const lookup: Lookup<Q> = { question, keys, ...cacheDirectivesOf(event) };
    lookups.set(event, lookup);
    return lookup;
  }

  function prefetch(): MiddlewareObj<E, HttpResult> {
    return {
      name: `${options.name}CachePrefetch`,
      before: (request) => {
        let lookup: Lookup<Q>;
        try {
          lookup = lookupOf(request.event);
        } catch {
          // Bad input is answered by the handler, after the rate limit, whose headers its 400
          // carries (the limit spends nothing on it: see `validate`).
          return;
        }
        if (lookup.fresh) return;
        // With other requests in flight, it leaves with their commands and the turn's rate-limit
        // run in one write.
        lookup.read = readAnswerSharingWrites(lookup.keys.answer);
        // Consumed by the handler; a refused request (rate limit) leaves it unread.
        lookup.read.catch(() => {});
      },
    };
  }

  function handler(compute: Compute<Q, A>) {
    return async (event: E, context: Context): Promise<HttpResult> => {
      const lookup = lookupOf(event);
      const budgetMs = options.computeBudgetMs();
      const remainingMs = context?.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY;
      const requestEnd = Date.now() + remainingMs - RESPONSE_MARGIN_MS;
      let computed: A | undefined;

      const { value, outcome } = await singleFlight({
        keys: lookup.keys,
        ttlSeconds: options.ttlSeconds(),
        lockMs: budgetMs + LOCK_MARGIN_MS,
        // A waiter waits as long as the holder's lock lives, to hear even a holder that fails at
        // its deadline, but gives up in time to answer before the function's own time-out.
        waitMs: Math.max(0, Math.min(budgetMs + LOCK_MARGIN_MS, requestEnd - Date.now())),
        fresh: lookup.fresh,
        degradeWhenRedisDown: options.degradeWhenRedisDown(),
        ...(lookup.read === undefined ? {} : { read: lookup.read }),
        compute: async () => {
          const deadline = Math.min(Date.now() + budgetMs, requestEnd);
          computed = await compute(lookup.question, { deadline });
          return { value: JSON.stringify(computed), keep: lookup.noStore ? 'nowhere' : options.isCacheable(computed) ? 'cache' : 'waiters' };
        },
      });

      const cacheOutcome = CACHE_OUTCOME[outcome];
      annotateRequest({ cache: X_CACHE[cacheOutcome] });
      const answer = computed ?? (JSON.parse(value) as A);
      const serving = served(event, answer, cacheOutcome);
      if (serving !== undefined) await serving;
      log.debug('response cache', { cache: options.name, outcome: cacheOutcome });
      return json(200, options.present(answer, cacheOutcome), { 'X-Cache': X_CACHE[cacheOutcome] });
    };
  }

  /** Runs onServed; a promise only when onServed returned one (then awaited), so a synchronous one costs no turn. */
  function served(event: E, answer: A, outcome: CacheOutcome): Promise<void> | undefined {
    const failed = (error: unknown) => {
      log.warn(`response cache ${options.name}: onServed failed`, { err: error });
    };
    try {
      const result = options.onServed?.(event, answer, outcome);
      return typeof (result as PromiseLike<void> | undefined)?.then === 'function' ? Promise.resolve(result).catch(failed) : undefined;
    } catch (error) {
      failed(error);
      return undefined;
    }
  }

  return { prefetch, validate: (event) => void lookupOf(event), handler };
}
