// What a limit does when Redis could not answer its check, as its `onRedisDown` setting says:
// 'open' lets the request through unlimited (counted, and logged as a warning), 'closed' refuses
// it with the 503 problem the check threw. The same for the middleware's routes and for logins.

import type { RouteRateLimit } from '../config.ts';
import { log } from '../logger.ts';
import { HttpProblem } from '../problem.ts';
import { countRateLimitDecision } from '../telemetry/metrics.ts';

/**
 * Returns when the check failed for want of Redis and the limit fails open: the caller goes on
 * unlimited. Throws otherwise: the 503 of a limit that fails closed, or an error that is no outage.
 */
export function failOpenOrThrow(error: unknown, bucket: string, limit: RouteRateLimit): void {
  if (!(error instanceof HttpProblem) || error.status !== 503) throw error;
  if (limit.onRedisDown === 'open') {
    countRateLimitDecision(bucket, 'failed-open');
    log.warn('rate limit not checked: Redis unavailable; letting the request through', { bucket, err: error.cause });
    return;
  }
  countRateLimitDecision(bucket, 'failed-closed');
  throw error; // keeps what was down: Redis, or the secret that says where it is
}
