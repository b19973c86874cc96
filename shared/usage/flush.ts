// Moves closed usage buckets out of Redis into durable sinks, exactly once, with any number of
// flushers running and any of them dying at any point.
//
//   index (ZRANGEBYSCORE closed) ─ claim ─ sink 1 ─ mark sent 1 ─ sink 2 ─ mark sent 2 ─ release ─ ZREM index
//
// - claim (one script, the bucket's slot): RENAME the bucket to its `:claimed` key and stamp it
//   with the claimer and Redis's time, and, once, with this first claim (`@firstClaim`: its
//   time and claimer, unique even for two claims in one millisecond), which names the bucket's
//   records in `id`. A fresh claim of another
//   flusher makes us skip the bucket; a claim older than `staleClaimMs` belonged to a flusher that
//   died or froze: we take it over, counters untouched. RENAME moves the whole hash at once: no
//   increment can fall in between.
// - sinks: a bucket goes to every sink that has not yet accepted it; after each sink accepts,
//   `@sent:<sink>` is set on the claimed key, so a take-over after a crash resends only to the
//   sinks that never confirmed. A sink that fails makes us give our claims back at once
//   (`@claimedAt` = 0) for the next run to retry.
// - release (one script): DEL the claimed key, only if we still hold it.
//
//   flusher A:  claim ──── sink ──── (dies)
//   flusher B:                  claim → "taken"        ...  claim (≥ staleClaimMs later) → taken over → sink → release
//
// What remains at-least-once: a flusher that dies after a sink accepted a bucket and before it
// could record that (`@sent`), which is one Redis command later. Each record carries an `id` so a
// consumer can drop such a duplicate: the same when a claim is taken over and sent again, another
// when a late increment re-creates a flushed bucket and the next run flushes it (a record of its
// own, to be added to the first, never dropped as a duplicate of it). A flusher never sends a
// bucket whose claim is older than half the stale time, so a slow flusher cannot race the one that
// takes its claims over.

import { randomUUID } from 'node:crypto';
import { defineScript, LUA_NOW_MS } from '../redis-script.ts';
import { claimedUsageKey, minuteUsageKey, usageIndexKey, userDayUsageKey } from '../keys.ts';
import { log } from '../logger.ts';
import { monotonicMs } from '../monotonic-clock.ts';
import type { RedisClient } from '../redis.ts';
import { dayStartMs, parseMember, ROUTE_FIELD_SEPARATOR, toCounts, USAGE_COUNTERS, type BucketName, type UsageCounter, type UsageCounts } from './counters.ts';

/**
 * `bucket` names what is counted (a minute, a user's day); `id` names this record: a record sent
 * twice keeps its id, and the records of one bucket with different ids add up.
 */
export type UsageRecord =
  | { kind: 'route-minute'; id: string; bucket: string; startMs: number; endMs: number; route: string; counts: UsageCounts }
  | { kind: 'user-day'; id: string; bucket: string; startMs: number; endMs: number; userId: string; day: string; counts: UsageCounts };

/** Where flushed usage goes. `accept` resolves once the records are durably taken. */
export interface UsageSink {
  /** Stable across runs: it names the `@sent:<name>` mark. */
  readonly name: string;
  accept(records: UsageRecord[]): Promise<void>;
}

export interface FlushOptions {
  sinks: UsageSink[];
  /** Unique per run; default a random id. */
  claimer?: string;
  /** "Now" for deciding which buckets have closed (tests); default the clock. */
  nowMs?: number;
  /** A bucket is flushed this long after it closed, so late increments still land in it. */
  graceMs?: number;
  /** A claim this old is taken over; keep it well above the flush function's time-out. */
  staleClaimMs?: number;
  /** Buckets claimed and sent together. */
  batchSize?: number;
  /** Buckets handled by one run at most (the rest wait for the next run). */
  maxBuckets?: number;
  /** Do not start a new batch after this instant (epoch ms). */
  deadlineMs?: number;
}

export interface FlushReport {
  /** Buckets sent to every sink and deleted. */
  flushed: number;
  /** Records handed to the sinks. */
  records: number;
  /** Buckets held by another live flusher. */
  taken: number;
  /** Index entries whose bucket had already gone (flushed by another run, or expired). */
  vanished: number;
  /** Buckets given back because a sink failed. */
  returned: number;
}

const DEFAULT_GRACE_MS = 10_000;
const DEFAULT_STALE_CLAIM_MS = 120_000;

/**
 * KEYS[1] bucket, KEYS[2] its claimed key. ARGV[1] claimer, ARGV[2] stale after (ms).
 * Reply: {'claimed', claimedAt, field, value, ...} | {'taken'} | {'empty'}.
 */
