// Rate limiting as a middy middleware, placed after auth (the identity is the signed-in user) and
// before the cache and the handler:
//
//   before   check → refused: throw the 429 problem (headers, Retry-After)
//                  → Redis down or too slow: 'open' lets the request through (warning logged),
//                    'closed' answers 503 with Retry-After
//            a request the route calls invalid (cost throws) spends nothing: its 400 comes later
//            a cost beyond a policy's whole quota, which no wait would admit: 413, spends nothing
//   after    RateLimit-Policy / RateLimit on the response
//   onError  the same headers on problems raised further down (a 400, a 502 from Claude...)
//            a 401 from auth, which `before` never saw: the headers of its client address's
//            quota, which is always full (see headersForRefusedByAuth), told without asking Redis

import type { MiddlewareObj } from '@middy/core';
import type { RateLimitPolicy, RouteRateLimit } from '../config.ts';
import type { HttpEvent, HttpResult } from '../http.ts';
import { HttpProblem } from '../problem.ts';
import { requestSlot } from '../request-slot.ts';
import { countRateLimitDecision } from '../telemetry/metrics.ts';
import { checkRateLimit, decisionOf, rateLimitedProblem, rateLimitHeaders, type RateLimitDecision } from './limiter.ts';
import { failOpenOrThrow } from './redis-down.ts';

export interface RateLimitOptions {
  /** What is limited, e.g. 'chat': the bucket of the route's keys and metrics. */
  bucket: string;
  /**
   * The policies and what to do when Redis is down (`() => config().rateLimits.chat`): read on
   * each request, not at import, so that a function's init reads no configuration and a bad value
   * becomes a problem response.
   */
  limit: () => RouteRateLimit;
  /**
   * Units a request spends (default 1), e.g. the number of embedding inputs. Throws for a request
   * the route will refuse as invalid: bad input spends nothing (its 400 still carries the headers).
   */
  cost?: (event: HttpEvent) => number;
}

/**
 * Who is limited: the user set by the auth middleware, else the address API Gateway saw the
 * request come from. Never a header such as X-Forwarded-For: a client could send any value and
 * get a fresh quota.
 */
function identityOf(event: HttpEvent): string {
  const userId = (event as HttpEvent & { user?: { id?: string } }).user?.id;
  if (userId !== undefined && userId !== '') return `user:${userId}`;
  return `address:${event.requestContext?.http?.sourceIp ?? 'unknown'}`;
}

/**
 * The route's cost of a request, rounded up to whole units; 0 for a request the route finds
 * invalid (its cost function throws), which changes nothing and gets its 400 from the handler.
 */
function costOf(event: HttpEvent, cost: RateLimitOptions['cost']): number {
  if (cost === undefined) return 1;
  try {
    const units = Math.ceil(cost(event));
    return Number.isSafeInteger(units) && units >= 0 ? units : 0;
  } catch {
    return 0;
  }
}

/** A request that no wait would admit: a Retry-After would only send the client into a loop. */
function costBeyondQuota(cost: number, policy: RateLimitPolicy): HttpProblem {
  return new HttpProblem(413, 'cost-beyond-rate-limit', {
    detail: `This request counts ${cost} units against the rate limit, more than the ${policy.limit} that policy "${policy.name}" allows in a whole window; split it into smaller requests.`,
  });
}

type Request = Parameters<NonNullable<MiddlewareObj<HttpEvent, HttpResult>['before']>>[0];

export function rateLimit(options: RateLimitOptions): MiddlewareObj<HttpEvent, HttpResult> {
  const { bucket } = options;
  const decisions = requestSlot<Request, RateLimitDecision>(`${bucket} rate-limit decision`);

  const before = async (request: Request): Promise<void> => {
    const limit = options.limit();
    const cost = costOf(request.event, options.cost);
    const exceeded = limit.policies.find((policy) => cost > policy.limit);
    let decision: RateLimitDecision;
    try {
      decision = await checkRateLimit({
        bucket,
        identity: identityOf(request.event),
        policies: limit.policies,
        // Spends nothing when the request is refused whatever the state: the check only reads it.
        cost: exceeded === undefined ? cost : 0,
      });
    } catch (error) {
      failOpenOrThrow(error, bucket, limit);
      return;
    }
    decisions.set(request, decision);
    countRateLimitDecision(bucket, decision.allowed && exceeded === undefined ? 'allowed' : 'refused');
    if (exceeded !== undefined) throw costBeyondQuota(cost, exceeded);
    if (!decision.allowed) throw rateLimitedProblem(decision);
  };

  const after = (request: Request): void => {
    const decision = decisions.get(request);
    if (decision === undefined || request.response === undefined || request.response === null) return;
    request.response.headers = { ...request.response.headers, ...rateLimitHeaders(decision) };
  };

  /**
   * The headers every answer of a limited route carries, for a request auth refused: those of its
   * client address's quota, the identity of a request without a user. On a route behind auth that
   * quota is never spent (only signed-in requests reach the check, limited by user, and bad input
   * spends nothing), so it is full, and said so without a round trip: a flood of requests without
   * a valid token costs Redis nothing more than the session lookups it already made.
   */
  const headersForRefusedByAuth = (refusal: HttpProblem): void => {
    let policies: RateLimitPolicy[];
    try {
      policies = options.limit().policies;
    } catch {
      return; // a configuration error: the 401 still says what the client must fix
    }
    Object.assign(refusal.headers, rateLimitHeaders(decisionOf(true, [], 0, policies, 0)));
  };

  const onError = (request: Request): void => {
    const error = request.error;
    // A bug's 500 needs no headers.
    if (!(error instanceof HttpProblem)) return;
    const decision = decisions.get(request);
    if (decision === undefined) {
      if (error.status === 401) headersForRefusedByAuth(error);
      return;
    }
    // Our own 429 carries the headers already.
    if (decision.allowed) Object.assign(error.headers, rateLimitHeaders(decision));
  };

  return { name: 'rateLimit', before, after, onError };
}
