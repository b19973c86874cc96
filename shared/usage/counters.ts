// Usage counters in Redis ("temporary metrics"): per user per UTC day (what GET /usage answers)
// and per route per minute, incremented with HINCRBY, every bucket with a TTL so nothing stays
// forever, and each bucket registered in the index that the scheduled flush reads once the bucket
// has closed (shared/usage/flush.ts).
//
//   recordUsage ─┬─ slot {u:<user>}:  script: HINCRBY day bucket ×n, EXPIRE                       ┐ sent together:
//                └─ slot {usage}:     script: HINCRBY minute bucket ×n, EXPIRE, ZADD NX index, EXPIRE ┘ one round trip
//
// One script per hash slot: on Redis Cluster (and behind a sharding proxy) a script may only
// touch keys of one slot, and two commands cost ioredis and Redis far less than the eight they
// replace (this runs on every request). Both leave at once: one round trip of latency, on a
// cluster to two nodes in parallel. The requests answered in the same round of promise callbacks
// (those a socket read settles together) share them: one `{usage}` script for all their records
// and one script per user, so a container serving many requests at once sends two commands a
// round rather than two a request, and one serving one at a time (a Lambda) sends what it always
// did.

import { minuteUsageKey, usageIndexKey, userDayUsageKey } from '../keys.ts';
import { currentLogContext, inLogContext, log, type LogContext } from '../logger.ts';
import { withRedis, type RedisClient } from '../redis.ts';
import { inOneWrite } from '../redis-writes.ts';
import { defineScript } from '../redis-script.ts';

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

/** Epoch ms at which the UTC day `YYYY-MM-DD` starts. */
export function dayStartMs(day: string): number {
  return Date.parse(`${day}T00:00:00Z`);
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

export type BucketName = { kind: 'minute'; startMs: number } | { kind: 'day'; day: string; userId: string };

/**
 * The bucket an index member names, or undefined for a member not written by `minuteMember` or
 * `dayMember`. A user id may itself hold `|`: everything after the day is the user id.
 */
export function parseMember(member: string): BucketName | undefined {
  const [kind, first = '', ...rest] = member.split('|');
  if (kind === 'minute' && /^\d+$/.test(first)) return { kind, startMs: Number(first) };
  if (kind === 'day' && /^\d{4}-\d{2}-\d{2}$/.test(first) && rest.length > 0) return { kind, day: first, userId: rest.join('|') };
  return undefined;
}

/**
 * KEYS[1]: a user's day. ARGV[1]: its TTL in seconds; then field, increment pairs. Sent whole
 * (EVAL), never by its SHA: a Redis that has not seen it (restarted, failed over, flushed) would
 * answer NOSCRIPT and the retry would land after the answer has left, where a GET /usage right
 * behind the answer misses the count. It is short enough that sending it costs next to nothing.
 */
const USER_DAY_LUA = `
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1`;

/**
 * The `{usage}` part of several records, every key in that one slot. KEYS[1]: the index of
 * buckets to flush; KEYS[1 + r]: record r's minute bucket. ARGV[1]: a bucket's TTL, ARGV[2]: the
 * index's TTL; then per record: its number of counters n, the (score, member) pairs of its minute
 * and of its user's day in the index, added if absent, its route, then n counter, increment pairs.
 */
const minutesScript = defineScript(`
local a = 3
for r = 2, #KEYS do
  local n, route = tonumber(ARGV[a]), ARGV[a + 5]
  local first, last = a + 6, a + 5 + 2 * n
  for i = first, last, 2 do redis.call('HINCRBY', KEYS[r], route .. '${ROUTE_FIELD_SEPARATOR}' .. ARGV[i], ARGV[i + 1]) end
  redis.call('EXPIRE', KEYS[r], ARGV[1])
  redis.call('ZADD', KEYS[1], 'NX', ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  a = last + 1
end
return 1`);

/** The UTC day and minute of the last record: every record of the same minute reuses them. */
let lastMinute: { startMs: number; member: string; key: string; day: string; dayEndMs: number } | undefined;

function minuteOf(at: number): NonNullable<typeof lastMinute> {
  const startMs = minuteStart(at);
  if (lastMinute?.startMs !== startMs) {
    const day = utcDay(at);
    lastMinute = { startMs, member: minuteMember(startMs), key: minuteUsageKey(startMs), day, dayEndMs: dayStartMs(day) + DAY_MS };
  }
  return lastMinute;
}

/** What one usage record writes, checked: its keys, its index entries and its increments. */
interface UsageWrite {
  route: string;
  dayKey: string;
  minuteKey: string;
  /** The (score, member) pairs of the minute and of the user's day in the index. */
  index: Array<string | number>;
  /** counter, increment pairs of the counters above 0. */
  pairs: Array<string | number>;
}

/** The record of `usage`; undefined when it counts nothing; throws for a count that is not a whole number ≥ 0. */
function usageWrite(usage: Usage): UsageWrite | undefined {
  const pairs: Array<string | number> = [];
  for (const counter of USAGE_COUNTERS) {
    const value = usage[counter] ?? 0;
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`usage ${counter} must be a whole number ≥ 0, got ${value}`);
    if (value > 0) pairs.push(counter, value);
  }
  if (pairs.length === 0) return undefined;
  const at = usage.at === undefined ? Date.now() : typeof usage.at === 'number' ? usage.at : usage.at.getTime();
  const minute = minuteOf(at);
  return {
    route: usage.route,
    dayKey: userDayUsageKey(usage.userId, minute.day),
    minuteKey: minute.key,
    index: [minute.startMs + MINUTE_MS, minute.member, minute.dayEndMs, dayMember(minute.day, usage.userId)],
    pairs,
  };
}