const claimScript = defineScript(`${LUA_NOW_MS}
local claimed_at = redis.call('HGET', KEYS[2], '@claimedAt')
if claimed_at then
  if now - tonumber(claimed_at) < tonumber(ARGV[2]) then return {'taken'} end
  -- its flusher died or froze: take the claim over, counters and sent marks untouched
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[2], '@firstClaim', now .. '/' .. ARGV[1])
else
  return {'empty'}
end
redis.call('HSET', KEYS[2], '@claimer', ARGV[1], '@claimedAt', now)
local reply = redis.call('HGETALL', KEYS[2])
table.insert(reply, 1, now)
table.insert(reply, 1, 'claimed')
return reply
`);

/** KEYS[1] claimed key. ARGV[1] claimer, then field/value pairs to set if we still hold it. */
const markScript = defineScript(`
if redis.call('HGET', KEYS[1], '@claimer') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
`);

/** KEYS[1] claimed key. ARGV[1] claimer. Deletes the bucket if we still hold it. */
const releaseScript = defineScript(`
if redis.call('HGET', KEYS[1], '@claimer') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`);

interface Bucket {
  member: string;
  name: BucketName;
  score: number;
  key: string;
  claimedKey: string;
}

interface Claimed extends Bucket {
  /**
   * monotonicMs() when the claim's reply came: its age is measured on this process's clock alone,
   * never this clock against Redis's (the claim itself is stamped with Redis TIME, for the others).
   */
  claimedAtLocalMs: number;
  fields: Map<string, string>;
  records: UsageRecord[];
}

function bucketOf(member: string, score: number): Bucket | undefined {
  const name = parseMember(member);
  if (name === undefined) return undefined;
  const key = name.kind === 'minute' ? minuteUsageKey(name.startMs) : userDayUsageKey(name.userId, name.day);
  return { member, name, score, key, claimedKey: claimedUsageKey(key) };
}

function isCounter(name: string): name is UsageCounter {
  return (USAGE_COUNTERS as readonly string[]).includes(name);
}

/** A minute bucket's counter fields (`<route>|<counter>`) by route; claim stamps and sent marks left out. */
function countersByRoute(fields: Map<string, string>): Map<string, Record<string, string>> {
  const byRoute = new Map<string, Record<string, string>>();
  for (const [field, value] of fields) {
    const at = field.lastIndexOf(ROUTE_FIELD_SEPARATOR);
    const counter = field.slice(at + 1);
    if (at <= 0 || !isCounter(counter)) continue;
    const route = field.slice(0, at);
    const routeFields = byRoute.get(route) ?? {};
    routeFields[counter] = value;
    byRoute.set(route, routeFields);
  }
  return byRoute;
}

/** The records of a claimed bucket: one per route for a minute, one for a user's day. */
function recordsOf(bucket: Bucket, fields: Map<string, string>): UsageRecord[] {
  const { name } = bucket;
  // A claim made before this stamp existed has only its latest claim.
  const firstClaim = `@${fields.get('@firstClaim') ?? `${fields.get('@claimedAt')}/${fields.get('@claimer')}`}`;
  if (name.kind === 'day') {
    const startMs = dayStartMs(name.day);
    const counts = toCounts(Object.fromEntries(fields));
    return [{ kind: 'user-day', id: `${bucket.member}${firstClaim}`, bucket: bucket.member, startMs, endMs: bucket.score, userId: name.userId, day: name.day, counts }];
  }
  return [...countersByRoute(fields)].map(([route, routeFields]) => ({
    kind: 'route-minute',
    id: `${bucket.member}${ROUTE_FIELD_SEPARATOR}${route}${firstClaim}`,
    bucket: bucket.member,
    startMs: name.startMs,
    endMs: bucket.score,
    route,
    counts: toCounts(routeFields),
  }));
}

async function claim(redis: RedisClient, bucket: Bucket, claimer: string, staleClaimMs: number): Promise<Claimed | 'taken' | 'empty'> {
  const reply = (await claimScript(redis, [bucket.key, bucket.claimedKey], [claimer, staleClaimMs])) as Array<string | number>;
  if (reply[0] !== 'claimed') return reply[0] as 'taken' | 'empty';
  const fields = new Map<string, string>();
  for (let i = 2; i < reply.length; i += 2) fields.set(String(reply[i]), String(reply[i + 1]));
  return { ...bucket, claimedAtLocalMs: monotonicMs(), fields, records: recordsOf(bucket, fields) };
}

/**
 * Drops the index entry of a bucket that is gone, then puts it back if an increment arrived
 * meanwhile (a late write re-creates the bucket; its ZADD NX may have run before our ZREM).
 */
