// Login throttling with the shared rate limiter, on two identities: the account (digest of the
// normalised email) and the client address (API Gateway's sourceIp, not a spoofable header).
// Both count failed attempts, as the contract says ("repeated failures for one email or one
// client address"). An attempt holds a unit of each while its password is checked, and only a
// failure keeps them (rate-limit/attempts.ts), so a burst of concurrent guesses gets exactly the
// limit:
//
//   reserve address + account (one round trip) ─ either refused → the other's unit back → 429, no scrypt
//        └ both held → scrypt ─ wrong → both stay spent → 401
//                              └ right → both given back (with the session write) → 200
//        └ both held, the account unreadable (its node down) → both given back → 503
//
// Why successes do not count: many honest users share one address (an office behind NAT, a
// school, `npm run dev` where every request comes from 127.0.0.1). Many of them logging in at
// the same moment may find the units held by each other's attempts: that 429 says to retry in a
// second. Why nothing else is given back on success: logging into one's own account must not
// refill the budget an attacker spends on the address or on other accounts, nor on this one:
// forgetting its failures would give someone guessing it a fresh budget at each of its owner's
// logins (a script logging in every minute would multiply it by 15). An owner who made typos
// waits for their units to come back, as anyone else does.

import { config, type RouteRateLimit } from '../config.ts';
import type { HttpEvent } from '../http.ts';
import { knownRefusal, reserveAttempt, type AttemptReservation } from '../rate-limit/attempts.ts';
import { checkRateLimit, rateLimitHeaders, rateLimitedProblem, type RateLimitDecision, type RateLimitRefusal, type RateLimitRequest } from '../rate-limit/limiter.ts';
import { failOpenOrThrow } from '../rate-limit/redis-down.ts';
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

/** One limit of an attempt: its rate-limit request and its configuration. */
interface Limit {
  request: RateLimitRequest;
  limit: RouteRateLimit;
}

/** The address's limit, then the account's. */
function limitsOf({ address, accountDigest }: Attempt): [Limit, Limit] {
  const { login, loginAccount } = config().rateLimits;
  return [
    { request: { bucket: ADDRESS_BUCKET, identity: address, policies: login.policies }, limit: login },
    { request: { bucket: ACCOUNT_BUCKET, identity: accountDigest, policies: loginAccount.policies }, limit: loginAccount },
  ];
}

/**
 * The attempt's hold on one limit, or undefined when Redis could not answer and the limit is
 * configured to fail open (the account lookup sent alongside will then tell whether Redis is back).
 */
async function reserve(request: RateLimitRequest, limit: RouteRateLimit): Promise<AttemptReservation | undefined> {
  try {
    const reservation = await reserveAttempt(request);
    countRateLimitDecision(request.bucket, reservation.decision.allowed ? 'allowed' : 'refused');
    return reservation;
  } catch (error) {
    failOpenOrThrow(error, request.bucket, limit);
    return undefined;
  }
}

/** A policy's state under the name of what it limits: the two limits may have the same numbers. */
function labelled(decision: RateLimitDecision | undefined, label: string): PolicyState[] {
  return (decision?.states ?? []).map((state) => ({ ...state, policy: { ...state.policy, name: `${label}-${state.policy.name}` } }));
}

/**
 * One decision for the headers, listing every policy of both limits (`address-10-per-15m`,
 * `account-5-per-15m`), so that a client sees the one it is about to run out of; refused when
 * either refuses.
 */
function combined(byAddress: RateLimitDecision | undefined, byAccount?: RateLimitDecision): RateLimitDecision {
  if (byAddress?.allowed === false || byAccount?.allowed === false) return refusal(byAddress, byAccount);
  return { allowed: true, states: [...labelled(byAddress, 'address'), ...labelled(byAccount, 'account')] };
}

/** The combined refusal, with the longer Retry-After of the two (the shorter would only earn another 429). */
function refusal(byAddress: RateLimitDecision | undefined, byAccount?: RateLimitDecision): RateLimitRefusal {
  const waitMs = (decision: RateLimitDecision | undefined) => (decision === undefined || decision.allowed ? 0 : decision.retryAfterMs);
  return {
    allowed: false,
    retryAfterMs: Math.max(waitMs(byAddress), waitMs(byAccount)),
    states: [...labelled(byAddress, 'address'), ...labelled(byAccount, 'account')],
  };
}

/** Ends every held attempt (`counts`: a failure); the limits' states after, in the same order. */
function settleAll(reservations: Array<AttemptReservation | undefined>, counts: boolean): Promise<Array<RateLimitDecision | undefined>> {
  return Promise.all(reservations.map((reservation) => reservation?.settle(counts)));
}

/** The address limit's headers, read without spending: for a refusal made before the attempt is known (400, 413, 415). */
export async function addressHeaders(event: HttpEvent): Promise<Record<string, string>> {
  const { login } = config().rateLimits;
  const byAddress = await checkRateLimit({ bucket: ADDRESS_BUCKET, identity: event.requestContext.http.sourceIp, policies: login.policies, peek: true });
  return rateLimitHeaders(combined(byAddress));
}

export interface LoginReservation {
  /** The attempt failed: its units stay spent. The headers of the 401. */
  failed(): Promise<Record<string, string>>;
  /** The attempt succeeded: its units are given back. The headers of the 200. */
  succeeded(): Promise<Record<string, string>>;
  /**
   * The attempt could not be made (the account could not be read): no verdict, so it counts as
   * nothing and its units are given back, else an outage would lock accounts out as failures do.
   */
  abandoned(): Promise<void>;
}

/**
 * Holds one unit of the address's and of the account's limit for an attempt, both in one round
 * trip, or throws the 429 problem (having given back whichever of the two was held).
 */
export async function reserveLoginAttempt(attempt: Attempt): Promise<LoginReservation> {
  const limits = limitsOf(attempt);
  const [addressLimit, accountLimit] = limits;
  const addressRefused = knownRefusal(addressLimit.request);
  if (addressRefused !== undefined) {
    // An address this container knows to be refused holds nothing of the account: a flood from
    // it must not keep the account's own owner out. The account is only read, for the headers.
    countRateLimitDecision(addressLimit.request.bucket, 'refused');
    const byAccount = await checkRateLimit({ ...accountLimit.request, peek: true }).catch(() => undefined);
    throw rateLimitedProblem(refusal(addressRefused, byAccount));
  }
  const outcomes = await Promise.allSettled(limits.map(({ request, limit }) => reserve(request, limit)));
  const reservations = outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : undefined));
  const failure = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failure !== undefined) {
    // One limit could not be checked (Redis down, in a cluster where the two live apart): the
    // attempt is not made, so the unit the other may hold goes back.
    await settleAll(reservations, false);
    throw failure.reason;
  }
  const [byAddress, byAccount] = reservations.map((reservation) => reservation?.decision);
  if (!combined(byAddress, byAccount).allowed) {
    const [address, account] = await settleAll(reservations, false);
    throw rateLimitedProblem(refusal(address, account));
  }
  const end = async (counts: boolean) => {
    const [address, account] = await settleAll(reservations, counts);
    return rateLimitHeaders(combined(address, account));
  };
  return { failed: () => end(true), succeeded: () => end(false), abandoned: async () => void (await settleAll(reservations, false)) };
}