/** One script of a usage write, and whether Redis has run it. */
interface UsageScript {
  send: (redis: RedisClient) => Promise<unknown>;
  ran: boolean;
}

/** The scripts that write the records: one per user's day (its slot) and one for the `{usage}` slot. */
function scriptsFor(records: readonly UsageWrite[]): UsageScript[] {
  const days = new Map<string, Array<string | number>>();
  const minuteKeys = [usageIndexKey()];
  const minuteArgs: Array<string | number> = [MINUTE_TTL_SECONDS, USER_DAY_TTL_SECONDS];
  for (const record of records) {
    const dayArgs = days.get(record.dayKey);
    if (dayArgs === undefined) days.set(record.dayKey, [USER_DAY_TTL_SECONDS, ...record.pairs]);
    else dayArgs.push(...record.pairs);
    minuteKeys.push(record.minuteKey);
    minuteArgs.push(record.pairs.length / 2, ...record.index, record.route, ...record.pairs);
  }
  const scripts: UsageScript[] = [];
  for (const [dayKey, dayArgs] of days) scripts.push({ send: (redis) => redis.eval(USER_DAY_LUA, 1, dayKey, ...dayArgs), ran: false });
  scripts.push({ send: (redis) => minutesScript(redis, minuteKeys, minuteArgs), ran: false });
  return scripts;
}

/**
 * Sends the scripts that have not run yet, all at once (standalone: one socket write; cluster: one
 * round trip per node, in parallel), and fails with the first failure once all have settled.
 * `withRedis` calls it a second time after a rejected password: on a cluster, the scripts of the
 * nodes that still accepted the old one have run then, and must not count twice.
 */
async function sendScripts(redis: RedisClient, scripts: readonly UsageScript[]): Promise<void> {
  const outcomes = await inOneWrite(redis, () =>
    Promise.allSettled(
      scripts
        .filter((script) => !script.ran)
        .map((script) =>
          script.send(redis).then(() => {
            script.ran = true;
          }),
        ),
    ),
  );
  const failure = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
}

/** Writes the usage counters of one record: one script per slot, sent together. */
export async function recordUsage(redis: RedisClient, usage: Usage): Promise<void> {
  const record = usageWrite(usage);
  if (record !== undefined) await sendScripts(redis, scriptsFor([record]));
}

/** The most records one script run carries (bounds the time it holds Redis: a few µs a record). */
const MAX_RECORDS_PER_RUN = 64;

let queued: Array<{ record: UsageWrite; logContext: LogContext | undefined }> = [];

function sendQueued(): void {
  const batch = queued;
  queued = [];
  for (let start = 0; start < batch.length; start += MAX_RECORDS_PER_RUN) {
    const run = batch.slice(start, start + MAX_RECORDS_PER_RUN);
    const scripts = scriptsFor(run.map(({ record }) => record));
    withRedis((redis) => sendScripts(redis, scripts)).catch((error: unknown) => {
      // Each request's own line, with its own request id, as if it had been sent alone.
      for (const { record, logContext } of run) inLogContext(logContext, () => log.warn('usage not counted', { err: error, usageRoute: record.route }));
    });
  }
}

/**
 * Counts usage without making the response wait for it: the commands leave before the response
 * does (the records of the requests answered in the same round of promise callbacks together: one
 * script per user and one for the minute buckets) and their reply is not awaited, so counting adds
 * no round trip to the request (a warm cached chat request stays at two), and a GET /usage sent
 * after the response arrived sees the count. A failure is logged.
 * What this gives up: a container that dies in the instant between sending and Redis applying
 * loses that request's count; and when the connection is not ready (reconnecting, or made anew
 * after this request found Redis unreachable), the commands wait for it and leave after the answer.
 */
export function countUsageInBackground(usage: Usage): void {
  let record: UsageWrite | undefined;
  try {
    record = usageWrite(usage);
  } catch (error) {
    log.warn('usage not counted', { err: error, usageRoute: usage.route });
    return;
  }
  if (record === undefined) return;
  queued.push({ record, logContext: currentLogContext() });
  // Behind the promise callbacks already queued, so the requests a socket read answered at the
  // same depth share it, and ahead of the answer this request is about to return (a
  // process.nextTick would run after it, and a runtime that hands the answer over at once, as
  // serverless-offline's workers do, would let a client read its usage before the count left).
  if (queued.length === 1) queueMicrotask(sendQueued);
}

/** The counters held in a bucket's hash fields; zero for those never counted, other fields ignored. */
export function toCounts(hash: Record<string, string>): UsageCounts {
  const counts = {} as UsageCounts;
  for (const counter of USAGE_COUNTERS) counts[counter] = Number(hash[counter] ?? 0);
  return counts;
}

/** A user's counters for one UTC day; zeros when nothing was counted. */
export async function readUserDay(redis: RedisClient, userId: string, day: string): Promise<UsageCounts> {
  return toCounts(await redis.hgetall(userDayUsageKey(userId, day)));
}
