// Registration throttling: a 409 tells whether an email has an account, so the answers that say
// "taken" are limited per client address (API Gateway's sourceIp), as failed logins are. Only
// those count: a class registering from one school address must not be turned away, and a new
// account tells nothing. Each registration reserves a unit, and one that creates an account gives
// it back; reserving first means a burst of concurrent probes gets no more than the limit.
//
//   reserve (with the email lookup, one round trip) → refused: 429
//     email taken → 409, the unit stays spent
//     account created → give the unit back → 201

import { config } from '../config.ts';
import type { HttpEvent } from '../http.ts';
import { log } from '../logger.ts';
import { checkRateLimit, rateLimitedProblem, rateLimitHeaders, refundRateLimit, type RateLimitRequest } from '../rate-limit/limiter.ts';
import { countRateLimitDecision } from '../telemetry/metrics.ts';

const BUCKET = 'register:taken';

function throttle(event: HttpEvent, peek = false): RateLimitRequest {
  return { bucket: BUCKET, identity: event.requestContext.http.sourceIp, policies: config().rateLimits.register.policies, peek };
}

export interface RegistrationReservation {
  /** The headers of a "taken" answer: its unit stays spent. */
  headers: Record<string, string>;
  /** Gives the unit back (an account was created); the headers of the 201. */
  accountCreated(): Promise<Record<string, string>>;
}

/** Reserves one unit for a registration, or throws the 429 problem. */
export async function reserveRegistration(event: HttpEvent): Promise<RegistrationReservation> {
  const decision = await checkRateLimit(throttle(event));
  countRateLimitDecision(BUCKET, decision.allowed ? 'allowed' : 'refused');
  if (!decision.allowed) throw rateLimitedProblem(decision);
  const headers = rateLimitHeaders(decision);
  return {
    headers,
    accountCreated: async () => {
      try {
        return rateLimitHeaders(await refundRateLimit(throttle(event)));
      } catch (error) {
        // The account exists: a unit left spent is the safe side of a failed refund.
        log.warn('registration throttle: the reserved unit could not be given back', { err: error });
        return headers;
      }
    },
  };
}

/** The address's headers, read without spending: for a refusal made before the email is looked up. */
export async function registrationHeaders(event: HttpEvent): Promise<Record<string, string>> {
  return rateLimitHeaders(await checkRateLimit(throttle(event, true)));
}
