// Registration throttling: a 409 tells whether an email has an account, so the answers that say
// "taken" are limited per client address (API Gateway's sourceIp), as failed logins are. Only
// those count: a class registering from one school address must not be turned away, and a new
// account tells nothing. Peeked before the check, charged after a "taken".
//
//   peek (with the email lookup, one round trip) → refused: 429
//   email taken → charge one unit → 409 with the RateLimit headers

import { config } from '../config.ts';
import type { HttpEvent } from '../http.ts';
import type { HttpProblem } from '../problem.ts';
import { checkRateLimit, rateLimitedProblem, rateLimitHeaders, type RateLimitRequest } from '../rate-limit/limiter.ts';
import { countRateLimitDecision } from '../telemetry/metrics.ts';

const BUCKET = 'register:taken';

function throttle(event: HttpEvent, peek: boolean): RateLimitRequest {
  return { bucket: BUCKET, identity: event.requestContext.http.sourceIp, policies: config().rateLimits.register.policies, peek };
}

/** Throws the 429 problem when the address has had its share of "taken" answers; else its headers. */
export async function admitRegistration(event: HttpEvent): Promise<Record<string, string>> {
  const decision = await checkRateLimit(throttle(event, true));
  countRateLimitDecision(BUCKET, decision.allowed ? 'allowed' : 'refused');
  if (!decision.allowed) throw rateLimitedProblem(decision);
  return rateLimitHeaders(decision);
}

/**
 * A refusal made before the email is looked up (a body that cannot be read or validated), given
 * the address's headers, read without spending; without them when Redis does not answer.
 */
export async function refusedBeforeLookup(event: HttpEvent, problem: HttpProblem): Promise<HttpProblem> {
  try {
    Object.assign(problem.headers, rateLimitHeaders(await checkRateLimit(throttle(event, true))));
  } catch {
    // the refusal stands as it is
  }
  return problem;
}

/** Charges one "taken" answer to the address; returns the headers for the 409. */
export async function chargeTakenEmail(event: HttpEvent): Promise<Record<string, string>> {
  return rateLimitHeaders(await checkRateLimit(throttle(event, false)));
}
