// Login throttling with the shared rate limiter, on two identities: the account (digest of the
// normalised email) and the client address (API Gateway's sourceIp, not a spoofable header).
// Both count failed attempts, as the contract says ("repeated failures for one email or one
// client address"). An attempt reserves one unit of each before the password is checked, and a
// success gives both back:
//
//   reserve address + account (one round trip) ─ either refused → give back the other → 429, no scrypt
//        └ both admitted → scrypt ─ wrong → 401, the units stay spent
//                                  └ right → give both back (with the session write) → 200
//
// Why reserve rather than charge after a failure: concurrent attempts would all pass a check made
// before the first failure is charged, so a burst of parallel guesses could go far past the limit.
// A reservation is spent atomically before any scrypt work; a burst gets exactly the limit.
// Why successes do not count: many honest users share one address (an office behind NAT, a
// school, `npm run dev` where every request comes from 127.0.0.1).
// Why nothing else is given back on success: logging into one's own account must not refill the
// budget an attacker spends on the address or on other accounts.

import { config, type RouteRateLimit } from '../config.ts';
import type { HttpEvent } from '../http.ts';
import { log } from '../logger.ts';
import { isHttpProblem } from '../problem.ts';
import {
  checkRateLimit,
  rateLimitHeaders,
  rateLimitedProblem,
  refundRateLimit,
  type RateLimitDecision,
  type RateLimitRequest,
} from '../rate-limit/limiter.ts';
import type { PolicyState } from '../rate-limit/gcra.ts';
import { countRateLimitDecision } from '../telemetry/metrics.ts';

const ADDRESS_BUCKET = 'login:address';
const ACCOUNT_BUCKET = 'login:account';

interface Attempt {
  address: string;
  accountDigest: string;
}

export function loginAttempt(event: HttpEvent, accountDigest: string): Attempt {
  return { address: event.requestContext.http.sourceIp, accountDigest };
}

/** Both limits of an attempt: its two rate-limit requests and their configuration. */
function limitsOf({ address, accountDigest }: Attempt): Array<{ request: RateLimitRequest; limit: RouteRateLimit }> {
  const { login, loginAccount } = config().rateLimits;
  return [
    { request: { bucket: ADDRESS_BUCKET, identity: address, policies: login.policies }, limit: login },
    { request: { bucket: ACCOUNT_BUCKET, identity: accountDigest, policies: loginAccount.policies }, limit: loginAccount },
  ];
}

/**
 * The limiter's decision, or undefined when Redis could not answer and the limit is configured to
 * fail open (the account lookup that follows will then tell whether Redis is back).
 */
async function reserve(request: RateLimitRequest, limit: RouteRateLimit): Promise<RateLimitDecision | undefined> {
  try {
    const decision = await checkRateLimit(request);
    countRateLimitDecision(request.bucket, decision.allowed ? 'allowed' : 'refused');
    return decision;
  } catch (error) {
    if (!isHttpProblem(error) || error.status !== 503) throw error;
    if (limit.onRedisDown === 'open') {
      countRateLimitDecision(request.bucket, 'failed-open');
      log.warn('login throttle skipped: Redis did not answer', { bucket: request.bucket });
      return undefined;
    }
    countRateLimitDecision(request.bucket, 'failed-closed');
    throw error;
  }
}

/** A policy's state under the name of what it limits: the two limits may have the same numbers. */
function labelled(decision: RateLimitDecision | undefined, label: string): PolicyState[] {
  return (decision?.states ?? []).map((state) => ({ ...state, policy: { ...state.policy, name: `${label}-${state.policy.name}` } }));
}

/**
 * One decision for the headers, listing every policy of both limits (`address-10-per-15m`,
 * `account-5-per-15m`), so that a client sees the one it is about to run out of; refused when
 * either refuses, with the longer Retry-After of the two (the shorter would only earn another 429).
 */
function combined(byAddress: RateLimitDecision | undefined, byAccount?: RateLimitDecision): RateLimitDecision {
  const refusals = [byAddress, byAccount].filter((decision): decision is RateLimitDecision => decision !== undefined && !decision.allowed);
  return {
    allowed: refusals.length === 0,
    retryAfterSeconds: Math.max(0, ...refusals.map((decision) => decision.retryAfterSeconds)),
    retryAfterMs: Math.max(0, ...refusals.map((decision) => decision.retryAfterMs)),
    states: [...labelled(byAddress, 'address'), ...labelled(byAccount, 'account')],
  };
}

/**
 * Gives back the units of the admitted decisions; the state after, in their place (best effort:
 * a refund that fails leaves the unit spent, the safe side, and its last known state).
 */
async function giveBack(decisions: Array<RateLimitDecision | undefined>, attempt: Attempt): Promise<Array<RateLimitDecision | undefined>> {
  const limits = limitsOf(attempt);
  return Promise.all(
    decisions.map(async (decision, index) => {
      if (decision === undefined || !decision.allowed) return decision;
      try {
        return await refundRateLimit(limits[index]!.request);
      } catch (error) {
        log.warn('login throttle: a reserved unit could not be given back', { bucket: limits[index]!.request.bucket, err: error });
        return decision;
      }
    }),
  );
}

/** The address limit's headers, read without spending: for a refusal made before the attempt is known (400, 413, 415). */
export async function addressHeaders(event: HttpEvent): Promise<Record<string, string>> {
  const { login } = config().rateLimits;
  const byAddress = await checkRateLimit({ bucket: ADDRESS_BUCKET, identity: event.requestContext.http.sourceIp, policies: login.policies, peek: true });
  return rateLimitHeaders(combined(byAddress));
}

export interface LoginReservation {
  /** The headers of a failed attempt's answer: its units stay spent. */
  headers: Record<string, string>;
  /** Gives the units back (the attempt succeeded); the headers of the success's answer. */
  succeeded(): Promise<Record<string, string>>;
}

/**
 * Reserves one unit of the address's and of the account's limit for an attempt, both in one round
 * trip, or throws the 429 problem (having given back whichever of the two was admitted).
 */
export async function reserveLoginAttempt(attempt: Attempt): Promise<LoginReservation> {
  const outcomes = await Promise.allSettled(limitsOf(attempt).map(({ request, limit }) => reserve(request, limit)));
  const decisions = outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : undefined));
  const failure = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failure !== undefined) {
    // One limit could not be checked (Redis down, in a cluster where the two live apart): the
    // attempt is not made, so the unit the other may have spent goes back.
    await giveBack(decisions, attempt);
    throw failure.reason;
  }
  if (decisions.some((decision) => decision !== undefined && !decision.allowed)) {
    const [byAddress, byAccount] = await giveBack(decisions, attempt);
    throw rateLimitedProblem(combined(byAddress, byAccount));
  }
  return {
    headers: rateLimitHeaders(combined(decisions[0], decisions[1])),
    succeeded: async () => {
      const [byAddress, byAccount] = await giveBack(decisions, attempt);
      return rateLimitHeaders(combined(byAddress, byAccount));
    },
  };
}
