// A local OTLP/HTTP metrics receiver (POST /v1/metrics), as a collector would run it: it decodes
// the JSON encoding of ExportMetricsServiceRequest strictly (integer enums, 64-bit integers as
// decimal strings or numbers, typed attribute values, gzip bodies) and keeps what it decoded so
// tests can check names, attributes and values. Protobuf bodies get 415: the project's exporter
// speaks JSON, and no .proto definitions ship with the installed @opentelemetry packages.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { buffer as bodyBytes } from 'node:stream/consumers';

export type DecodedAttributes = Record<string, string | number | boolean>;

export interface DecodedPoint {
  attributes: DecodedAttributes;
  startTimeUnixNano?: bigint;
  timeUnixNano: bigint;
  /** Sums and gauges. */
  value?: number;
  /** Histograms. */
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

export interface DecodedMetric {
  name: string;
  unit: string;
  description: string;
  type: 'sum' | 'gauge' | 'histogram';
  temporality?: 'delta' | 'cumulative';
  monotonic?: boolean;
  resource: DecodedAttributes;
  scope: { name: string; version?: string };
  points: DecodedPoint[];
}

export interface ReceivedExport {
  contentType: string;
  headers: IncomingMessage['headers'];
  metrics: DecodedMetric[];
}

export interface OtlpReceiver {
  /** For OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/metrics). */
  url: string;
  exports: ReceivedExport[];
  /** Every decoded metric, in arrival order. */
  metrics(name?: string): DecodedMetric[];
  /** Data points of `name` from the latest export carrying it (cumulative metrics: the totals). */
  latestPoints(name: string): DecodedPoint[];
  /** Data points of `name` from every export (delta metrics: each closed bucket once). */
  allPoints(name: string): DecodedPoint[];
  /** The next `times` exports are answered with `status` (e.g. 503) and `headers` (e.g. Retry-After), and not kept. */
  failNext(status: number, times?: number, headers?: Record<string, string>): void;
  /** The next export is kept and answered 200 with a partialSuccess rejecting one data point with `errorMessage`. */
  rejectOnePointNext(errorMessage: string): void;
  reset(): void;
  close(): Promise<void>;
}

class DecodeError extends Error {}

function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new DecodeError(message);
}

/** int64 / fixed64 in the protobuf JSON mapping: a decimal string (or, leniently, a number). */
function int64(value: unknown, field: string): bigint {
  expect(typeof value === 'string' ? /^-?\d+$/.test(value) : Number.isInteger(value), `${field}: not a 64-bit integer`);
  return BigInt(value as string | number);
}

function double(value: unknown, field: string): number {
  expect(typeof value === 'number' && Number.isFinite(value), `${field}: not a number`);
  return value as number;
}

function decodeAnyValue(value: any, field: string): string | number | boolean {
  expect(value !== null && typeof value === 'object', `${field}: not an AnyValue`);
  if ('stringValue' in value) return String(value.stringValue);
  if ('boolValue' in value) return Boolean(value.boolValue);
  if ('intValue' in value) return Number(int64(value.intValue, `${field}.intValue`));
  if ('doubleValue' in value) return double(value.doubleValue, `${field}.doubleValue`);
  throw new DecodeError(`${field}: unsupported AnyValue ${JSON.stringify(value)}`);
}

function decodeAttributes(list: unknown, field: string): DecodedAttributes {
  if (list === undefined) return {};
  expect(Array.isArray(list), `${field}: not an array`);
  const attributes: DecodedAttributes = {};
  for (const [i, item] of (list as any[]).entries()) {
    expect(typeof item?.key === 'string', `${field}[${i}].key missing`);
    attributes[item.key] = decodeAnyValue(item.value, `${field}[${i}].value`);
  }
  return attributes;
}

function temporalityOf(value: unknown, field: string): 'delta' | 'cumulative' {
  expect(value === 1 || value === 2, `${field}: aggregationTemporality must be the integer 1 or 2, got ${JSON.stringify(value)}`);
  return value === 1 ? 'delta' : 'cumulative';
}

function numberPoint(point: any, field: string): DecodedPoint {
  const hasInt = point.asInt !== undefined;
  const hasDouble = point.asDouble !== undefined;
  expect(hasInt !== hasDouble, `${field}: exactly one of asInt and asDouble`);
  return {
    attributes: decodeAttributes(point.attributes, `${field}.attributes`),
    ...(point.startTimeUnixNano === undefined ? {} : { startTimeUnixNano: int64(point.startTimeUnixNano, `${field}.startTimeUnixNano`) }),
    timeUnixNano: int64(point.timeUnixNano, `${field}.timeUnixNano`),
    value: hasInt ? Number(int64(point.asInt, `${field}.asInt`)) : double(point.asDouble, `${field}.asDouble`),
  };
}

