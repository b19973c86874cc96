// The rate-limit check: one GCRA script run over all the policies of a check (see gcra.ts for the
// algorithm and why GCRA; batch.ts for how concurrent checks share a run), answered from the
// in-process block memory when the identity is known to be refused, and bounded in time so that
// a slow Redis cannot hold a request.
//
//   checkRateLimit ─ blocked here? ── yes → refused, no round trip
//                          └ no → EVALSHA (≤ timeoutMs, 200 ms) ─ refused → remember until a unit fits
//                                        └ too slow / down → throws a 503 problem (the caller picks open or closed)
//
// For an attempt that counts only when it fails (a login), attempts.ts holds a unit while it runs.

import { config, type RateLimitPolicy } from '../config.ts';
import { rateLimitKeys, rateLimitTag } from '../keys.ts';
import { enqueue } from './batch.ts';
import { recallBlock, rememberBlock } from './blocked.ts';
import { policyState, waitUs, type PolicyState } from './gcra.ts';

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

export type RateLimitDecision = { allowed: true; states: PolicyState[] } | RateLimitRefusal;

export interface RateLimitRefusal {
  allowed: false;
  /** How long until the request's cost fits (precise: windows may be shorter than a second). */
  retryAfterMs: number;
  states: PolicyState[];
}

export interface CheckOptions {
  /** Give up after this long (default 200 ms) rather than wait for Redis's command time-out. */
  timeoutMs?: number;
}

export const DEFAULT_CHECK_TIMEOUT_MS = 200;

const policyNames = new WeakMap<readonly RateLimitPolicy[], string[]>();

/** The policies' names (their keys' last part), built once per configured list. */
export function namesOf(policies: readonly RateLimitPolicy[]): string[] {
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
  // A peek's refusal is not remembered: peeks read the buckets of attempts (attempts.ts), whose
  // units may be held by attempts in flight that give them back, which this script cannot see.
  const remember = cost > 0 && request.peek !== true;
  return new Promise<RateLimitDecision>((resolve, reject) => {
    const settle = (reply: number[], offset: number) => {
      // A check's part of the reply: admitted (1 or 0), then per policy its µs until full.
      const decision = decisionOf(reply[offset] === 1, reply, offset + 1, policies, cost);
      if (!decision.allowed && remember) rememberBlock(bucket, identity, decision, cost, oneUnitWaitMs(reply, offset + 1, policies));
      resolve(decision);
    };
    const check = { keys, policies, cost, peek: request.peek === true, settle, fail: reject };
    enqueue(check, options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS, config().redis.cluster ? rateLimitTag(identity) : undefined);
  });
}

/**
 * The decision on a check of `cost` units, from each policy's µs until full as a script answered
 * them: `untilFullUs[from + i]` for the i-th policy (a slice of a reply, without copying it).
 */
export function decisionOf(allowed: false, untilFullUs: readonly number[], from: number, policies: readonly RateLimitPolicy[], cost: number): RateLimitRefusal;
export function decisionOf(allowed: boolean, untilFullUs: readonly number[], from: number, policies: readonly RateLimitPolicy[], cost: number): RateLimitDecision;
export function decisionOf(allowed: boolean, untilFullUs: readonly number[], from: number, policies: readonly RateLimitPolicy[], cost: number): RateLimitDecision {
  let waitMs = 0;
  const states: PolicyState[] = new Array(policies.length);
  for (let i = 0; i < policies.length; i += 1) {
    const policy = policies[i]!;
    const untilFull = untilFullUs[from + i] ?? 0;
    states[i] = policyState(policy, untilFull);
    if (!allowed) waitMs = Math.max(waitMs, waitUs(policy, untilFull, cost) / 1000);
  }
  return allowed ? { allowed, states } : { allowed, retryAfterMs: waitMs, states };
}

/** How long no check of any cost can fit: the block worth remembering in process. `untilFullUs` as for decisionOf. */
export function oneUnitWaitMs(untilFullUs: readonly number[], from: number, policies: readonly RateLimitPolicy[]): number {
  let waitMs = 0;
  for (let i = 0; i < policies.length; i += 1) {
    waitMs = Math.max(waitMs, waitUs(policies[i]!, untilFullUs[from + i] ?? 0, 1) / 1000);
  }
  return waitMs;
}
