// Login throttling with the shared rate limiter, on two identities:
// - the client address (API Gateway's sourceIp, not a spoofable header): every attempt counts;
// - the account (digest of the normalised email): only failed attempts count. It is peeked at
//   before the password is checked, so a locked account answers 429 without any scrypt work,
//   and charged one unit after a failure.
// Nothing is ever reset by a success: logging into one's own account must not refill the budget an
// attacker spends on the address or on other accounts. (Concurrent attempts can all pass the peek
// before the first failure is charged; the per-address limit bounds that burst per client.)

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

const ADDRESS_BUCKET = 'login:address';
const ACCOUNT_BUCKET = 'login:account';

/**
 * The limiter's decision, or undefined when Redis could not answer and the login route is
 * configured to fail open (the account lookup that follows will then tell whether Redis is back).
 */
async function check(request: RateLimitRequest, limit: RouteRateLimit): Promise<RateLimitDecision | undefined> {
  try {
    return await checkRateLimit(request);
  } catch (error) {
    if (limit.onRedisDown === 'open' && isHttpProblem(error) && error.status === 503) {
      log.warn('login throttle skipped: Redis did not answer', { bucket: request.bucket });
      return undefined;
    }
    throw error;
  }
}

/**
 * Admits one login attempt or throws the 429 problem. Returns the `RateLimit` headers of the
 * address limit, for the response.
 */
export async function admitLoginAttempt(event: HttpEvent, accountDigest: string): Promise<Record<string, string>> {
  const { login, loginAccount } = config().rateLimits;
  // One after the other, not in parallel: the limiter's script is an ioredis custom command, and
  // ioredis auto-pipelining on a Cluster may put two of them for different nodes into one
  // pipeline (it groups custom commands by their first argument, the key count).
  const address = await check({ bucket: ADDRESS_BUCKET, identity: event.requestContext.http.sourceIp, policies: login.policies }, login);
  if (address !== undefined && !address.allowed) throw rateLimitedProblem(address);
  const account = await check({ bucket: ACCOUNT_BUCKET, identity: accountDigest, policies: loginAccount.policies, peek: true }, loginAccount);
  if (account !== undefined && !account.allowed) throw rateLimitedProblem(account);
  return address === undefined ? {} : rateLimitHeaders(address);
}

/** Charges one failed attempt to the account. */
export async function chargeFailedLogin(accountDigest: string): Promise<void> {
  const { loginAccount } = config().rateLimits;
  await check({ bucket: ACCOUNT_BUCKET, identity: accountDigest, policies: loginAccount.policies }, loginAccount);
}
