// Usage counters in Redis ("temporary metrics"): per user per UTC day (what GET /usage answers)
// and per route per minute, incremented with HINCRBY, every bucket with a TTL so nothing stays
// forever, and each bucket registered in the index that the scheduled flush reads once the bucket
// has closed (shared/usage/flush.ts).
//
//   recordUsage ─┬─ slot {u:<user>}:  script: HINCRBY day bucket ×n, EXPIRE                       ┐ sent together:
//                └─ slot {usage}:     script: HINCRBY minute bucket ×n, EXPIRE, ZADD NX index, EXPIRE ┘ one round trip
//
// One script per hash slot: on Redis Cluster a script may only touch keys of one slot, and two
// commands cost ioredis and Redis far less than the eight they replace (this runs on every
// request). `recordUsage` writes both at once: one round trip of latency, on a cluster to two
// nodes in parallel. `queueUsage` appends them to a caller's own pipeline instead, on standalone
// Redis only.

import { minuteUsageKey, usageIndexKey, userDayUsageKey } from '../keys.ts';
import { log } from '../logger.ts';
import { inOneWrite, withRedis, type RedisClient } from '../redis.ts';
import { defineScript, type Script } from '../redis-script.ts';

export const USAGE_COUNTERS = ['requests', 'inputTokens', 'outputTokens', 'cacheHits'] as const;
export type UsageCounter = (typeof USAGE_COUNTERS)[number];
export type UsageCounts = Record<UsageCounter, number>;

export interface Usage extends Partial<UsageCounts> {
  userId: string;
  /** The route as logged, e.g. `POST /chat`. */
  route: string;
  /** When it happened; default now. */
  at?: Date | number;
}

/**
 * A user's day stays in Redis for 8 days after its last write and a minute bucket for 2 days:
 * the flush normally moves them out within a minute of closing; these bounds only matter when
 * the flush has been failing that long (then the oldest buckets are lost, by design).
 */
export const USER_DAY_TTL_SECONDS = 8 * 86_400;
export const MINUTE_TTL_SECONDS = 2 * 86_400;

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** Separates the route from the counter in a minute bucket's field names (routes have no `|`). */
export const ROUTE_FIELD_SEPARATOR = '|';

/** `YYYY-MM-DD` of the UTC day containing `ms`. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function minuteStart(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

// Index members name their bucket: `minute|<start ms>` or `day|<YYYY-MM-DD>|<user id>`.

export function minuteMember(startMs: number): string {
  return `minute|${startMs}`;
}

export function dayMember(day: string, userId: string): string {
  return `day|${day}|${userId}`;
}

/** KEYS[1]: a user's day. ARGV[1]: its TTL in seconds; then field, increment pairs. */
const userDayScript = defineScript(`
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1`);

/**
 * KEYS[1]: a minute bucket; KEYS[2]: the index of buckets to flush. ARGV[1]: the bucket's TTL,
 * ARGV[2]: the index's TTL, ARGV[3..6]: the (score, member) pairs of the minute and of the user's
 * day in the index, added if absent; then field, increment pairs.
 */
const minuteScript = defineScript(`
for i = 7, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[4], ARGV[5], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1`);

interface ScriptCall {
  script: Script;
  keys: string[];
  args: Array<string | number>;
}

/** The two script calls of one usage record: the user's slot first, then the `{usage}` slot. */
function usageScripts(usage: Usage): ScriptCall[] {
  const at = usage.at === undefined ? Date.now() : typeof usage.at === 'number' ? usage.at : usage.at.getTime();
  const counts = USAGE_COUNTERS.flatMap((counter) => {
    const value = usage[counter] ?? 0;
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`usage ${counter} must be a whole number ≥ 0, got ${value}`);
    return value > 0 ? [[counter, value] as const] : [];
  });
  if (counts.length === 0) return [];
  const day = utcDay(at);
  const dayStartMs = Date.parse(`${day}T00:00:00Z`);
  const minuteMs = minuteStart(at);
  return [
    {
      script: userDayScript,
      keys: [userDayUsageKey(usage.userId, day)],
      args: [USER_DAY_TTL_SECONDS, ...counts.flat()],
    },
    {
      script: minuteScript,
      keys: [minuteUsageKey(minuteMs), usageIndexKey()],
      args: [
        MINUTE_TTL_SECONDS,
        USER_DAY_TTL_SECONDS,
        minuteMs + MINUTE_MS,
        minuteMember(minuteMs),
        dayStartMs + DAY_MS,
        dayMember(day, usage.userId),
        ...counts.flatMap(([counter, value]) => [`${usage.route}${ROUTE_FIELD_SEPARATOR}${counter}`, value]),
      ],
    },
  ];
}

/**
 * Writes the usage counters: both scripts written at once, one round trip of latency (on a
 * cluster, one per node, in parallel).
 */
export async function recordUsage(redis: RedisClient, usage: Usage): Promise<void> {
  await inOneWrite(redis, () => Promise.all(usageScripts(usage).map(({ script, keys, args }) => script(redis, keys, args))));
}

/**
 * Counts usage without making the response wait for it: the commands leave in this tick and their
 * reply is not awaited, so counting adds no round trip to the request (a warm cached chat request
 * stays at two). A failure is logged. What this gives up: a container that dies in the instant
 * between sending and Redis applying loses that one request's count.
 */
export function countUsageInBackground(usage: Usage): void {
  withRedis((redis) => recordUsage(redis, usage)).catch((error: unknown) => {
    log.warn('usage not counted', { err: error, usageRoute: usage.route });
  });
}

function toCounts(hash: Record<string, string>): UsageCounts {
  const counts = {} as UsageCounts;
  for (const counter of USAGE_COUNTERS) counts[counter] = Number(hash[counter] ?? 0);
  return counts;
}

/** A user's counters for one UTC day; zeros when nothing was counted. */
export async function readUserDay(redis: RedisClient, userId: string, day: string): Promise<UsageCounts> {
  return toCounts(await redis.hgetall(userDayUsageKey(userId, day)));
}
