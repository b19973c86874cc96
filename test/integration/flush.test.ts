// The flush of closed usage buckets against a real redis-server: exactly-once delivery with
// concurrent, failing or dying flushers, the EMF sinks, and the scheduled flush-metrics function
// printing EMF lines and sending OTLP to a local receiver.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler as flushMetrics } from '../../functions/flush-metrics.ts';
import { claimedUsageKey, minuteUsageKey, usageIndexKey, userDayUsageKey } from '../../shared/keys.ts';
import { getRedis, type RedisClient } from '../../shared/redis.ts';
import { resetTelemetry } from '../../shared/telemetry/export.ts';
import { recordUsage, type Usage } from '../../shared/usage/counters.ts';
import { flushUsage, type UsageRecord, type UsageSink } from '../../shared/usage/flush.ts';
import { emfSink } from '../../shared/usage/sinks.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../doubles/otlp-receiver.ts';
import { useEnvironment } from '../support/env.ts';
import { lambdaContext } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const DAY = '2031-05-06';
const DAY_START = Date.parse(`${DAY}T00:00:00.000Z`);
/** Long after every bucket below closed. */
const LATER = DAY_START + 3 * 86_400_000;

/** A sink that keeps what it accepted. */
function collectingSink(name = 'collect'): UsageSink & { records: UsageRecord[] } {
  const records: UsageRecord[] = [];
  return { name, records, accept: async (batch) => void records.push(...batch) };
}

function failingSink(name = 'collect'): UsageSink {
  return {
    name,
    accept: async () => {
      throw new Error('sink unavailable');
    },
  };
}

/** A sink that takes the records and whose flusher then "dies" in it: the call never returns. */
function frozenSink(name = 'collect'): UsageSink & { reached: Promise<void>; records: UsageRecord[] } {
  let reachedResolve!: () => void;
  const reached = new Promise<void>((resolve) => (reachedResolve = resolve));
  const records: UsageRecord[] = [];
  return { name, reached, records, accept: (batch) => (records.push(...batch), reachedResolve(), new Promise<void>(() => {})) };
}

function totals(records: UsageRecord[]) {
  const sum = (kind: UsageRecord['kind']) =>
    records.filter((record) => record.kind === kind).reduce((total, record) => total + record.counts.requests, 0);
  return { routeMinuteRequests: sum('route-minute'), userDayRequests: sum('user-day') };
}

/** Each (bucket, route or user) must appear once. */
function duplicates(records: UsageRecord[]): string[] {
  const seen = new Set<string>();
  const twice: string[] = [];
  for (const record of records) {
    const id = `${record.bucket}#${record.kind === 'route-minute' ? record.route : record.userId}`;
    if (seen.has(id)) twice.push(id);
    seen.add(id);
  }
  return twice;
}

/** `minutes` minutes of traffic on two routes from `users` users: returns the number of requests. */
async function recordTraffic(client: RedisClient, minutes: number, users: number): Promise<number> {
  const usages: Usage[] = [];
  for (let minute = 0; minute < minutes; minute += 1) {
    for (let user = 0; user < users; user += 1) {
      const at = DAY_START + 10 * 3_600_000 + minute * 60_000 + user;
      usages.push({ userId: `user-${user}`, route: user % 2 ? 'POST /chat' : 'POST /embeddings', requests: 1, inputTokens: 10, at });
    }
  }
  await Promise.all(usages.map((usage) => recordUsage(client, usage)));
  return usages.length;
}

