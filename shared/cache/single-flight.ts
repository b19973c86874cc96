// Single-flight for cached answers: identical concurrent misses compute once, in one container
// (a map of in-flight promises) and across containers (a Redis lock beside the answer key).
//
//   container A  GET answer: miss ─ answer-or-lock: locked ─ compute (Claude) ──── store + unlock (one script)
//   container B  GET answer: miss ─ answer-or-lock: busy ─ 25 ms ─ 50 ─ 100 ─ 200 ─ … ─ answer → served
//   A crashes    its lock expires after lockMs ─ B's next answer-or-lock takes it ─ B computes
//   B waited     waitMs without an answer: B computes without the lock (a slow holder never fails B)
//   A fails      (Claude error, refusal) nothing is stored; A releases the lock, a waiter takes it over
//
// The lock is `SET lock token NX PX lockMs`; the holder deletes it only while it still holds
// the same token (compare-and-delete in the store script), so a holder that outlived its lock
// never deletes the next holder's. Answer and lock share a hash tag: every script is one slot.

import { randomUUID } from 'node:crypto';
import { defineScript } from '../redis-script.ts';
import { log } from '../logger.ts';
import { HttpProblem } from '../problem.ts';
import { withRedis, type RedisClient } from '../redis.ts';

/** How the value was obtained: `hit` from Redis at once, `shared` from another request's computation,
 *  `computed` by this request, `fresh` computed without reading (no-cache), `uncached` with Redis down. */
export type FlightOutcome = 'hit' | 'shared' | 'computed' | 'fresh' | 'uncached';

export interface Computed {
  /** The serialised value (compact JSON). */
  value: string;
  /** False for answers that must not be kept (refusals). */
  store: boolean;
}

export interface FlightOptions {
  keys: { answer: string; lock: string };
  ttlSeconds: number;
  /** How long a holder may compute before its lock expires (its compute budget plus a margin). */
  lockMs: number;
  /** How long a waiter waits for another container's answer before computing itself. */
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

// The answer if it is there; else the lock, if nobody holds it.
// Returns the answer (a string), 1 (this caller holds the lock now) or 0 (someone else does).
const answerOrLock = defineScript(
  `local answer = redis.call('GET', KEYS[1])
if answer then return answer end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`,
);

// Stores the answer (unless ARGV[1] is empty: a failure or a refusal) and deletes the lock only
// if it still holds this caller's token.
const storeAndUnlock = defineScript(
  `if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1`,
);

/** In-process single flight: the computation of each answer key running in this container. */
const inFlight = new Map<string, Promise<FlightResult>>();

export function isRedisDown(error: unknown): boolean {
  return error instanceof HttpProblem && error.status === 503 && error.type.endsWith('/redis-unavailable');
}

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
    if (!(options.degradeWhenRedisDown && isRedisDown(error))) throw error;
    log.warn('response cache skipped: Redis unavailable; answering uncached', { err: (error as Error).cause });
    return { value: (await options.compute()).value, outcome: 'uncached' };
  }
}

/** The cached value of an answer key, or null: one GET. */
export function readAnswer(answerKey: string): Promise<string | null> {
  return withRedis((redis) => redis.get(answerKey));
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
  const tryOnce = () => withRedis((redis) => answerOrLock(redis, [keys.answer, keys.lock], [token, lockMs])) as Promise<string | number>;
  const waitUntil = Date.now() + options.waitMs;
  let pause = FIRST_POLL_MS;
  for (let state = await tryOnce(); ; state = await tryOnce()) {
    if (typeof state === 'string') return { value: state, outcome: 'shared' };
    if (state === 1) return computeAsHolder(options, token);
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
  let computed: Computed;
  try {
    computed = await options.compute();
  } catch (error) {
    // Release at once so that a waiter can take over instead of waiting for the lock to expire.
    await bestEffort('release the lock', (redis) => storeAndUnlock(redis, [keys.answer, keys.lock], ['', 0, token]));
    throw error;
  }
  const value = computed.store ? computed.value : '';
  await bestEffort('store the answer', (redis) => storeAndUnlock(redis, [keys.answer, keys.lock], [value, options.ttlSeconds, token]));
  return { value: computed.value, outcome: 'computed' };
}

async function computeUnlocked(options: FlightOptions): Promise<FlightResult> {
  const computed = await options.compute();
  if (computed.store) await bestEffort('store the answer', (redis) => redis.set(options.keys.answer, computed.value, 'EX', options.ttlSeconds));
  return { value: computed.value, outcome: 'computed' };
}

async function computeFresh(options: FlightOptions): Promise<FlightResult> {
  const { outcome, value } = await computeUnlocked(options);
  return { value, outcome: outcome === 'computed' ? 'fresh' : outcome };
}

/** A write after the value exists: its failure is logged, never turned into an error for the client. */
async function bestEffort(what: string, write: (redis: RedisClient) => Promise<unknown>): Promise<void> {
  try {
    await withRedis(write);
  } catch (error) {
    log.warn(`response cache: could not ${what}`, { err: error instanceof HttpProblem ? error.cause : error });
  }
}
