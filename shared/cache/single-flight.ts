// Single-flight for cached answers: identical concurrent misses compute once, in one container
// (a map of in-flight promises) and across containers (a Redis lock beside the answer key).
//
//   container A  GET answer: miss ─ answer-or-lock: locked ─ compute (Claude) ──── store + unlock (one script)
//   container B  GET answer: miss ─ answer-or-lock: busy ─ 25 ms ─ 50 ─ 100 ─ 200 ─ … ─ answer → served
//   A crashes    its lock expires after lockMs ─ B's next answer-or-lock takes it ─ B computes
//   B waited     waitMs without an answer: B computes without the lock (a slow holder never fails B)
//   A fails      (a 422/429/502/503/504 problem: Claude failed) ─ record the outcome + unlock (one script)
//   container B  … ─ answer-or-lock: outcome → B answers A's problem (same status, Retry-After)
//   A refused    (an answer not to be cached: a refusal) ─ record the outcome + unlock (one script)
//   container B  … ─ answer-or-lock: outcome → B serves A's answer
//   A throws     (any other error, e.g. a bug) nothing is recorded; A unlocks, a waiter takes over
//
// The lock is `SET lock token NX PX lockMs`; the holder deletes it only while it still holds
// the same token (compare-and-delete in the store script), so a holder that outlived its lock
// never deletes the next holder's. Answer, lock and outcome record share a hash tag: every
// script is one slot.
//
// Why the outcome record: without it each waiter, finding the lock free and no answer stored,
// would call Claude in turn, one after another, to hear the same 429 or 5xx (and the provider's
// own retry doubles each) or the same refusal. A failure is recorded as the problem our code
// built (status, type, title, fixed detail, Retry-After; never its cause, which holds Claude's
// text) and lives the Retry-After, at most OUTCOME_MAX_MS, else OUTCOME_MS; an answer not to be
// cached lives OUTCOME_MS. The record is never the answer key. Only a request that waited for the
// computation answers it: one arriving afterwards takes the lock (which clears the record) and
// asks Claude again, as after any failure.
//
// Waiters wait as long as the holder's lock lives (its compute budget plus a margin), so a
// holder that fails at its deadline is heard, not raced by waiters that give up at the same moment.

import { randomUUID } from 'node:crypto';
import { defineScript } from '../redis-script.ts';
import { log } from '../logger.ts';
import { HttpProblem, isRedisUnavailable } from '../problem.ts';
import { withRedis, type RedisClient } from '../redis.ts';
import { withRedisSharingWrites } from '../redis-writes.ts';

/** How the value was obtained: `hit` from Redis at once, `shared` from another request's computation,
 *  `computed` by this request, `fresh` computed without reading (no-cache), `uncached` with Redis down. */
export type FlightOutcome = 'hit' | 'shared' | 'computed' | 'fresh' | 'uncached';

/**
 * Where a computed value may be kept: `cache` for the TTL; `waiters` only for the identical
 * requests waiting for it (an answer not worth caching, such as a refusal); `nowhere` (the client
 * asked that nothing of its request be kept).
 */
export type Keep = 'cache' | 'waiters' | 'nowhere';

export interface Computed {
  /** The serialised value (compact JSON). */
  value: string;
  keep: Keep;
}

export interface FlightOptions {
  keys: { answer: string; lock: string; outcome: string };
  ttlSeconds: number;
  /** How long a holder may compute before its lock expires (its compute budget plus a margin). */
  lockMs: number;
  /** How long a waiter waits for another container's answer before computing itself (at most lockMs). */
  waitMs: number;
  /** Skip the read (Cache-Control: no-cache); the fresh value is still stored. */
  fresh?: boolean;
  /** With Redis down: compute without the cache instead of failing with the 503. */
  degradeWhenRedisDown?: boolean;
  /** The read of the answer key, when the caller started it earlier (to share another round trip). */
  read?: Promise<string | null>;
  compute: () => Promise<Computed>;
}

export interface FlightResult {
  value: string;
  outcome: FlightOutcome;
}

const FIRST_POLL_MS = 25;
const MAX_POLL_MS = 200;
/** An outcome record without Retry-After lives this long: several polls of every waiter (MAX_POLL_MS). */
const OUTCOME_MS = 1_000;
/** ... and never longer than this, whatever Claude's Retry-After: it is not a cache of errors. */
const OUTCOME_MAX_MS = 5_000;
/**
 * Claude's failures (our problems for them) and its refusal to read a conversation too long
 * (422): what every identical request would hear too. Bugs and Redis outages are not shared.
 */
