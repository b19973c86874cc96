// Usage counters and their flush on a 3-master Redis Cluster: counts across the user's slot and
// the shared {usage} slot, exactly-once delivery with two concurrent flushers, and INFO read from
// every master.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getRedis } from '../../shared/redis.ts';
import { flushTelemetry, resetTelemetry } from '../../shared/telemetry/export.ts';
import { observeRedisServers } from '../../shared/telemetry/redis-server.ts';
import { readUserDay, recordUsage } from '../../shared/usage/counters.ts';
import { flushUsage, type UsageRecord, type UsageSink } from '../../shared/usage/flush.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../doubles/otlp-receiver.ts';
import { useEnvironment } from '../support/env.ts';
import { startRedisCluster, type RedisCluster } from '../support/redis.ts';

const DAY_START = Date.parse('2031-05-06T00:00:00.000Z');
const LATER = DAY_START + 3 * 86_400_000;

function collectingSink(): UsageSink & { records: UsageRecord[] } {
  const records: UsageRecord[] = [];
  return { name: 'collect', records, accept: async (batch) => void records.push(...batch) };
}

describe('usage counters and their flush on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let receiver: OtlpReceiver;
  beforeAll(async () => {
    [cluster, receiver] = await Promise.all([startRedisCluster(), startOtlpReceiver()]);
  });
  afterAll(async () => {
    await useEnvironment({});
    await Promise.all([cluster.stop(), receiver.close()]);
  });

  it('counts usage across the user’s slot and the shared {usage} slot', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });
    const client = await getRedis();

    await Promise.all(
      ['a', 'b', 'c', 'd'].map((userId) => recordUsage(client, { userId, route: 'POST /chat', requests: 1, inputTokens: 5, at: DAY_START + 60_000 })),
    );

    expect(await readUserDay(client, 'c', '2031-05-06')).toEqual({ requests: 1, inputTokens: 5, outputTokens: 0, cacheHits: 0 });
  });

  it('delivers every bucket exactly once with two flushers running at the same time', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });
    const client = await getRedis();
    const usages = Array.from({ length: 60 }, (_, i) => ({
      userId: `user-${i % 12}`,
      route: 'POST /embeddings',
      requests: 1,
      at: DAY_START + 3_600_000 + (i % 10) * 60_000,
    }));
    await Promise.all(usages.map((usage) => recordUsage(client, usage)));
    const sinks = [collectingSink(), collectingSink()];

    await Promise.all(sinks.map((sink) => flushUsage(client, { sinks: [sink], nowMs: LATER, batchSize: 5 })));

    const records = sinks.flatMap((sink) => sink.records);
    const requests = (kind: UsageRecord['kind']) => records.filter((r) => r.kind === kind).reduce((sum, r) => sum + r.counts.requests, 0);
    // 4 requests of the first test, 60 of this one
    expect(requests('route-minute')).toBe(64);
    expect(requests('user-day')).toBe(64);
    expect(new Set(records.map((r) => `${r.bucket}#${r.kind === 'user-day' ? r.userId : r.route}`)).size).toBe(records.length);
  });

  it('reads INFO from every master and reports one connection held per node', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    resetTelemetry();
    const client = await getRedis();

    await observeRedisServers(client);
    await flushTelemetry();

    const ports = cluster.nodes.map((node) => node.port).sort();
    const memoryPorts = receiver.latestPoints('redis.memory.used').map((point) => point.attributes['server.port']);
    expect(memoryPorts.sort()).toEqual(ports);
    const held = receiver.latestPoints('db.client.connection.count');
    expect(held.map((point) => point.attributes['db.client.connection.pool.name']).sort()).toEqual(ports.map((port) => `127.0.0.1:${port}`));
  });
});
