// The IETF rate-limit header fields (draft-ietf-httpapi-ratelimit-headers, structured-field
// syntax of its latest drafts) and the 429 problem of a refused request.
//
//   RateLimit-Policy: "20-per-1m";q=20;w=60, "500-per-1d";q=500;w=86400
//   RateLimit: "20-per-1m";r=19;t=3, "500-per-1d";r=499;t=173
//
// `RateLimit` lists every policy, not only the most restrictive: a client sees both its burst and
// its daily budget. `r` is the units left now; `t` is the seconds until more quota is available
// (draft -10: GCRA gives one unit back every interval, long before the whole window has passed;
// 0 when nothing is spent). A refused request of one unit has its Retry-After as `t`; one of
// several units waits longer than the next unit, and its Retry-After says how long.

import { HttpProblem, wholeSecondsToWait } from '../problem.ts';
import type { RateLimitPolicy } from '../config.ts';
import type { RateLimitDecision, RateLimitRefusal } from './limiter.ts';

/** A structured-field string: quoted, with `\` and `"` escaped; other characters are dropped. */
function sfString(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]/g, '').replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** `w` is a whole number of seconds in the draft: a sub-second window is announced as 1 s. */
function policyItem(policy: RateLimitPolicy): string {
  return `${sfString(policy.name)};q=${policy.limit};w=${Math.max(1, Math.ceil(policy.windowMs / 1000))}`;
}

/** Per configured policy (config() keeps them): its name as a structured-field string, and its RateLimit-Policy item. */
const spelled = new WeakMap<RateLimitPolicy, { name: string; item: string }>();

function spellingOf(policy: RateLimitPolicy): { name: string; item: string } {
  let spelling = spelled.get(policy);
  if (spelling === undefined) {
    spelling = { name: sfString(policy.name), item: policyItem(policy) };
    spelled.set(policy, spelling);
  }
  return spelling;
}

export function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
  if (decision.states.length === 0) return {};
  let policies = '';
  let state = '';
  for (const [i, { policy, remaining, moreInSeconds }] of decision.states.entries()) {
    const spelling = spellingOf(policy);
    policies += i === 0 ? spelling.item : `, ${spelling.item}`;
    state += `${i === 0 ? '' : ', '}${spelling.name};r=${remaining};t=${moreInSeconds}`;
  }
  return { 'RateLimit-Policy': policies, RateLimit: state };
}

/** 429 problem+json with `Retry-After` (whole seconds, at least 1) and the rate-limit headers. */
export function rateLimitedProblem(decision: RateLimitRefusal): HttpProblem {
  const seconds = wholeSecondsToWait(decision.retryAfterMs / 1000);
  return new HttpProblem(429, 'rate-limited', {
    detail: `Too many requests; try again in ${seconds} second${seconds === 1 ? '' : 's'}.`,
    headers: rateLimitHeaders(decision),
    retryAfterSeconds: seconds,
  });
}
