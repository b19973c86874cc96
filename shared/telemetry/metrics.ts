// What the other modules call to record a metric. With OTEL_EXPORTER_OTLP_ENDPOINT unset every
// function returns at once (one property read): nothing is kept, nothing is exported, and the
// Redis command hook is never installed.

import { config } from '../config.ts';
import { METRICS } from './catalogue.ts';
import { addToSum, clearMetric, observeSum, recordInHistogram } from './registry.ts';

/** True when metrics are exported (OTEL_EXPORTER_OTLP_ENDPOINT is set). */
export function telemetryEnabled(): boolean {
  try {
    return config().otlpEndpoint !== undefined;
  } catch {
    return false; // a broken configuration is reported by the request; metrics must not throw
  }
}

/** How a cache lookup ended; the response cache's X-Cache header says the same in capitals. */
export type CacheOutcome = 'hit' | 'miss' | 'bypass';

/** One lookup (or `count` lookups, e.g. the inputs of an embeddings batch) of a cache. */
export function countCacheRequests(cache: string, outcome: CacheOutcome, count = 1): void {
  if (count <= 0 || !telemetryEnabled()) return;
  addToSum(METRICS.cacheRequests, count, { cache, outcome });
}

/** How a rate-limit check ended: failed-open and failed-closed when Redis could not answer it. */
export type RateLimitOutcome = 'allowed' | 'refused' | 'failed-open' | 'failed-closed';

/** One rate-limit check of a route (or of a login limit: `login:address`, `login:account`). */
export function countRateLimitDecision(route: string, outcome: RateLimitOutcome): void {
  if (!telemetryEnabled()) return;
  addToSum(METRICS.rateLimitDecisions, 1, { route, outcome });
}

export interface TokenUsage {
  /** `chat` or `embeddings` (gen_ai.operation.name). */
  operation: string;
  /** `anthropic`, `openai`, `local` (gen_ai.provider.name). */
  provider: string;
  model: string;
  inputTokens?: number;
  outputTokens?: number;
}

/** The tokens of one model call, as the provider reported them. */
export function recordTokenUsage(usage: TokenUsage): void {
  if (!telemetryEnabled()) return;
  const base = {
    'gen_ai.operation.name': usage.operation,
    'gen_ai.provider.name': usage.provider,
    'gen_ai.request.model': usage.model,
  };
  if (usage.inputTokens !== undefined) {
    recordInHistogram(METRICS.tokenUsage, usage.inputTokens, { ...base, 'gen_ai.token.type': 'input' });
  }
  if (usage.outputTokens !== undefined) {
    recordInHistogram(METRICS.tokenUsage, usage.outputTokens, { ...base, 'gen_ai.token.type': 'output' });
  }
}

export interface RedisOperation {
  /** The command, upper case (`GET`, `EVALSHA`). */
  operation: string;
  seconds: number;
  serverAddress: string | undefined;
  serverPort: number | undefined;
  /** Set on failure: the Redis error prefix (`WRONGTYPE`, `NOSCRIPT`) or the error's class. */
  errorType?: string;
  /**
   * Set when Redis answered with an error: its prefix. The Redis conventions require it as
   * db.response.status_code beside error.type, which also covers failures without a reply.
   */
  statusCode?: string | undefined;
}

export function recordRedisOperation(op: RedisOperation): void {
  if (!telemetryEnabled()) return;
  const attributes: Record<string, string | number> = { 'db.system.name': 'redis', 'db.operation.name': op.operation };
  if (op.serverAddress !== undefined) attributes['server.address'] = op.serverAddress;
  if (op.serverPort !== undefined) attributes['server.port'] = op.serverPort;
  if (op.errorType !== undefined) attributes['error.type'] = op.errorType;
  if (op.statusCode !== undefined) attributes['db.response.status_code'] = op.statusCode;
  recordInHistogram(METRICS.redisOperationDuration, op.seconds, attributes);
}

/** Replaces the connections held with `pools` (one per node this container is connected to). */
export function observeRedisConnections(pools: string[], sinceMs: number): void {
  if (!telemetryEnabled()) return;
  clearMetric(METRICS.redisConnections);
  for (const pool of pools) {
    observeSum(METRICS.redisConnections, 1, { 'db.client.connection.pool.name': pool, 'db.client.connection.state': 'used' }, sinceMs);
  }
}