describe('flush-metrics: closed usage buckets leave Redis exactly once', () => {
  const redis = useStandaloneRedis();
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    await (await getRedis()).flushall();
  });

  it('moves a closed minute and a closed day into the sink, then deletes them and their index entries', async () => {
    const client = await getRedis();
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, inputTokens: 100, outputTokens: 20, at: DAY_START + 90_000 });
    const sink = collectingSink();

    const report = await flushUsage(client, { sinks: [sink], nowMs: LATER });

    expect(report).toMatchObject({ flushed: 2, records: 2, taken: 0, returned: 0 });
    expect(sink.records).toEqual(
      expect.arrayContaining([
        {
          kind: 'route-minute',
          id: expect.stringMatching(new RegExp(`^minute\\|${DAY_START + 60_000}\\|POST /chat@\\d+/[0-9a-f-]+$`)),
          bucket: `minute|${DAY_START + 60_000}`,
          startMs: DAY_START + 60_000,
          endMs: DAY_START + 120_000,
          route: 'POST /chat',
          counts: { requests: 1, inputTokens: 100, outputTokens: 20, cacheHits: 0 },
        },
        {
          kind: 'user-day',
          id: expect.stringMatching(new RegExp(`^day\\|${DAY}\\|u1@\\d+/[0-9a-f-]+$`)),
          bucket: `day|${DAY}|u1`,
          startMs: DAY_START,
          endMs: DAY_START + 86_400_000,
          userId: 'u1',
          day: DAY,
          counts: { requests: 1, inputTokens: 100, outputTokens: 20, cacheHits: 0 },
        },
      ]),
    );
    expect(await client.dbsize()).toBe(0);
  });

  it('leaves the current minute and the current day in Redis', async () => {
    const client = await getRedis();
    const now = DAY_START + 10 * 3_600_000 + 30_000;
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at: now });
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at: now - 120_000 });
    const sink = collectingSink();

    await flushUsage(client, { sinks: [sink], nowMs: now + 1000 });

    expect(sink.records).toEqual([expect.objectContaining({ kind: 'route-minute', startMs: now - 30_000 - 120_000 })]);
    expect(await client.hgetall(minuteUsageKey(now - 30_000))).toEqual({ 'POST /chat|requests': '1' });
    expect(await client.hgetall(userDayUsageKey('u1', DAY))).toEqual({ requests: '2' });
  });

  it('delivers every bucket exactly once when flushers run at the same time', async () => {
    const client = await getRedis();
    const requests = await recordTraffic(client, 30, 8);
    const sinks = Array.from({ length: 4 }, () => collectingSink());

    const reports = await Promise.all(sinks.map((sink) => flushUsage(client, { sinks: [sink], nowMs: LATER, batchSize: 7 })));

    const all = sinks.flatMap((sink) => sink.records);
    expect(duplicates(all)).toEqual([]);
    expect(totals(all)).toEqual({ routeMinuteRequests: requests, userDayRequests: requests });
    expect(reports.reduce((sum, report) => sum + report.flushed, 0)).toBe(30 + 8);
    expect(sinks.filter((sink) => sink.records.length > 0).length).toBeGreaterThan(1); // they really competed
    expect(await client.dbsize()).toBe(0);
  });

  it('gives its claims back when a sink fails, so the next run delivers everything once', async () => {
    const client = await getRedis();
    const requests = await recordTraffic(client, 5, 3);

    await expect(flushUsage(client, { sinks: [failingSink()], nowMs: LATER })).rejects.toThrow(/sink collect failed/);
    const sink = collectingSink();
    const report = await flushUsage(client, { sinks: [sink], nowMs: LATER });

    expect(report.taken).toBe(0);
    expect(duplicates(sink.records)).toEqual([]);
    expect(totals(sink.records)).toEqual({ routeMinuteRequests: requests, userDayRequests: requests });
    expect(await client.dbsize()).toBe(0);
  });

  it('loses nothing when a flusher dies after claiming: its claims are taken over once stale, not before', async () => {
    const client = await getRedis();
    const requests = await recordTraffic(client, 5, 3);
    const frozen = frozenSink();
    void flushUsage(client, { sinks: [frozen], nowMs: LATER, staleClaimMs: 400 }); // never finishes
    await frozen.reached;

    const early = collectingSink();
    const earlyReport = await flushUsage(client, { sinks: [early], nowMs: LATER, staleClaimMs: 400 });
    await sleep(500);
    const late = collectingSink();
    const lateReport = await flushUsage(client, { sinks: [late], nowMs: LATER, staleClaimMs: 400 });

    expect(earlyReport).toMatchObject({ flushed: 0, taken: 5 + 3 });
    expect(early.records).toEqual([]);
    expect(lateReport).toMatchObject({ flushed: 5 + 3, taken: 0 });
    expect(duplicates(late.records)).toEqual([]);
    expect(totals(late.records)).toEqual({ routeMinuteRequests: requests, userDayRequests: requests });
    expect(await client.dbsize()).toBe(0);
  });

  it('after a failure past the first sink, resends only to the sinks that had not accepted', async () => {
    const client = await getRedis();
    const requests = await recordTraffic(client, 4, 2);
    const first = collectingSink('first');

    await expect(flushUsage(client, { sinks: [first, failingSink('second')], nowMs: LATER })).rejects.toThrow(/sink second failed/);
    const second = collectingSink('second');
    await flushUsage(client, { sinks: [first, second], nowMs: LATER });

    for (const sink of [first, second]) {
      expect(duplicates(sink.records)).toEqual([]);
      expect(totals(sink.records)).toEqual({ routeMinuteRequests: requests, userDayRequests: requests });
    }
  });

  it('flushes an increment that reaches a bucket while it is being flushed in a later run', async () => {
    const client = await getRedis();
    const at = DAY_START + 3_600_000;
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at });
    const sink: UsageSink & { records: UsageRecord[] } = {
      name: 'collect',
      records: [],
      async accept(batch) {
        this.records.push(...batch);
        await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at }); // a late write
      },
    };

    await flushUsage(client, { sinks: [sink], nowMs: LATER });
    await flushUsage(client, { sinks: [sink], nowMs: LATER });

    expect(duplicates(sink.records.slice(0, 2))).toEqual([]);
    // run 1: the original request; run 2: the late one (whose own late write is left for run 3)
    expect(totals(sink.records)).toEqual({ routeMinuteRequests: 2, userDayRequests: 2 });
    expect(await client.exists(minuteUsageKey(at))).toBe(1);
    expect(await client.zscore(usageIndexKey(), `minute|${at}`)).not.toBeNull();
  });

  it('gives the record of a late increment an id of its own, so that a consumer dropping repeated ids still adds it', async () => {
    const client = await getRedis();
    const at = DAY_START + 3_600_000;
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at });
    const sink = collectingSink();
    await flushUsage(client, { sinks: [sink], nowMs: LATER });
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at }); // a late write

    await flushUsage(client, { sinks: [sink], nowMs: LATER });

    const minutes = sink.records.filter((record) => record.kind === 'route-minute');
    expect(minutes.map((record) => record.bucket)).toEqual([`minute|${at}`, `minute|${at}`]);
    expect(new Set(minutes.map((record) => record.id)).size).toBe(2);
  });

  it('sends a record again under the same id when a dead flusher\'s claim is taken over', async () => {
    const client = await getRedis();
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at: DAY_START + 3_600_000 });
    const dying = frozenSink(); // it has the records, but its flusher dies before marking them sent
    void flushUsage(client, { sinks: [dying], nowMs: LATER, staleClaimMs: 400 });
    await dying.reached;
    await sleep(500);
    const resent = collectingSink();

    await flushUsage(client, { sinks: [resent], nowMs: LATER, staleClaimMs: 400 });

    expect(resent.records.map((record) => record.id).sort()).toEqual(dying.records.map((record) => record.id).sort());
  });

  it('drops the index entry of a bucket that expired before it was flushed', async () => {
    const client = await getRedis();
    await client.zadd(usageIndexKey(), DAY_START, `minute|${DAY_START - 60_000}`);
    await client.zadd(usageIndexKey(), DAY_START, 'not a bucket');

    const report = await flushUsage(client, { sinks: [collectingSink()], nowMs: LATER });

    expect(report.vanished).toBe(1);
    expect(await client.zcard(usageIndexKey())).toBe(0);
  });

  it('leaves no claimed key behind', async () => {
    const client = await getRedis();
    await recordTraffic(client, 3, 2);

    await flushUsage(client, { sinks: [collectingSink()], nowMs: LATER });

    expect(await client.exists(claimedUsageKey(minuteUsageKey(DAY_START + 10 * 3_600_000)))).toBe(0);
    expect(await client.keys('*')).toEqual([]);
  });
});

