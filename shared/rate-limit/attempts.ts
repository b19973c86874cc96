// Rate-limited attempts whose outcome decides whether they count: a login counts only when it
// fails, a registration only when the email is taken. Checking the limit before the attempt and
// charging it after a failure lets a burst of concurrent attempts through (each passes the check
// before any failure is charged), so an attempt holds a unit while it runs:
//
//   reserve ─ refused: the limit is spent by failures → 429, Retry-After: until a unit refills
//        │            only attempts in flight hold it → 429, Retry-After: 1 (they end within a second)
//        └ admitted: one unit held, the attempt noted as in flight (its id, until it ends)
//   settle(counts) ─ true: the unit stays spent (a failure)   false: the unit is given back (a success)
//
// A burst gets exactly the limit, and honest attempts are never refused for long because of other
// honest attempts running at the same moment: those refusals say "in a second". An attempt whose
// container dies before it settles stays counted (the safe side); its in-flight note expires.
// The units are the GCRA state of gcra.ts (same keys, same clock, same arithmetic).

import { randomUUID } from 'node:crypto';
import type { RateLimitPolicy } from '../config.ts';
import { log } from '../logger.ts';
import { rateLimitAttemptsKey, rateLimitKeys } from '../keys.ts';
import { withRedis } from '../redis.ts';
import { defineScript } from '../redis-script.ts';
import { forgetBlock, recallBlock, rememberBlock } from './blocked.ts';
import { withinTime } from './deadline.ts';
import { intervalUs, LUA_NOW_US } from './gcra.ts';
import { DEFAULT_CHECK_TIMEOUT_MS, decisionOf, namesOf, oneUnitWaitMs, type RateLimitDecision, type RateLimitRefusal, type RateLimitRequest } from './limiter.ts';

/**
 * How long an attempt that never settles (its container died, or it failed before settling) is
 * still taken as in flight: the functions' time-out (serverless.yml), which no attempt outlives.
 */
const IN_FLIGHT_MS = 10_000;

/**
 * KEYS: the TAT keys of the policies, then the key of the attempts in flight (a sorted set of
 * attempt ids by expiry). ARGV[1]: the attempt's id; ARGV[2]: how long it stays in flight (ms);
 * then per policy its limit and interval (µs).
 * Reply: 1 when admitted (the unit spent, the attempt in flight), else 0; then the number of
 * other attempts in flight; then per policy the µs until its quota is full again.
 */
const reserveScript = defineScript(`${LUA_NOW_US}local inFlightKey = KEYS[#KEYS]
redis.call('ZREMRANGEBYSCORE', inFlightKey, '-inf', now)
local n = #KEYS - 1
local admitted = 1
local tats = {}
for i = 1, n do
  local tat = tonumber(redis.pcall('GET', KEYS[i])) or now
  if tat < now then tat = now end
  tats[i] = tat
  if tat + (1 - ARGV[1 + 2 * i]) * ARGV[2 + 2 * i] > now then admitted = 0 end
end
local reply = { admitted, redis.call('ZCARD', inFlightKey) }
for i = 1, n do
  local tat = tats[i]
  if admitted == 1 then
    tat = tat + ARGV[2 + 2 * i]
    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', string.format('%d', math.ceil((tat - now) / 1000)))
  end
  reply[2 + i] = tat - now
end
if admitted == 1 then
  redis.call('ZADD', inFlightKey, now + ARGV[2] * 1000, ARGV[1])
  redis.call('PEXPIRE', inFlightKey, ARGV[2])
end
return reply
`);

/**
 * KEYS: as reserveScript. ARGV[1]: the attempt's id; ARGV[2]: 1 when it counts (its unit stays spent),
 * 0 to give the unit back; then per policy its interval (µs). An attempt no longer in flight
 * (settled already, or expired) gives nothing back: a unit is returned at most once.
 * Reply: per policy the µs until its quota is full again.
 */
const settleScript = defineScript(`${LUA_NOW_US}local ended = redis.call('ZREM', KEYS[#KEYS], ARGV[1]) == 1
local reply = {}
for i = 1, #KEYS - 1 do
  local tat = tonumber(redis.pcall('GET', KEYS[i])) or now
  if ended and ARGV[2] == '0' then
    tat = tat - ARGV[2 + i]
    if tat > now then
      redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', string.format('%d', math.ceil((tat - now) / 1000)))
    else
      redis.call('DEL', KEYS[i])
    end
  end
  if tat < now then tat = now end
  reply[i] = tat - now
end
return reply
`);