const SHARED_FAILURE_STATUSES = new Set([422, 429, 502, 503, 504]);

/** What a waiter needs to answer the holder's problem: nothing secret, nothing of its cause. */
interface FailureRecord {
  status: number;
  /** The problem type's slug; with the status, it gives the same type and title. */
  slug: string;
  detail?: string;
  retryAfter?: string;
}

/** How the holder's computation ended, for the requests that waited for it. */
type OutcomeRecord = { problem: FailureRecord } | { answer: string };

// The answer if it is there; else, for a caller that has been waiting (ARGV[3] = '1'), the
// outcome record of the computation it waited for; else the lock, if nobody holds it, clearing
// an earlier holder's outcome record so that it is never mistaken for the new holder's.
// Returns the answer (a string), {record} (an outcome), 1 (this caller holds the lock now) or 0
// (someone else does).
const answerOrLock = defineScript(
  `local answer = redis.call('GET', KEYS[1])
if answer then return answer end
if ARGV[3] == '1' then
  local outcome = redis.call('GET', KEYS[3])
  if outcome then return {outcome} end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[3])
  return 1
end
return 0`,
);

// Stores the answer (unless ARGV[1] is empty: a failure, or an answer not to be cached); then,
// only if the lock still holds this caller's token, records the outcome for the waiters (unless
// ARGV[4] is empty) and deletes the lock. A holder that outlived its lock records nothing: the
// waiters now wait for another.
const storeAndUnlock = defineScript(
  `if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[3] then
  if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5]) end
  redis.call('DEL', KEYS[2])
end
return 1`,
);

/** In-process single flight: the computation of each answer key running in this container. */
const inFlight = new Map<string, Promise<FlightResult>>();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The value for `keys.answer`: read from Redis, waited for, or computed (once across containers). */
export async function singleFlight(options: FlightOptions): Promise<FlightResult> {
  try {
    if (options.fresh) return await computeFresh(options);
    const joined = join(options.keys.answer);
    if (joined) return await joined;
    // A hit costs exactly this one GET.
    const cached = await (options.read ?? readAnswer(options.keys.answer));
    if (cached !== null) return { value: cached, outcome: 'hit' };
    return await lead(options);
  } catch (error) {
    if (!(options.degradeWhenRedisDown && isRedisUnavailable(error))) throw error;
    log.warn('response cache skipped: Redis unavailable; answering uncached', { err: (error as Error).cause });
    return { value: (await options.compute()).value, outcome: 'uncached' };
  }
}

/** The cached value of an answer key, or null: one GET. */
function readAnswer(answerKey: string): Promise<string | null> {
  return withRedis((redis) => redis.get(answerKey));
}

/** `readAnswer`, in one write with the commands of other requests in flight (`withRedisSharingWrites`). */
export function readAnswerSharingWrites(answerKey: string): Promise<string | null> {
  return withRedisSharingWrites((redis) => redis.get(answerKey));
}

/** Waits for a computation of the same key already running in this container, if there is one. */
function join(answerKey: string): Promise<FlightResult> | undefined {
  const running = inFlight.get(answerKey);
  return running?.then(
    ({ value }) => ({ value, outcome: 'shared' as const }),
    (error: unknown) => {
      throw ownCopy(error);
    },
  );
}

/**
 * The leader's problem, as this request's own object: middleware further up adds headers to the
 * problem it receives (rate-limit state), which must not leak into another request's response.
 */
function ownCopy(error: unknown): unknown {
  if (!(error instanceof HttpProblem)) return error;
  const copy = Object.create(Object.getPrototypeOf(error) as object, Object.getOwnPropertyDescriptors(error)) as HttpProblem;
  Object.defineProperty(copy, 'headers', { value: { ...error.headers }, enumerable: true });
  return copy;
}

/** Registers this request as the container's computation of the key, so later identical requests join it. */
function lead(options: FlightOptions): Promise<FlightResult> {
  const joined = join(options.keys.answer); // another request may have started while our GET was out
  if (joined) return joined;
  const flight = acrossContainers(options).finally(() => inFlight.delete(options.keys.answer));
  inFlight.set(options.keys.answer, flight);
  return flight;
}