describe('usage sinks', () => {
  it('writes one EMF line per route per minute, with Route as the dimension', async () => {
    const lines: string[] = [];
    const sink = emfSink(async (text) => void lines.push(...text.trim().split('\n')));
    const counts = { requests: 3, inputTokens: 300, outputTokens: 50, cacheHits: 1 };

    await sink.accept([{ kind: 'route-minute', id: 'minute|1|POST /chat@130000', bucket: 'minute|1', startMs: 60_000, endMs: 120_000, route: 'POST /chat', counts }]);

    expect(JSON.parse(lines[0]!)).toEqual({
      _aws: {
        Timestamp: 60_000,
        CloudWatchMetrics: [
          {
            Namespace: 'TutorCopiloto',
            Dimensions: [['Route']],
            Metrics: [
              { Name: 'Requests', Unit: 'Count' },
              { Name: 'InputTokens', Unit: 'Count' },
              { Name: 'OutputTokens', Unit: 'Count' },
              { Name: 'CacheHits', Unit: 'Count' },
            ],
          },
        ],
      },
      Route: 'POST /chat',
      Requests: 3,
      InputTokens: 300,
      OutputTokens: 50,
      CacheHits: 1,
      id: 'minute|1|POST /chat@130000',
      bucket: 'minute|1',
      windowStart: '1970-01-01T00:01:00.000Z',
      windowEnd: '1970-01-01T00:02:00.000Z',
    });
  });

  it('writes a user’s day as dimensionless daily totals with the user id as a property only', async () => {
    const lines: string[] = [];
    const sink = emfSink(async (text) => void lines.push(text));
    const counts = { requests: 1, inputTokens: 2, outputTokens: 3, cacheHits: 0 };

    await sink.accept([{ kind: 'user-day', id: `day|${DAY}|u1@1`, bucket: `day|${DAY}|u1`, startMs: DAY_START, endMs: DAY_START + 86_400_000, userId: 'u1', day: DAY, counts }]);

    const line = JSON.parse(lines[0]!);
    expect(line._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: 'TutorCopiloto/UserDays', Dimensions: [[]] });
    expect(line).toMatchObject({ userId: 'u1', day: DAY, Requests: 1, InputTokens: 2, OutputTokens: 3, CacheHits: 0 });
  });
});

