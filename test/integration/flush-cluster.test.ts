// Usage counters and their flush on a 3-master Redis Cluster: counts across the user's slot and
// the shared {usage} slot, exactly-once delivery with two concurrent flushers, and INFO read from
// every master, and a request counted once when a password rotation reaches one node first.

import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { minuteUsageKey, usageIndexKey, userDayUsageKey } from '../../shared/keys.ts';
import { getRedis } from '../../shared/redis.ts';
import { flushTelemetry, resetTelemetry } from '../../shared/telemetry/export.ts';
import { observeRedisServers } from '../../shared/telemetry/redis-server.ts';
import { countUsageInBackground, minuteStart, readUserDay, recordUsage, utcDay } from '../../shared/usage/counters.ts';
import { flushUsage, type UsageRecord, type UsageSink } from '../../shared/usage/flush.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../doubles/otlp-receiver.ts';
import { startSecretsManagerDouble } from '../doubles/secrets-manager.ts';
import { useEnvironment } from '../support/env.ts';
import { nodeServing, startRedisCluster, type RedisCluster } from '../support/redis.ts';

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

  // Last: it changes the nodes' passwords.
  it('counts a request once when a password rotation has reached the {usage} node only: the retry resends only what was refused', async () => {
    const secrets = await startSecretsManagerDouble();
    const admins = cluster.nodes.map((node) => ({ node, admin: new Redis({ port: node.port, host: '127.0.0.1' }) }));
    const urlWith = (password: string) => `redis://:${password}@127.0.0.1:${cluster.nodes[0]!.port}`;
    try {
      const at = DAY_START + 5 * 60_000;
      const usageNode = await nodeServing(cluster, usageIndexKey());
      let userId = randomUUID();
      while ((await nodeServing(cluster, userDayUsageKey(userId, utcDay(at)))) === usageNode) userId = randomUUID();
      await Promise.all(admins.map(({ admin }) => admin.config('SET', 'requirepass', 'first-password-1234')));
      secrets.setSecret('redis/cluster', urlWith('first-password-1234'));
      await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: 'redis/cluster', REDIS_CLUSTER: 'true' });
      // Opens the client's connections to the user's node and to the {usage} node.
      await recordUsage(await getRedis(), { userId, route: 'POST /rotation', requests: 1, at });
      // The {usage} node takes the new password only and drops its clients; the others take both.
      for (const { node, admin } of admins) {
        if (node === usageNode) await admin.config('SET', 'requirepass', 'second-password-5678');
        else await admin.call('ACL', 'SETUSER', 'default', '>second-password-5678');
      }
      await admins.find(({ node }) => node === usageNode)!.admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      secrets.setSecret('redis/cluster', urlWith('second-password-5678'));

      countUsageInBackground({ userId, route: 'POST /rotation', requests: 1, at });
      const minuteRequests = () => admins.find(({ node }) => node === usageNode)!.admin.hget(minuteUsageKey(minuteStart(at)), 'POST /rotation|requests');
      for (let waited = 0; waited < 5000 && (await minuteRequests()) !== '2'; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));

      expect(await minuteRequests()).toBe('2');
      expect((await readUserDay(await getRedis(), userId, utcDay(at))).requests).toBe(2);
      expect(secrets.reads('redis/cluster')).toBe(2);
    } finally {
      await Promise.all(admins.map(({ admin }) => admin.call('ACL', 'SETUSER', 'default', 'resetpass', 'nopass')));
      for (const { admin } of admins) admin.disconnect();
      await secrets.close();
    }
  });
});