async function acrossContainers(options: FlightOptions): Promise<FlightResult> {
  const { keys, lockMs } = options;
  const token = randomUUID();
  const scriptKeys = [keys.answer, keys.lock, keys.outcome];
  let waiting = false;
  const tryOnce = () =>
    withRedis((redis) => answerOrLock(redis, scriptKeys, [token, lockMs, waiting ? '1' : '0'])) as Promise<string | [string] | number>;
  const waitUntil = Date.now() + options.waitMs;
  let pause = FIRST_POLL_MS;
  for (let state = await tryOnce(); ; state = await tryOnce()) {
    if (typeof state === 'string') return { value: state, outcome: 'shared' };
    if (Array.isArray(state)) return sharedOutcome(state[0]);
    if (state === 1) return computeAsHolder(options, token);
    waiting = true;
    if (Date.now() + pause > waitUntil) {
      log.warn('response cache: gave up waiting for another computation; computing here', { waitedMs: options.waitMs });
      return computeUnlocked(options);
    }
    await sleep(pause);
    pause = Math.min(pause * 2, MAX_POLL_MS);
  }
}

async function computeAsHolder(options: FlightOptions, token: string): Promise<FlightResult> {
  const { keys } = options;
  const scriptKeys = [keys.answer, keys.lock, keys.outcome];
  let computed: Computed;
  try {
    computed = await options.compute();
  } catch (error) {
    // Release at once: the waiters answer a recorded failure, or one takes over after a bug
    // instead of waiting for the lock to expire.
    const failure = failureRecordOf(error);
    const record = failure ? [JSON.stringify({ problem: failure.record } satisfies OutcomeRecord), failure.ttlMs] : ['', 0];
    await bestEffort('release the lock', (redis) => storeAndUnlock(redis, scriptKeys, ['', 0, token, ...record]));
    throw error;
  }
  const stored = computed.keep === 'cache' ? computed.value : '';
  const record = computed.keep === 'waiters' ? [JSON.stringify({ answer: computed.value } satisfies OutcomeRecord), OUTCOME_MS] : ['', 0];
  await bestEffort('store the answer', (redis) => storeAndUnlock(redis, scriptKeys, [stored, options.ttlSeconds, token, ...record]));
  return { value: computed.value, outcome: 'computed' };
}

/** The record of a failure worth sharing with the waiters, and how long it lives; undefined for any other error. */
function failureRecordOf(error: unknown): { record: FailureRecord; ttlMs: number } | undefined {
  if (!(error instanceof HttpProblem) || !SHARED_FAILURE_STATUSES.has(error.status) || isRedisUnavailable(error)) return undefined;
  const retryAfter = error.headers['Retry-After'];
  const record: FailureRecord = {
    status: error.status,
    slug: error.slug,
    ...(error.detail === undefined ? {} : { detail: error.detail }),
    ...(retryAfter === undefined ? {} : { retryAfter }),
  };
  const retryAfterMs = Number(retryAfter) * 1000;
  const ttlMs = Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? Math.min(retryAfterMs, OUTCOME_MAX_MS) : OUTCOME_MS;
  return { record, ttlMs };
}

/** What the holder this request waited for ended with: its answer, served, or its problem, thrown. */
function sharedOutcome(text: string): FlightResult {
  const record = JSON.parse(text) as OutcomeRecord;
  if ('answer' in record) return { value: record.answer, outcome: 'shared' };
  throw problemOf(record.problem);
}

/** The holder's problem, as this waiter answers it: the same status, type, detail and Retry-After. */
function problemOf(record: FailureRecord): HttpProblem {
  return new HttpProblem(record.status, record.slug, {
    ...(record.detail === undefined ? {} : { detail: record.detail }),
    ...(record.retryAfter === undefined ? {} : { headers: { 'Retry-After': record.retryAfter } }),
    cause: new Error('the concurrent identical request this one waited for failed'),
  });
}

async function computeUnlocked(options: FlightOptions): Promise<FlightResult> {
  const computed = await options.compute();
  if (computed.keep === 'cache') await bestEffort('store the answer', (redis) => redis.set(options.keys.answer, computed.value, 'EX', options.ttlSeconds));
  return { value: computed.value, outcome: 'computed' };
}

async function computeFresh(options: FlightOptions): Promise<FlightResult> {
  const { value } = await computeUnlocked(options);
  return { value, outcome: 'fresh' };
}

/** A write after the value exists: its failure is logged, never turned into an error for the client. */
async function bestEffort(what: string, write: (redis: RedisClient) => Promise<unknown>): Promise<void> {
  try {
    await withRedis(write);
  } catch (error) {
    log.warn(`response cache: could not ${what}`, { err: error instanceof HttpProblem ? error.cause : error });
  }
}
