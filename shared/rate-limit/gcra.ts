// The rate-limit check as one Lua script: GCRA (generic cell rate algorithm) over every policy of
// a check at once, with the time read from Redis `TIME`, so a check is one round trip, a refused
// check spends nothing from any policy, and the callers' clocks do not matter.
//
// GCRA in one paragraph: a policy of `limit` units per `window` emits one unit every
// `interval = window / limit`. Each key stores the theoretical arrival time (TAT): the instant at
// which everything admitted so far would have been paid for at that pace. A check of `cost`
// units fits when `TAT + cost·interval - window <= now`; admitting it moves TAT forward by
// `cost·interval`. Once `TAT <= now` the quota is full and the key says nothing, so it expires
// exactly at TAT.
//
//        now                              now + window
//   ──────┼───────────────────────────────────┼──────▶ time
//         ├─ TAT - now: spent, refilling ─┤
//         after 3 of 5 units: ███████████████░░░░░░░░░  2 left; a 3rd would push TAT past now + window
//
// Why GCRA rather than a sliding window: exact and smooth (no window edge where twice the limit
// passes, no estimate from two counters, no log of timestamps growing with the limit), one small
// number per policy whatever its limit, a key that expires exactly when it stops carrying
// information, and a cost per check for free (docs/rate-limiting.md says more).
//
// Precision: TAT is a whole number of microseconds (since an epoch close to today, so that it
// stays far below 2^53), and the interval is rounded down to whole microseconds, the window being
// taken as `limit · interval`. All arithmetic in the script is then on whole numbers, exact in a
// double: a burst in one instant admits exactly `limit` units, and the stored numbers format as
// integers (`%d`), several times cheaper in Redis than a fractional `%.17g`. The window is
// shortened by less than `limit` µs (none at all when it divides evenly: 20/1m, 500/1d, 5/500ms).

// One script run may carry several checks (those issued in the same event-loop turn, see
// batch.ts): each is decided and spent on its own, one after the other, inside one atomic run
// and under one `TIME`, so sharing a run changes nothing for any check but the cost of the trip.

import type { RateLimitPolicy } from '../config.ts';
import type { RedisClient } from '../redis.ts';

/**
 * Lua that sets `now` to the server's clock in whole µs since an epoch close to today: the time
 * base of every TAT, shared by every script that reads or writes one (this one, attempts.ts).
 */
export const LUA_NOW_US = `
local clock = redis.call('TIME')
local now = (clock[1] - 1700000000) * 1000000 + clock[2]
`;

/**
 * KEYS: the TAT keys of every check, check after check (the keys of a check share a hash tag;
 * in a cluster, a run carries only checks of one tag).
 * ARGV[1]: the number of checks; ARGV[2]: the number of distinct policy lists among them; then
 * per list: its number of policies, then per policy its limit and interval in whole µs; then per
 * check: the index of its list (from 1) and its cost, a whole number, negative to evaluate
 * `-cost` without spending. (Few arguments per check: each costs a write here and a parse there.)
 * Reply per check: 1 when admitted, else 0; then per policy the µs until its quota is full again
 * (after spending, when admitted).
 *
 * Redis ≥ 5 replicates scripts by their effects, so writing after TIME needs no
 * `redis.replicate_commands()`. A key that holds anything but a number (never written by this
 * script) reads as empty and is overwritten, rather than failing the run for every check in it.
 */
const GCRA_SCRIPT = `${LUA_NOW_US}
local format, ceil = string.format, math.ceil
local lists, a = {}, 3
for j = 1, ARGV[2] do
  local list = {}
  for i = 1, 2 * ARGV[a] do list[i] = ARGV[a + i] + 0 end
  lists[j] = list
  a = a + 1 + #list
end
local reply, r, k = {}, 0, 0
local tats = {}
for _ = 1, ARGV[1] do
  local list, cost = lists[ARGV[a] + 0], ARGV[a + 1] + 0
  a = a + 2
  local spend = cost > 0
  if cost < 0 then cost = -cost end
  local n = #list / 2
  local allowed = 1
  for i = 1, n do
    local tat = tonumber(redis.pcall('GET', KEYS[k + i])) or now
    if tat < now then tat = now end
    if tat + (cost - list[2 * i - 1]) * list[2 * i] > now then allowed = 0 end
    tats[i] = tat
  end
  r = r + 1
  reply[r] = allowed
  spend = spend and allowed == 1
  for i = 1, n do
    local tat = tats[i]
    if spend then
      tat = tat + cost * list[2 * i]
      redis.call('SET', KEYS[k + i], format('%d', tat), 'PX', format('%d', ceil((tat - now) / 1000)))
    end
    r = r + 1
    reply[r] = tat - now
  end
  k = k + n
end
return reply
`;