function histogramPoint(point: any, field: string): DecodedPoint {
  const bucketCounts = (point.bucketCounts ?? []).map((count: unknown, i: number) => Number(int64(count, `${field}.bucketCounts[${i}]`)));
  const explicitBounds = (point.explicitBounds ?? []).map((bound: unknown, i: number) => double(bound, `${field}.explicitBounds[${i}]`));
  expect(bucketCounts.length === explicitBounds.length + 1, `${field}: bucketCounts must have one more entry than explicitBounds`);
  const count = Number(int64(point.count, `${field}.count`));
  expect(bucketCounts.reduce((a: number, b: number) => a + b, 0) === count, `${field}: bucketCounts do not add up to count`);
  return {
    attributes: decodeAttributes(point.attributes, `${field}.attributes`),
    startTimeUnixNano: int64(point.startTimeUnixNano, `${field}.startTimeUnixNano`),
    timeUnixNano: int64(point.timeUnixNano, `${field}.timeUnixNano`),
    count,
    sum: double(point.sum, `${field}.sum`),
    ...(point.min === undefined ? {} : { min: double(point.min, `${field}.min`) }),
    ...(point.max === undefined ? {} : { max: double(point.max, `${field}.max`) }),
    bucketCounts,
    explicitBounds,
  };
}

function decodeMetric(metric: any, resource: DecodedAttributes, scope: DecodedMetric['scope'], field: string): DecodedMetric {
  expect(typeof metric?.name === 'string' && metric.name !== '', `${field}.name missing`);
  const head = { name: metric.name, unit: metric.unit ?? '', description: metric.description ?? '', resource, scope };
  if (metric.sum !== undefined) {
    return {
      ...head,
      type: 'sum',
      temporality: temporalityOf(metric.sum.aggregationTemporality, `${field}.sum`),
      monotonic: metric.sum.isMonotonic === true,
      points: (metric.sum.dataPoints ?? []).map((p: any, i: number) => numberPoint(p, `${field}.sum.dataPoints[${i}]`)),
    };
  }
  if (metric.gauge !== undefined) {
    return { ...head, type: 'gauge', points: (metric.gauge.dataPoints ?? []).map((p: any, i: number) => numberPoint(p, `${field}.gauge.dataPoints[${i}]`)) };
  }
  if (metric.histogram !== undefined) {
    return {
      ...head,
      type: 'histogram',
      temporality: temporalityOf(metric.histogram.aggregationTemporality, `${field}.histogram`),
      points: (metric.histogram.dataPoints ?? []).map((p: any, i: number) => histogramPoint(p, `${field}.histogram.dataPoints[${i}]`)),
    };
  }
  throw new DecodeError(`${field}: no sum, gauge or histogram`);
}

/** Decodes an ExportMetricsServiceRequest in its JSON form; throws on anything a collector would refuse. */
export function decodeMetricsRequest(body: unknown): DecodedMetric[] {
  const request = body as any;
  expect(Array.isArray(request?.resourceMetrics), 'resourceMetrics missing');
  const metrics: DecodedMetric[] = [];
  request.resourceMetrics.forEach((rm: any, r: number) => {
    const resource = decodeAttributes(rm.resource?.attributes, `resourceMetrics[${r}].resource.attributes`);
    expect(Array.isArray(rm.scopeMetrics), `resourceMetrics[${r}].scopeMetrics missing`);
    rm.scopeMetrics.forEach((sm: any, s: number) => {
      const scope = { name: String(sm.scope?.name ?? ''), ...(sm.scope?.version ? { version: String(sm.scope.version) } : {}) };
      (sm.metrics ?? []).forEach((metric: any, m: number) => {
        metrics.push(decodeMetric(metric, resource, scope, `resourceMetrics[${r}].scopeMetrics[${s}].metrics[${m}]`));
      });
    });
  });
  return metrics;
}


function answer(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { ...headers, 'Content-Type': 'application/json' });
  response.end(JSON.stringify(body));
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const exports: ReceivedExport[] = [];
  const failures: Array<{ status: number; headers: Record<string, string> }> = [];
  const partialSuccesses: Array<{ rejectedDataPoints: number; errorMessage: string }> = [];

  const server = createServer(async (request, response) => {
    if (request.method !== 'POST' || request.url !== '/v1/metrics') return answer(response, 404, { message: 'not found' });
    let raw = await bodyBytes(request);
    if (request.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
    const contentType = (request.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (contentType !== 'application/json') {
      return answer(response, 415, { message: `this receiver decodes application/json only, got ${contentType}` });
    }
    const failure = failures.shift();
    if (failure !== undefined) return answer(response, failure.status, { message: 'scripted failure' }, failure.headers);
    try {
      const metrics = decodeMetricsRequest(JSON.parse(raw.toString('utf8')));
      exports.push({ contentType, headers: request.headers, metrics });
      const partialSuccess = partialSuccesses.shift();
      answer(response, 200, partialSuccess === undefined ? {} : { partialSuccess });
    } catch (error) {
      answer(response, 400, { message: error instanceof Error ? error.message : String(error) });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const metrics = (name?: string) => exports.flatMap((e) => e.metrics).filter((m) => name === undefined || m.name === name);
  return {
    url: `http://127.0.0.1:${port}`,
    exports,
    metrics,
    latestPoints: (name) => metrics(name).at(-1)?.points ?? [],
    allPoints: (name) => metrics(name).flatMap((m) => m.points),
    failNext: (status, times = 1, headers = {}) => {
      for (let i = 0; i < times; i += 1) failures.push({ status, headers });
    },
    rejectOnePointNext: (errorMessage) => {
      partialSuccesses.push({ rejectedDataPoints: 1, errorMessage });
    },
    reset: () => {
      exports.length = 0;
      failures.length = 0;
      partialSuccesses.length = 0;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
