// The durable places flushed usage goes to:
// - CloudWatch Embedded Metric Format lines on stdout (the default: Lambda ships stdout to
//   CloudWatch Logs, which keeps the line and turns it into metrics, no infrastructure needed).
//   Per route per minute: metrics Requests, InputTokens, OutputTokens, CacheHits with dimension
//   Route. Per user per day: the same four as dimensionless daily totals in their own namespace,
//   with the user id as a plain property (searchable in Logs Insights, never a dimension: one
//   metric per user would be costly).
// - OTLP, when OTEL_EXPORTER_OTLP_ENDPOINT is set: the per-route minutes as delta sums, one point
//   per route per minute with the minute as its time window. Per-user days are not sent there
//   (one series per user is more than a metrics store should hold).

import { FLUSH_METRICS } from '../telemetry/flush-catalogue.ts';
import { exportMetrics } from '../telemetry/export.ts';
import type { MetricData, SumPoint } from '../telemetry/registry.ts';
import type { UsageCounts } from './counters.ts';
import type { UsageRecord, UsageSink } from './flush.ts';

const EMF_NAMESPACE = 'TutorCopiloto';
const EMF_USER_DAY_NAMESPACE = 'TutorCopiloto/UserDays';

const EMF_METRICS = [
  { Name: 'Requests', Unit: 'Count' },
  { Name: 'InputTokens', Unit: 'Count' },
  { Name: 'OutputTokens', Unit: 'Count' },
  { Name: 'CacheHits', Unit: 'Count' },
];

function emfValues(counts: UsageCounts): Record<string, number> {
  return { Requests: counts.requests, InputTokens: counts.inputTokens, OutputTokens: counts.outputTokens, CacheHits: counts.cacheHits };
}

/** One EMF document per record. */
function emfLine(record: UsageRecord): string {
  const window = { id: record.id, bucket: record.bucket, windowStart: new Date(record.startMs).toISOString(), windowEnd: new Date(record.endMs).toISOString() };
  if (record.kind === 'route-minute') {
    return JSON.stringify({
      _aws: { Timestamp: record.startMs, CloudWatchMetrics: [{ Namespace: EMF_NAMESPACE, Dimensions: [['Route']], Metrics: EMF_METRICS }] },
      Route: record.route,
      ...emfValues(record.counts),
      ...window,
    });
  }
  return JSON.stringify({
    _aws: { Timestamp: record.startMs, CloudWatchMetrics: [{ Namespace: EMF_USER_DAY_NAMESPACE, Dimensions: [[]], Metrics: EMF_METRICS }] },
    userId: record.userId,
    day: record.day,
    ...emfValues(record.counts),
    ...window,
  });
}

/**
 * Writes to stdout, which Lambda ships to CloudWatch Logs. Writes to pipes and files are
 * synchronous on Linux, so a returned write has reached the kernel; a full buffer is waited out.
 */
function writeStdout(text: string): Promise<void> {
  if (process.stdout.write(text)) return Promise.resolve();
  return new Promise((resolve) => process.stdout.once('drain', () => resolve()));
}

/** EMF lines, written to stdout unless told otherwise; accepted once the write completed. */
export function emfSink(write: (text: string) => Promise<void> = writeStdout): UsageSink {
  return {
    name: 'emf',
    accept: (records) => write(records.map((record) => `${emfLine(record)}\n`).join('')),
  };
}

/** The per-route minutes as OTLP delta sums; accepted once the collector answered 2xx. */
function otlpUsageSink(): UsageSink {
  return {
    name: 'otlp',
    accept: async (records) => {
      const minutes = records.filter((record) => record.kind === 'route-minute');
      const points = { requests: [] as SumPoint[], tokens: [] as SumPoint[], cacheHits: [] as SumPoint[] };
      for (const record of minutes) {
        const window = { startTimeMs: record.startMs, timeMs: record.endMs };
        const route = record.route;
        points.requests.push({ attributes: { route }, value: record.counts.requests, ...window });
        points.tokens.push({ attributes: { route, 'gen_ai.token.type': 'input' }, value: record.counts.inputTokens, ...window });
        points.tokens.push({ attributes: { route, 'gen_ai.token.type': 'output' }, value: record.counts.outputTokens, ...window });
        points.cacheHits.push({ attributes: { route }, value: record.counts.cacheHits, ...window });
      }
      const timeMs = Date.now();
      const metrics: MetricData[] = [
        { descriptor: FLUSH_METRICS.usageRequests, temporality: 'delta', timeMs, points: points.requests },
        { descriptor: FLUSH_METRICS.usageTokens, temporality: 'delta', timeMs, points: points.tokens },
        { descriptor: FLUSH_METRICS.usageCacheHits, temporality: 'delta', timeMs, points: points.cacheHits },
      ];
      await exportMetrics(metrics.filter((metric) => metric.points.length > 0));
    },
  };
}

/** The sinks of this deployment: OTLP when configured (first: it is the one that can refuse), then EMF. */
export function configuredSinks(otlpConfigured: boolean): UsageSink[] {
  return otlpConfigured ? [otlpUsageSink(), emfSink()] : [emfSink()];
}