async function forget(redis: RedisClient, bucket: Bucket): Promise<void> {
  const index = usageIndexKey();
  await redis.zrem(index, bucket.member);
  const [live, claimed] = await Promise.all([redis.exists(bucket.key), redis.exists(bucket.claimedKey)]);
  if (live + claimed > 0) await redis.zadd(index, 'NX', bucket.score, bucket.member);
}

class SinkFailed extends Error {
  override name = 'SinkFailed';
}

async function sendToSinks(redis: RedisClient, claimed: Claimed[], options: Required<Pick<FlushOptions, 'sinks' | 'staleClaimMs'>>, claimer: string): Promise<void> {
  for (const sink of options.sinks) {
    const mark = `@sent:${sink.name}`;
    const pending = claimed.filter((bucket) => !bucket.fields.has(mark));
    const records = pending.flatMap((bucket) => bucket.records);
    if (records.length === 0) continue;
    const oldestClaim = Math.min(...pending.map((bucket) => bucket.claimedAtLocalMs));
    if (monotonicMs() - oldestClaim > options.staleClaimMs / 2) {
      throw new SinkFailed(`claims too old to send safely (another flusher may take them over)`);
    }
    try {
      await sink.accept(records);
    } catch (error) {
      throw new SinkFailed(`sink ${sink.name} failed`, { cause: error });
    }
    await Promise.all(pending.map((bucket) => markScript(redis, [bucket.claimedKey], [claimer, mark, 1])));
    for (const bucket of pending) bucket.fields.set(mark, '1');
  }
}

async function flushBatch(redis: RedisClient, buckets: Bucket[], options: Required<Pick<FlushOptions, 'sinks' | 'staleClaimMs'>>, claimer: string, report: FlushReport): Promise<void> {
  const outcomes = await Promise.all(buckets.map((bucket) => claim(redis, bucket, claimer, options.staleClaimMs)));
  const claimed = outcomes.filter((outcome): outcome is Claimed => typeof outcome === 'object');
  const vanished = buckets.filter((_, i) => outcomes[i] === 'empty');
  report.taken += outcomes.filter((outcome) => outcome === 'taken').length;
  report.vanished += vanished.length;
  await Promise.all(vanished.map((bucket) => forget(redis, bucket)));
  if (claimed.length === 0) return;

  try {
    await sendToSinks(redis, claimed, options, claimer);
  } catch (error) {
    // Give the claims back at once (claimed at 0 = stale) so that the next run retries them.
    await Promise.all(claimed.map((bucket) => markScript(redis, [bucket.claimedKey], [claimer, '@claimedAt', 0])));
    report.returned += claimed.length;
    throw error;
  }
  report.records += claimed.reduce((sum, bucket) => sum + bucket.records.length, 0);
  const released = await Promise.all(claimed.map((bucket) => releaseScript(redis, [bucket.claimedKey], [claimer])));
  report.flushed += released.filter((deleted) => deleted === 1).length;
  const lost = claimed.filter((_, i) => released[i] !== 1).map((bucket) => bucket.member);
  // Only a flusher slower than the stale time gets here; the one that took over will send again.
  if (lost.length > 0) log.warn('usage claims taken over before release; these buckets may be counted twice', { buckets: lost });
  await Promise.all(claimed.map((bucket) => forget(redis, bucket)));
}

/** Flushes every usage bucket that closed at least `graceMs` ago (up to `maxBuckets`). */
export async function flushUsage(redis: RedisClient, options: FlushOptions): Promise<FlushReport> {
  const claimer = options.claimer ?? randomUUID();
  const nowMs = options.nowMs ?? Date.now();
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const batchSize = options.batchSize ?? 200;
  const settings = { sinks: options.sinks, staleClaimMs: options.staleClaimMs ?? DEFAULT_STALE_CLAIM_MS };
  const report: FlushReport = { flushed: 0, records: 0, taken: 0, vanished: 0, returned: 0 };

  const listed = await redis.zrangebyscore(usageIndexKey(), '-inf', nowMs - graceMs, 'WITHSCORES', 'LIMIT', 0, options.maxBuckets ?? 5000);
  const buckets: Bucket[] = [];
  for (let i = 0; i < listed.length; i += 2) {
    const bucket = bucketOf(listed[i]!, Number(listed[i + 1]));
    if (bucket !== undefined) buckets.push(bucket);
    else await redis.zrem(usageIndexKey(), listed[i]!); // not ours to read: never grow on it
  }
  for (let start = 0; start < buckets.length; start += batchSize) {
    if (options.deadlineMs !== undefined && Date.now() > options.deadlineMs) break;
    await flushBatch(redis, buckets.slice(start, start + batchSize), settings, claimer, report);
  }
  return report;
}
