// OTLP/HTTP JSON encoding of metrics (an ExportMetricsServiceRequest in the protobuf JSON
// mapping): resourceMetrics → scopeMetrics → metrics with sum / gauge / histogram data points.
// Enums are integers and 64-bit integers are decimal strings, as the OTLP specification requires
// of JSON. Hand-written because the OpenTelemetry SDK with its OTLP exporter bundles to ~480 KB,
// twice a function's whole budget (see docs/observability.md).

import type { Attributes, AttributeValue, GaugePoint, HistogramPoint, MetricData, SumPoint } from './registry.ts';

const AGGREGATION_TEMPORALITY = { delta: 1, cumulative: 2 } as const;

interface KeyValue {
  key: string;
  value: { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };
}

function anyValue(value: AttributeValue): KeyValue['value'] {
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  return Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value };
}

function encodeAttributes(attributes: Attributes): KeyValue[] {
  return Object.entries(attributes).map(([key, value]) => ({ key, value: anyValue(value) }));
}

function nanos(ms: number): string {
  return (BigInt(Math.round(ms)) * 1_000_000n).toString();
}

function numberValue(value: number): { asInt: string } | { asDouble: number } {
  return Number.isInteger(value) ? { asInt: String(value) } : { asDouble: value };
}

function encodeMetric(metric: MetricData): Record<string, unknown> {
  const { descriptor, timeMs } = metric;
  const head = { name: descriptor.name, description: descriptor.description, unit: descriptor.unit };
  const temporality = AGGREGATION_TEMPORALITY[metric.temporality];
  switch (descriptor.kind) {
    case 'counter':
    case 'updowncounter':
      return {
        ...head,
        sum: {
          aggregationTemporality: temporality,
          isMonotonic: descriptor.kind === 'counter',
          dataPoints: (metric.points as SumPoint[]).map((point) => ({
            attributes: encodeAttributes(point.attributes),
            startTimeUnixNano: nanos(point.startTimeMs),
            timeUnixNano: nanos(point.timeMs ?? timeMs),
            ...numberValue(point.value),
          })),
        },
      };
    case 'gauge':
      return {
        ...head,
        gauge: {
          dataPoints: (metric.points as GaugePoint[]).map((point) => ({
            attributes: encodeAttributes(point.attributes),
            timeUnixNano: nanos(timeMs),
            ...numberValue(point.value),
          })),
        },
      };
    case 'histogram':
      return {
        ...head,
        histogram: {
          aggregationTemporality: temporality,
          dataPoints: (metric.points as HistogramPoint[]).map((point) => ({
            attributes: encodeAttributes(point.attributes),
            startTimeUnixNano: nanos(point.startTimeMs),
            timeUnixNano: nanos(timeMs),
            count: String(point.count),
            sum: point.sum,
            min: point.min,
            max: point.max,
            bucketCounts: point.bucketCounts.map(String),
            explicitBounds: [...(descriptor.boundaries ?? [])],
          })),
        },
      };
  }
}

export interface Scope {
  name: string;
  version: string;
}

/** The request body of `POST /v1/metrics` for one resource (this container) and one scope. */
export function encodeMetricsRequest(resource: Attributes, scope: Scope, metrics: MetricData[]): string {
  return JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: encodeAttributes(resource) },
        scopeMetrics: [{ scope, metrics: metrics.map(encodeMetric) }],
      },
    ],
  });
}
