// The rate-limit check: one GCRA script per check over all the policies of a request (see
// gcra.ts for the algorithm and why GCRA), answered from the in-process block memory when the
// identity is known to be refused, and bounded in time so that a slow Redis cannot hold a request.
//
//   checkRateLimit ─ blocked here? ── yes → refused, no round trip
//                          └ no → EVALSHA (≤ timeoutMs, 200 ms) ─ refused → remember until a unit fits
//                                        └ too slow / down → throws a 503 problem (the caller picks open or closed)

import type { RateLimitPolicy } from '../config.ts';
import { rateLimitKey } from '../keys.ts';
import { unavailable } from '../problem.ts';
import { isRedisUnavailableError, withRedis, type RedisClient } from '../redis.ts';
import { blockKey, forgetBlocks, recallBlock, rememberBlock } from './blocked.ts';
import { runGcra } from './gcra.ts';

export { rateLimitHeaders, rateLimitedProblem } from './headers.ts';

export interface RateLimitRequest {
  /** What is limited, e.g. 'chat', 'login:account', 'login:address'. */
  bucket: string;
  /** Who is limited: a user id, a client address, an email digest. */
  identity: string;
  policies: RateLimitPolicy[];
  /** Units this request spends (default 1), e.g. the number of embedding inputs. */
  cost?: number;
  /** Only evaluate "would `cost` more be allowed?"; nothing is spent. */
  peek?: boolean;
}

export interface PolicyState {
  policy: RateLimitPolicy;
  /** Units left after this request (or, when refused or peeking, left now). */
  remaining: number;
  /** Whole seconds until the policy's quota is full again. */
  resetSeconds: number;
  resetMs: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  /** 0 when allowed; else whole seconds (at least 1) until the request's cost fits. */
  retryAfterSeconds: number;
  /** The same, precise (sub-second windows). */
  retryAfterMs: number;
  states: PolicyState[];
}

export interface CheckOptions {
  /** Give up after this long (default 200 ms) rather than wait for Redis's command time-out. */
  timeoutMs?: number;
  /** Use this client instead of the container's (benchmarks, operator tools). */
  client?: RedisClient;
}

export const DEFAULT_CHECK_TIMEOUT_MS = 200;

/** Per policy list: the script's arguments after the cost, built once per configured array. */
const policyArgs = new WeakMap<RateLimitPolicy[], string[]>();

function argsFor(policies: RateLimitPolicy[]): string[] {
  let args = policyArgs.get(policies);
  if (args === undefined) {
    args = policies.flatMap((policy) => [String(policy.limit), String(policy.windowMs * 1000)]);
    policyArgs.set(policies, args);
  }
  return args;
}

function assertValid(request: RateLimitRequest, cost: number): void {
  if (request.policies.length === 0) throw new Error('checkRateLimit: at least one policy is needed');
  if (!Number.isFinite(cost) || cost < 0) throw new Error(`checkRateLimit: cost must be a number >= 0, got ${cost}`);
}

export async function checkRateLimit(request: RateLimitRequest, options: CheckOptions = {}): Promise<RateLimitDecision> {
  const cost = request.cost ?? 1;
  assertValid(request, cost);
  const memoryKey = blockKey(request.bucket, request.identity);
  if (cost > 0) {
    const remembered = recallBlock(memoryKey, cost);
    if (remembered !== undefined) return remembered;
  }
  const keys = request.policies.map((policy) => rateLimitKey(request.identity, request.bucket, policy.name));
  const args = [String(cost), request.peek === true ? '1' : '0', ...argsFor(request.policies)];
  const reply = await withinTime(
    options.client === undefined ? withRedis((client) => runGcra(client, keys, args)) : onClient(options.client, keys, args),
    options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS,
  );
  const decision = decode(reply, request.policies);
  if (!decision.allowed && cost > 0) rememberBlock(memoryKey, decision, cost, (reply[2] ?? 0) / 1000);
  return decision;
}

/**
 * Forgets everything spent by `identity` in `bucket` (e.g. the failed logins of an account after
 * a successful one), in Redis and in this container's block memory.
 */
export async function resetRateLimit(request: Omit<RateLimitRequest, 'cost' | 'peek'>, options: CheckOptions = {}): Promise<void> {
  forgetBlocks(blockKey(request.bucket, request.identity));
  const keys = request.policies.map((policy) => rateLimitKey(request.identity, request.bucket, policy.name));
  const unlink = (client: RedisClient) => client.del(...keys);
  await withinTime(options.client === undefined ? withRedis(unlink) : unlink(options.client), options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS);
}

async function onClient(client: RedisClient, keys: string[], args: string[]): Promise<number[]> {
  try {
    return await runGcra(client, keys, args);
  } catch (error) {
    throw isRedisUnavailableError(error) ? unavailable('redis', error) : error;
  }
}

function decode(reply: number[], policies: RateLimitPolicy[]): RateLimitDecision {
  const allowed = reply[0] === 1;
  const retryAfterMs = allowed ? 0 : (reply[1] ?? 0) / 1000;
  const states: PolicyState[] = policies.map((policy, index) => {
    const resetMs = (reply[4 + 2 * index] ?? 0) / 1000;
    return { policy, remaining: reply[3 + 2 * index] ?? 0, resetMs, resetSeconds: Math.ceil(resetMs / 1000) };
  });
  return { allowed, retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil(retryAfterMs / 1000)), retryAfterMs, states };
}

/** The check's own deadline: Redis's command time-out (800 ms) is far too long for a gate. */
function withinTime<T>(operation: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(unavailable('redis', new Error(`the rate-limit check took more than ${timeoutMs} ms`)));
    }, timeoutMs);
    operation.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
