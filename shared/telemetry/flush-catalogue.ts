// The metrics only the scheduled flush-metrics function exports: the Redis server's INFO figures
// (named as the OpenTelemetry Collector's `redis` receiver names them, so existing Redis dashboards
// recognise them) and the flushed usage buckets. Kept apart from catalogue.ts so that the request
// path's bundles do not carry them.

import type { MetricDescriptor } from './catalogue.ts';

export const FLUSH_METRICS = {
  redisMemoryUsed: {
    name: 'redis.memory.used',
    kind: 'gauge',
    unit: 'By',
    description: 'Redis used_memory, read from INFO by the scheduled flush.',
    attributes: ['server.address', 'server.port'],
  },
  redisClientsConnected: {
    name: 'redis.clients.connected',
    kind: 'gauge',
    unit: '{client}',
    description: 'Redis connected_clients (all clients of the server), read from INFO.',
    attributes: ['server.address', 'server.port'],
  },
  redisKeyspaceHits: {
    name: 'redis.keyspace.hits',
    kind: 'counter',
    unit: '{hit}',
    description: 'Redis keyspace_hits since the server started, read from INFO.',
    attributes: ['server.address', 'server.port'],
  },
  redisKeyspaceMisses: {
    name: 'redis.keyspace.misses',
    kind: 'counter',
    unit: '{miss}',
    description: 'Redis keyspace_misses since the server started, read from INFO.',
    attributes: ['server.address', 'server.port'],
  },
  /** Flushed usage buckets: delta sums, one point per route per closed minute. */
  usageRequests: {
    name: 'tutor.usage.requests',
    kind: 'counter',
    unit: '{request}',
    description: 'Requests counted by the usage counters, exported once per closed minute.',
    attributes: ['route'],
  },
  usageTokens: {
    name: 'tutor.usage.tokens',
    kind: 'counter',
    unit: '{token}',
    description: 'Model tokens counted by the usage counters, exported once per closed minute.',
    attributes: ['route', 'gen_ai.token.type'],
  },
  usageCacheHits: {
    name: 'tutor.usage.cache_hits',
    kind: 'counter',
    unit: '{hit}',
    description: 'Cache hits counted by the usage counters, exported once per closed minute.',
    attributes: ['route'],
  },
} as const satisfies Record<string, MetricDescriptor>;
