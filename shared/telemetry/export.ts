// The telemetry life cycle of an invocation: `startTelemetry()` before the handler (installs the
// Redis command hook once), `flushTelemetry()` before the response leaves, because Lambda freezes
// the process right after and a buffered export would go out minutes later or never. Both return
// at once when OTEL_EXPORTER_OTLP_ENDPOINT is unset; the encoder is imported only when used.
//
//   invocation ─ startTelemetry ─ handler (records) ─ flushTelemetry: collect → encode → POST /v1/metrics (≤ timeout)
//
// An export that fails is logged and dropped: the points are cumulative, the next one carries them.
// After a failure the invocations stop exporting for a while (the collector's Retry-After, else a
// back-off doubling from 1 s): a collector that throttles or does not answer would otherwise get
// one more export from every invocation of every container, each invocation waiting out the
// time-out. Skipping loses nothing, for the same reason.

import { randomUUID } from 'node:crypto';
import { config } from '../config.ts';
import { log, registerSecret, scrubbedExcerpt } from '../logger.ts';
import { retryAfterMs } from '../retry-after.ts';
import { telemetryEnabled } from './metrics.ts';
import { installRedisHook, observeConnectionsHeld } from './redis-hook.ts';
import { collectMetrics, resetMetrics, type Attributes, type MetricData } from './registry.ts';

/** One per container: each container is its own series of cumulative points. */
let instanceId: string | undefined;

function resource(): Attributes {
  const { otlp, version, stage } = config();
  const env = process.env;
  const attributes: Record<string, string> = {
    'service.name': otlp.serviceName,
    'service.version': version,
    'service.instance.id': (instanceId ??= randomUUID()),
    'deployment.environment.name': stage,
    'telemetry.sdk.language': 'nodejs',
  };
  if (env['AWS_LAMBDA_FUNCTION_NAME']) {
    attributes['cloud.provider'] = 'aws';
    attributes['cloud.platform'] = 'aws_lambda';
    attributes['faas.name'] = env['AWS_LAMBDA_FUNCTION_NAME'];
    if (env['AWS_REGION']) attributes['cloud.region'] = env['AWS_REGION'];
    if (env['AWS_LAMBDA_FUNCTION_VERSION']) attributes['faas.version'] = env['AWS_LAMBDA_FUNCTION_VERSION'];
    if (env['AWS_LAMBDA_LOG_STREAM_NAME']) attributes['faas.instance'] = env['AWS_LAMBDA_LOG_STREAM_NAME'];
  }
  return attributes;
}

const FIRST_PAUSE_MS = 1000;
/** The back-off stops doubling here: a collector that comes back is seen within a minute. */
const MAX_BACKOFF_MS = 60_000;
/** A longer Retry-After is cut to this: cumulative points lose nothing, but dashboards go stale. */
const MAX_RETRY_AFTER_MS = 5 * 60_000;

let failuresInARow = 0;
let pausedUntil = 0;

function pauseExports(retryAfter: number | undefined): void {
  failuresInARow += 1;
  const backoff = Math.min(FIRST_PAUSE_MS * 2 ** (failuresInARow - 1), MAX_BACKOFF_MS);
  pausedUntil = Date.now() + (retryAfter ?? backoff);
}

function metricsUrl(endpoint: string): string {
  // OTLP/HTTP: the base endpoint gets the signal's path appended.
  return `${endpoint.replace(/\/+$/, '')}/v1/metrics`;
}

/**
 * The credential of a header value that starts with an auth scheme (`Basic <credential>`): a
 * collector may echo it alone, which the whole value, registered too, would not mask.
 */
function credentialAfterScheme(value: string): string | undefined {
  const space = value.indexOf(' ');
  return space === -1 ? undefined : value.slice(space + 1).trim();
}

/**
 * POSTs metrics to the collector; resolves once it accepted them (2xx), rejects otherwise. A
 * partial success (some points rejected) is logged: those points would be rejected again.
 */
export async function exportMetrics(metrics: MetricData[]): Promise<void> {
  const { otlpEndpoint, otlp, version } = config();
  if (otlpEndpoint === undefined || metrics.length === 0) return;
  for (const value of Object.values(otlp.headers)) {
    registerSecret(value);
    registerSecret(credentialAfterScheme(value));
  }
  const { encodeMetricsRequest } = await import('./otlp-json.ts');
  const body = encodeMetricsRequest(resource(), { name: 'tutor-copiloto', version }, metrics);
  let response: Response;
  let answer: string;
  try {
    response = await fetch(metricsUrl(otlpEndpoint), {
      method: 'POST',
      headers: { ...otlp.headers, 'Content-Type': 'application/json' },
      body,
      signal: AbortSignal.timeout(otlp.timeoutMs),
    });
    answer = await response.text();
  } catch (error) {
    pauseExports(undefined); // unreachable, or silent past the time-out
    throw error;
  }
  if (!response.ok) {
    pauseExports(retryAfterMs(response.headers, MAX_RETRY_AFTER_MS));
    throw new Error(`the OTLP endpoint answered ${response.status}`);
  }
  failuresInARow = 0;
  pausedUntil = 0;
  if (answer.includes('rejectedDataPoints')) log.warn('the OTLP endpoint rejected some data points', { answer: scrubbedExcerpt(answer, 500) });
}

/** Call at the start of every invocation. */
export function startTelemetry(): void {
  if (telemetryEnabled()) installRedisHook();
}

/** Call before every invocation returns; never throws, bounded by OTEL_EXPORTER_OTLP_TIMEOUT. */
export async function flushTelemetry(): Promise<void> {
  if (!telemetryEnabled() || Date.now() < pausedUntil) return;
  try {
    observeConnectionsHeld();
    await exportMetrics(collectMetrics());
  } catch (error) {
    log.warn('metrics export failed', { err: error });
  }
}

/** Forgets every point and any pause (tests: a fresh container). */
export function resetTelemetry(): void {
  resetMetrics();
  failuresInARow = 0;
  pausedUntil = 0;
}