describe('the scheduled flush-metrics function', () => {
  const redis = useStandaloneRedis();
  let receiver: OtlpReceiver;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
  });
  afterAll(() => receiver.close());
  beforeEach(async () => {
    resetTelemetry();
    receiver.reset();
  });

  it('prints closed buckets as EMF lines on stdout and deletes them', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: undefined });
    const client = await getRedis();
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 2, at: Date.now() - 5 * 60_000 });
    const output = captureOutput();

    try {
      await flushMetrics({}, lambdaContext('flush-metrics'));
    } finally {
      output.restore();
    }

    const emf = output
      .text()
      .split('\n')
      .filter((line) => line.includes('"_aws"'))
      .map((line) => JSON.parse(line));
    expect(emf).toContainEqual(expect.objectContaining({ Route: 'POST /chat', Requests: 2 }));
    expect(await client.exists(minuteUsageKey(Math.floor((Date.now() - 5 * 60_000) / 60_000) * 60_000))).toBe(0);
  });

  it('sends closed minutes over OTLP as delta sums whose window is the minute, and the Redis INFO figures', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const client = await getRedis();
    await client.flushall();
    const minute = Math.floor((Date.now() - 5 * 60_000) / 60_000) * 60_000;
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 2, inputTokens: 70, outputTokens: 9, cacheHits: 1, at: minute });
    const output = captureOutput();

    try {
      await flushMetrics({}, lambdaContext('flush-metrics'));
    } finally {
      output.restore();
    }

    const [requests] = receiver.metrics('tutor.usage.requests');
    expect(requests).toMatchObject({ type: 'sum', monotonic: true, temporality: 'delta' });
    expect(requests!.points).toEqual([
      expect.objectContaining({
        attributes: { route: 'POST /chat' },
        value: 2,
        startTimeUnixNano: BigInt(minute) * 1_000_000n,
        timeUnixNano: BigInt(minute + 60_000) * 1_000_000n,
      }),
    ]);
    expect(receiver.allPoints('tutor.usage.tokens')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ attributes: { route: 'POST /chat', 'gen_ai.token.type': 'input' }, value: 70 }),
        expect.objectContaining({ attributes: { route: 'POST /chat', 'gen_ai.token.type': 'output' }, value: 9 }),
      ]),
    );
    expect(receiver.allPoints('tutor.usage.cache_hits')).toEqual([expect.objectContaining({ value: 1 })]);
    const server = { 'server.address': '127.0.0.1', 'server.port': redis.server.port };
    expect(receiver.latestPoints('redis.memory.used')).toEqual([expect.objectContaining({ attributes: server, value: expect.any(Number) })]);
    expect(receiver.latestPoints('redis.memory.used')[0]!.value).toBeGreaterThan(0);
    expect(receiver.latestPoints('redis.clients.connected')[0]!.value).toBeGreaterThanOrEqual(1);
    expect(receiver.metrics('redis.keyspace.hits').at(-1)).toMatchObject({ type: 'sum', monotonic: true, temporality: 'cumulative' });
    expect(receiver.latestPoints('redis.keyspace.misses')).toHaveLength(1);
  });

  it('sends nothing over OTLP when the collector refused the minute, and sends it once on the next run', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const client = await getRedis();
    await client.flushall();
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 4, at: Date.now() - 5 * 60_000 });
    receiver.failNext(503);
    const output = captureOutput();

    try {
      await expect(flushMetrics({}, lambdaContext('flush-metrics'))).rejects.toThrow();
      await flushMetrics({}, lambdaContext('flush-metrics'));
    } finally {
      output.restore();
    }

    expect(receiver.allPoints('tutor.usage.requests')).toEqual([expect.objectContaining({ value: 4 })]);
    const emfLines = output.text().split('\n').filter((line) => line.includes('"Route":"POST /chat"'));
    expect(emfLines).toHaveLength(1);
  });
});
