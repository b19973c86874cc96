// Registration throttling: a 409 tells whether an email has an account, so the answers that say
// "taken" are limited per client address (API Gateway's sourceIp), as failed logins are. Only
// those count: a class registering from one school address must not be turned away, and a new
// account tells nothing. Peeked before the check, charged after a "taken".
//
//   peek (with the email lookup, one round trip) → refused: 429
//   email taken → charge one unit → 409 with the RateLimit headers

import { config } from '../config.ts';
import type { HttpEvent } from '../http.ts';
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

/** The address's headers, read without spending: for a refusal made before the email is looked up. */
export async function registrationHeaders(event: HttpEvent): Promise<Record<string, string>> {
  return rateLimitHeaders(await checkRateLimit(throttle(event, true)));
}

/** Charges one "taken" answer to the address; returns the headers for the 409. */
export async function chargeTakenEmail(event: HttpEvent): Promise<Record<string, string>> {
  return rateLimitHeaders(await checkRateLimit(throttle(event, false)));
}
