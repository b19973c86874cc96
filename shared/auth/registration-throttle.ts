// Registration throttling: a 409 tells whether an email has an account, so the answers that say
// "taken" are limited per client address (API Gateway's sourceIp), as failed logins are. Only
// those count: a class registering from one school address must not be turned away, and a new
// account tells nothing. A registration holds a unit while it runs and keeps it only when the
// email is taken (rate-limit/attempts.ts), so a burst of concurrent probes gets no more than the
// limit:
//
//   reserve (with the email lookup, one round trip) → refused: 429
//     email taken → the unit stays spent → 409
//     account created → the unit is given back → 201
//     Redis failed meanwhile (503) → the unit is given back

import { config } from '../config.ts';
import type { HttpEvent } from '../http.ts';
import { reserveAttempt } from '../rate-limit/attempts.ts';
import { checkRateLimit, rateLimitedProblem, rateLimitHeaders, type RateLimitRequest } from '../rate-limit/limiter.ts';
import { countRateLimitDecision } from '../telemetry/metrics.ts';

const BUCKET = 'register:taken';

function throttle(event: HttpEvent, peek = false): RateLimitRequest {
  return { bucket: BUCKET, identity: event.requestContext.http.sourceIp, policies: config().rateLimits.register.policies, peek };
}

export interface RegistrationReservation {
  /** The email is taken: the unit stays spent. The headers of the 409. */
  emailTaken(): Promise<Record<string, string>>;
  /** An account was created: the unit is given back. The headers of the 201. */
  accountCreated(): Promise<Record<string, string>>;
  /** The registration failed (Redis could not answer): it told nothing of the email, so the unit is given back. */
  abandoned(): Promise<void>;
}

/** Holds one unit for a registration, or throws the 429 problem. */
export async function reserveRegistration(event: HttpEvent): Promise<RegistrationReservation> {
  const { decision, settle } = await reserveAttempt(throttle(event));
  countRateLimitDecision(BUCKET, decision.allowed ? 'allowed' : 'refused');
  if (!decision.allowed) throw rateLimitedProblem(decision);
  return {
    emailTaken: async () => rateLimitHeaders(await settle(true)),
    accountCreated: async () => rateLimitHeaders(await settle(false)),
    abandoned: async () => void (await settle(false)),
  };
}

/** The address's headers, read without spending: for a refusal made before the email is looked up. */
export async function registrationHeaders(event: HttpEvent): Promise<Record<string, string>> {
  return rateLimitHeaders(await checkRateLimit(throttle(event, true)));
}
