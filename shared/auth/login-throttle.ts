// Login throttling with the shared rate limiter, on two identities: the account (digest of the
// normalised email) and the client address (API Gateway's sourceIp, not a spoofable header).
// Both count failed attempts, as the contract says ("repeated failures for one email or one
// client address"): both are peeked at before the password is checked, so a throttled login
// answers 429 without any scrypt work, and both are charged one unit after a failure.
//
// Why successes do not count against the address: many honest users share one address (an
// office behind NAT, a school, `npm run dev` where every request comes from 127.0.0.1).
// Why nothing is ever reset by a success: logging into one's own account must not refill the
// budget an attacker spends on the address or on other accounts.
// Concurrent attempts can all pass the peek before the first failure is charged; the function's
// reserved concurrency bounds that overshoot to a handful of attempts.

import { config, type RouteRateLimit } from '../config.ts';
import type { HttpEvent } from '../http.ts';
import { log } from '../logger.ts';
import { isHttpProblem } from '../problem.ts';
import {
  checkRateLimit,
  rateLimitHeaders,
  rateLimitedProblem,
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

/**
 * The limiter's decision, or undefined when Redis could not answer and the login route is
 * configured to fail open (the account lookup that follows will then tell whether Redis is back).
 */
async function check(request: RateLimitRequest, limit: RouteRateLimit): Promise<RateLimitDecision | undefined> {
  // Metrics count the admission checks (peeks), not the charges that follow a failed login.
  const count = (outcome: string) => {
    if (request.peek) countRateLimitDecision(request.bucket, outcome);
  };
  try {
    const decision = await checkRateLimit(request);
    count(decision.allowed ? 'allowed' : 'refused');
    return decision;
  } catch (error) {
    if (limit.onRedisDown === 'open' && isHttpProblem(error) && error.status === 503) {
      count('failed-open');
      log.warn('login throttle skipped: Redis did not answer', { bucket: request.bucket });
      return undefined;
    }
    if (isHttpProblem(error) && error.status === 503) count('failed-closed');
    throw error;
  }
}

interface Decisions {
  byAddress?: RateLimitDecision | undefined;
  byAccount?: RateLimitDecision | undefined;
}

/**
 * Both checks. Admission peeks change nothing, so both go at once (one round trip, one script run
 * in a standalone Redis). Charges go one after the other: a refused address answers the 429
 * without touching the account's state.
 */
async function checkBoth({ address, accountDigest }: Attempt, peek: boolean): Promise<Decisions> {
  const { login, loginAccount } = config().rateLimits;
  const checkAddress = () => check({ bucket: ADDRESS_BUCKET, identity: address, policies: login.policies, peek }, login);
  const checkAccount = () => check({ bucket: ACCOUNT_BUCKET, identity: accountDigest, policies: loginAccount.policies, peek }, loginAccount);
  let byAddress: RateLimitDecision | undefined;
  let byAccount: RateLimitDecision | undefined;
  if (peek) {
    [byAddress, byAccount] = await Promise.all([checkAddress(), checkAccount()]);
  } else {
    byAddress = await checkAddress();
    if (byAddress === undefined || byAddress.allowed) byAccount = await checkAccount();
  }
  return { byAddress, byAccount };
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
function combined({ byAddress, byAccount }: Decisions): RateLimitDecision {
  const refusals = [byAddress, byAccount].filter((decision): decision is RateLimitDecision => decision !== undefined && !decision.allowed);
  return {
    allowed: refusals.length === 0,
    retryAfterSeconds: Math.max(0, ...refusals.map((decision) => decision.retryAfterSeconds)),
    retryAfterMs: Math.max(0, ...refusals.map((decision) => decision.retryAfterMs)),
    states: [...labelled(byAddress, 'address'), ...labelled(byAccount, 'account')],
  };
}

/** The address limit's headers, read without spending: for a refusal made before the attempt is known (400, 413, 415). */
export async function addressHeaders(event: HttpEvent): Promise<Record<string, string>> {
  const { login } = config().rateLimits;
  const byAddress = await checkRateLimit({ bucket: ADDRESS_BUCKET, identity: event.requestContext.http.sourceIp, policies: login.policies, peek: true });
  return rateLimitHeaders(combined({ byAddress }));
}

/** Admits one login attempt or throws the 429 problem; returns the headers for the response. */
export async function admitLoginAttempt(attempt: Attempt): Promise<Record<string, string>> {
  const decision = combined(await checkBoth(attempt, true));
  if (!decision.allowed) throw rateLimitedProblem(decision);
  return rateLimitHeaders(decision);
}

/** Charges one failed attempt to the address and to the account; returns the updated headers. */
export async function chargeFailedLogin(attempt: Attempt): Promise<Record<string, string>> {
  // An address that refuses the charge leaves the account unchecked, and so out of the headers.
  return rateLimitHeaders(combined(await checkBoth(attempt, false)));
}
