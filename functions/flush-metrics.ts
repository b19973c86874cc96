// Scheduled every minute (not an HTTP route): moves the closed usage buckets out of Redis into
// the durable sinks, exactly once (shared/usage/flush.ts), and exports the Redis server's INFO
// figures as metrics. A failure throws, so the invocation counts as failed; every claim it held
// is given back or taken over by a later run, and nothing is lost.

import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { log, withLogContext } from '#shared/logger.ts';
import { monotonicMs } from '#shared/monotonic-clock.ts';
import { withRedis } from '#shared/redis.ts';
import { flushTelemetry, startTelemetry } from '#shared/telemetry/export.ts';
import { telemetryEnabled } from '#shared/telemetry/metrics.ts';
import { observeRedisServers } from '#shared/telemetry/redis-server.ts';
import { flushUsage, type FlushReport } from '#shared/usage/flush.ts';
import { configuredSinks } from '#shared/usage/sinks.ts';

async function flush(context: Context): Promise<FlushReport> {
  const started = monotonicMs();
  const report = await withRedis(async (redis) => {
    const flushed = await flushUsage(redis, {
      sinks: configuredSinks(telemetryEnabled()),
      // Unique per run, not the request id: Lambda's retry of a failed run keeps the request id.
      claimer: `${context.awsRequestId}/${randomUUID()}`,
      // Leave half the time for the batch under way and the metrics export.
      deadlineMs: Date.now() + context.getRemainingTimeInMillis() / 2,
    });
    if (telemetryEnabled()) {
      await observeRedisServers(redis).catch((error: unknown) => log.warn('reading Redis INFO failed', { err: error }));
    }
    return flushed;
  });
  log.info('usage flushed', { ...report, durationMs: Math.round(monotonicMs() - started) });
  return report;
}

export function handler(_event: unknown, context: Context): Promise<FlushReport> {
  return withLogContext({ requestId: context.awsRequestId, route: 'schedule flush-metrics' }, async () => {
    startTelemetry();
    try {
      return await flush(context);
    } catch (error) {
      log.error('usage flush failed', { err: error });
      throw error;
    } finally {
      await flushTelemetry();
    }
  });
}