/** One check as the script sees it. */
export interface GcraCheck {
  keys: readonly string[];
  policies: readonly RateLimitPolicy[];
  cost: number;
  peek: boolean;
}

const COMMAND = 'tcRateLimitGcra';

type GcraCommand = (...args: Array<string | number>) => Promise<number[]>;

const prepared = new WeakSet<RedisClient>();

/** Per configured policy list: its part of the script's arguments, built once. */
const listArgs = new WeakMap<readonly RateLimitPolicy[], string[]>();

function argsOfList(policies: readonly RateLimitPolicy[]): string[] {
  let args = listArgs.get(policies);
  if (args === undefined) {
    args = [String(policies.length)];
    for (const policy of policies) args.push(String(policy.limit), String(intervalUs(policy)));
    listArgs.set(policies, args);
  }
  return args;
}

function prepare(client: RedisClient): void {
  client.defineCommand(COMMAND, { lua: GCRA_SCRIPT });
  prepared.add(client);
}

/**
 * Runs the script for `checks` on `client` by EVALSHA; ioredis sends the full script once per
 * connection and again on NOSCRIPT (a Redis restart or SCRIPT FLUSH), so callers never see that
 * error. The reply holds, check after check, 1 + (number of policies) numbers.
 */
export function runGcra(client: RedisClient, checks: readonly GcraCheck[]): Promise<number[]> {
  if (!prepared.has(client)) prepare(client);
  const keys: string[] = [];
  const lists: Array<readonly RateLimitPolicy[]> = [];
  const perCheck: number[] = [];
  for (const check of checks) {
    for (const key of check.keys) keys.push(key);
    // A run usually carries one route, hence one list: a linear search beats a Map here.
    let list = lists.indexOf(check.policies);
    if (list === -1) list = lists.push(check.policies) - 1;
    perCheck.push(list + 1, check.peek ? -check.cost : check.cost);
  }
  const args: Array<string | number> = [keys.length, ...keys, checks.length, lists.length];
  for (const list of lists) for (const arg of argsOfList(list)) args.push(arg);
  for (const arg of perCheck) args.push(arg);
  const command = (client as unknown as Record<string, GcraCommand>)[COMMAND]!;
  return command.apply(client, args);
}

/** The policy's interval in whole µs (at least 1): what the script works with. */
export function intervalUs(policy: RateLimitPolicy): number {
  return Math.max(1, Math.floor((policy.windowMs * 1000) / policy.limit));
}

/** Units left in a policy, from its µs until full. */
function unitsLeft(policy: RateLimitPolicy, untilFullUs: number): number {
  return Math.max(0, Math.floor(policy.limit - untilFullUs / intervalUs(policy)));
}

export interface PolicyState {
  policy: RateLimitPolicy;
  /** Units left after this request (or, when refused or peeking, left now). */
  remaining: number;
  /** Whole seconds until one more unit is available; 0 when the quota is full. */
  moreInSeconds: number;
  /** ms until the quota is full again: what the state is derived from. */
  untilFullMs: number;
}

/**
 * A policy's state from its µs until full. GCRA refills one unit every interval, so more quota
 * comes long before the whole of it: `moreInSeconds` is the wait for the next unit (the RateLimit
 * field's `t`), which for a refused request of one unit is its Retry-After.
 */
export function policyState(policy: RateLimitPolicy, untilFullUs: number): PolicyState {
  const remaining = unitsLeft(policy, untilFullUs);
  const nextUnitUs = remaining >= policy.limit ? 0 : untilFullUs - (policy.limit - remaining - 1) * intervalUs(policy);
  return { policy, remaining, moreInSeconds: Math.ceil(Math.max(0, nextUnitUs) / 1_000_000), untilFullMs: untilFullUs / 1000 };
}

/** µs until `cost` units fit in a policy, from its µs until full (0 when they fit now). */
export function waitUs(policy: RateLimitPolicy, untilFullUs: number, cost: number): number {
  const interval = intervalUs(policy);
  // More than the whole quota never fits: answer "a window" rather than a wait that would not help.
  if (cost > policy.limit) return policy.limit * interval;
  return Math.max(0, untilFullUs + (cost - policy.limit) * interval);
}