export interface AttemptReservation {
  /** Admitted (a unit held until `settle`), or refused (nothing held; `settle` does nothing). */
  decision: RateLimitDecision;
  /** Ends the attempt: `counts` keeps its unit spent, else gives it back. The limit's state after. */
  settle(counts: boolean): Promise<RateLimitDecision>;
}

interface Target {
  request: RateLimitRequest;
  keys: string[];
  id: string;
}

/** Per policy its limit and interval (µs): the reservation script's arguments. */
function policyArgs(policies: readonly RateLimitPolicy[]): number[] {
  return policies.flatMap((policy) => [policy.limit, intervalUs(policy)]);
}

/** The refusal this container remembers for the identity (see blocked.ts), if any: no round trip. */
export function knownRefusal({ bucket, identity }: RateLimitRequest): RateLimitRefusal | undefined {
  return recallBlock(bucket, identity, 1);
}

/** Holds one unit of the limit for an attempt, or refuses it; bounded in time as a check is. */
export async function reserveAttempt(request: RateLimitRequest): Promise<AttemptReservation> {
  const { bucket, identity, policies } = request;
  const remembered = knownRefusal(request);
  if (remembered !== undefined) return refused(remembered);
  const keys = [...rateLimitKeys(identity, bucket, namesOf(policies)), rateLimitAttemptsKey(identity, bucket)];
  const target: Target = { request, keys, id: randomUUID() };
  let reply: number[];
  try {
    reply = (await withRedis((client) =>
      withinTime(client, reserveScript(client, keys, [target.id, IN_FLIGHT_MS, ...policyArgs(policies)]), DEFAULT_CHECK_TIMEOUT_MS),
    )) as number[];
  } catch (error) {
    // Given up on, the reservation may still run, late: ended as a success, so that it holds nothing.
    void settle(target, false, undefined);
    throw error;
  }
  const [admitted = 0, inFlight = 0, ...untilFull] = reply;
  if (admitted === 1) {
    const decision = decisionOf(true, untilFull, 0, policies, 1);
    return { decision, settle: (counts) => settle(target, counts, decision) };
  }
  // Waits counted as if the attempts in flight succeed and give their units back: they end within
  // a second, and only failures should keep a client out for long.
  const untilFullByFailures = policies.map((policy, i) => Math.max(0, (untilFull[i] ?? 0) - inFlight * intervalUs(policy)));
  const decision = decisionOf(false, untilFullByFailures, 0, policies, 1);
  if (decision.retryAfterMs === 0) return refused(soon(decision));
  rememberBlock(bucket, identity, decision, 1, oneUnitWaitMs(untilFullByFailures, 0, policies));
  return refused(decision);
}

function refused(decision: RateLimitDecision): AttemptReservation {
  return { decision, settle: async () => decision };
}

/** A refusal by attempts in flight only: they end within a second, and with them the wait. */
function soon(decision: RateLimitRefusal): RateLimitRefusal {
  return {
    ...decision,
    retryAfterMs: 1000,
    // None left now (the attempts in flight hold them), more in a second.
    states: decision.states.map((state) => ({ ...state, remaining: 0, moreInSeconds: 1 })),
  };
}

/**
 * Settles a held attempt. Best effort: a settle that fails leaves the unit spent (the safe side)
 * until it refills, and the attempt in flight until its note expires; the state is then the
 * reservation's (undefined: one given up on, whose state nobody reads).
 */
async function settle<D extends RateLimitDecision | undefined>({ request, keys, id }: Target, counts: boolean, reserved: D): Promise<RateLimitDecision | D> {
  const { bucket, identity, policies } = request;
  try {
    const reply = (await withRedis((client) =>
      withinTime(client, settleScript(client, keys, [id, counts ? 1 : 0, ...policies.map(intervalUs)]), DEFAULT_CHECK_TIMEOUT_MS),
    )) as number[];
    if (!counts) forgetBlock(bucket, identity);
    return decisionOf(true, reply, 0, policies, 0);
  } catch (error) {
    if (reserved !== undefined) log.warn('rate limit: an attempt could not be settled', { bucket, err: error });
    return reserved;
  }
}
