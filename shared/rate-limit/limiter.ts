// The rate-limit check: one GCRA script run over all the policies of a check (see gcra.ts for the
// algorithm and why GCRA; batch.ts for how concurrent checks share a run), answered from the
// in-process block memory when the identity is known to be refused, and bounded in time so that
// a slow Redis cannot hold a request.
//
//   checkRateLimit ─ blocked here? ── yes → refused, no round trip
//                          └ no → EVALSHA (≤ timeoutMs, 200 ms) ─ refused → remember until a unit fits
//                                        └ too slow / down → throws a 503 problem (the caller picks open or closed)
//
// refundRateLimit gives back what an admitted check spent: reserve first, and return the units
// when the attempt turns out not to count (a login that succeeds).

import { config, type RateLimitPolicy } from '../config.ts';
import { rateLimitKeys, rateLimitTag } from '../keys.ts';
import { withRedis } from '../redis.ts';
import { enqueue } from './batch.ts';
import { forgetBlock, recallBlock, rememberBlock } from './blocked.ts';
import { withinTime } from './deadline.ts';
import { policyState, runGcraRefund, waitUs, type PolicyState } from './gcra.ts';

export { rateLimitHeaders, rateLimitedProblem } from './headers.ts';

export interface RateLimitRequest {
  /** What is limited, e.g. 'chat', 'login:account', 'login:address'. Use one policy list per bucket. */
  bucket: string;
  /** Who is limited: a user id, a client address, an email digest. */
  identity: string;
  policies: RateLimitPolicy[];
  /** Units this request spends (a whole number, default 1), e.g. the number of embedding inputs. */
  cost?: number;
  /** Only evaluate "would `cost` more be allowed?"; nothing is spent. */
  peek?: boolean;
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
}

export const DEFAULT_CHECK_TIMEOUT_MS = 200;

const policyNames = new WeakMap<readonly RateLimitPolicy[], string[]>();

function namesOf(policies: RateLimitPolicy[]): string[] {
  let names = policyNames.get(policies);
  if (names === undefined) {
    names = policies.map((policy) => policy.name);
    policyNames.set(policies, names);
  }
  return names;
}

function assertValid(request: RateLimitRequest, cost: number): void {
  if (request.policies.length === 0) throw new Error('checkRateLimit: at least one policy is needed');
  if (!Number.isSafeInteger(cost) || cost < 0) throw new Error(`checkRateLimit: cost must be a whole number >= 0, got ${cost}`);
}

export async function checkRateLimit(request: RateLimitRequest, options: CheckOptions = {}): Promise<RateLimitDecision> {
  const { bucket, identity, policies } = request;
  const cost = request.cost ?? 1;
  assertValid(request, cost);
  if (cost > 0) {
    const remembered = recallBlock(bucket, identity, cost);
    if (remembered !== undefined) return remembered;
  }
  const keys = rateLimitKeys(identity, bucket, namesOf(policies));
  return new Promise<RateLimitDecision>((resolve, reject) => {
    const settle = (reply: number[], offset: number) => {
      const decision = decode(reply, offset, policies, cost);
      if (!decision.allowed && cost > 0) rememberBlock(bucket, identity, decision, cost, oneUnitWaitMs(reply, offset, policies));
      resolve(decision);
    };
    const check = { keys, policies, cost, peek: request.peek === true, settle, fail: reject };
    enqueue(check, options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS, config().redis.cluster ? rateLimitTag(identity) : undefined);
  });
}

/**
 * Gives back `cost` units (default 1) that an admitted check of the same bucket and identity spent:
 * the way to reserve quota before knowing whether an attempt counts. A reservation cannot be
 * overtaken by concurrent attempts, as a check made only after the outcome would be. Returns the
 * state after the refund (allowed, for the response's headers). Bounded in time as a check is.
 */
export async function refundRateLimit(request: RateLimitRequest, options: CheckOptions = {}): Promise<RateLimitDecision> {
  const { bucket, identity, policies } = request;
  const cost = request.cost ?? 1;
  assertValid(request, cost);
  const keys = rateLimitKeys(identity, bucket, namesOf(policies));
  const reply = await withRedis((client) => withinTime(runGcraRefund(client, keys, policies, cost), options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS));
  forgetBlock(bucket, identity);
  return decode([1, ...reply], 0, policies, 0);
}

function decode(reply: number[], offset: number, policies: RateLimitPolicy[], cost: number): RateLimitDecision {
  const allowed = reply[offset] === 1;
  let waitMs = 0;
  const states: PolicyState[] = new Array(policies.length);
  for (let i = 0; i < policies.length; i += 1) {
    const policy = policies[i]!;
    const untilFullUs = reply[offset + 1 + i] ?? 0;
    states[i] = policyState(policy, untilFullUs);
    if (!allowed) waitMs = Math.max(waitMs, waitUs(policy, untilFullUs, cost) / 1000);
  }
  return {
    allowed,
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil(waitMs / 1000)),
    retryAfterMs: waitMs,
    states,
  };
}

/** How long no check of any cost can fit: the block worth remembering in process. */
function oneUnitWaitMs(reply: number[], offset: number, policies: RateLimitPolicy[]): number {
  let waitMs = 0;
  for (let i = 0; i < policies.length; i += 1) {
    waitMs = Math.max(waitMs, waitUs(policies[i]!, reply[offset + 1 + i] ?? 0, 1) / 1000);
  }
  return waitMs;
}
