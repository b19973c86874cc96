// The rate-limit check as one Lua script: GCRA (generic cell rate algorithm) over every policy of
// a request at once, with the time read from Redis `TIME`, so one check is one round trip, a
// refused request spends nothing from any policy, and the callers' clocks do not matter.
//
// GCRA in one paragraph: a policy of `limit` units per `window` emits one unit every
// `interval = window / limit`. Each key stores the theoretical arrival time (TAT): the instant at
// which everything admitted so far would have been paid for at that pace. A request of `cost`
// units fits when `TAT + cost·interval - window <= now`, and admitting it moves TAT forward by
// `cost·interval`. Nothing is stored once `TAT <= now` (the quota is full), which is why the key
// can expire at TAT.
//
//   now ───┬───────────────── window ─────────────────┐
//          TAT(after 3 of 5)  ▲ each unit pushes TAT by one interval; refused once TAT > now + window - cost·interval
//
// Precision: TAT is stored in *intervals* since an epoch close to today, not in microseconds, so
// admitting a request adds a small whole number to it (exact in a double) and a burst of N
// requests in one instant admits exactly `limit` of them, however the window divides.

import type { RedisClient } from '../redis.ts';

/**
 * KEYS[i]: the TAT of policy i, all under one hash tag.
 * ARGV[1]: cost; ARGV[2]: '1' to evaluate without consuming; then per policy: limit, window in µs.
 * Reply: allowed (1/0), µs until `cost` fits, µs until 1 unit fits, then per policy the
 * remaining units and the µs until its quota is full again.
 *
 * Redis ≥ 5 replicates scripts by their effects, so writing after TIME needs no
 * `redis.replicate_commands()`.
 */
export const GCRA_SCRIPT = `
local clock = redis.call('TIME')
local now_us = (tonumber(clock[1]) - 1700000000) * 1000000 + tonumber(clock[2])
local cost = tonumber(ARGV[1])
local consume = ARGV[2] ~= '1' and cost > 0
local n = #KEYS
local limits, intervals, nows, tats = {}, {}, {}, {}
local wait, block = 0, 0
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local interval = tonumber(ARGV[2 + 2 * i]) / limit
  local now = now_us / interval
  local stored = redis.call('GET', KEYS[i])
  local tat = stored and tonumber(stored) or now
  if tat < now then tat = now end
  local fits_in = (tat + cost - limit - now) * interval
  -- more than the whole quota never fits: say "a window" rather than a wait that would not help
  if cost > limit and fits_in < limit * interval then fits_in = limit * interval end
  if fits_in > wait then wait = fits_in end
  local one_in = (tat + 1 - limit - now) * interval
  if one_in > block then block = one_in end
  limits[i], intervals[i], nows[i], tats[i] = limit, interval, now, tat
end
local allowed = wait <= 0
local reply = { allowed and 1 or 0, math.ceil(wait), math.ceil(block) }
for i = 1, n do
  local tat, now = tats[i], nows[i]
  if allowed and consume then
    tat = tat + cost
    -- the key says nothing once TAT has passed: it expires then
    redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', math.ceil((tat - now) * intervals[i] / 1000))
  end
  local remaining = math.floor(now + limits[i] - tat + 1e-9)
  if remaining < 0 then remaining = 0 end
  reply[2 + 2 * i] = remaining
  reply[3 + 2 * i] = math.ceil((tat - now) * intervals[i])
end
return reply
`;

const COMMAND = 'tcRateLimitGcra';

type GcraCommand = (keysCount: number, ...args: Array<string | number>) => Promise<number[]>;

const prepared = new WeakSet<RedisClient>();

/**
 * Runs the script on `client` by EVALSHA; ioredis sends the full script once per connection and
 * again on NOSCRIPT (a Redis restart or SCRIPT FLUSH), so callers never see that error.
 */
export function runGcra(client: RedisClient, keys: string[], args: Array<string | number>): Promise<number[]> {
  if (!prepared.has(client)) {
    client.defineCommand(COMMAND, { lua: GCRA_SCRIPT });
    prepared.add(client);
  }
  const command = (client as unknown as Record<string, GcraCommand>)[COMMAND]!;
  return command.call(client, keys.length, ...keys, ...args);
}
