// The in-process store of metric points between two exports: sums, histograms and gauges keyed
// by their attribute sets. Points are cumulative over the container's life (OTLP cumulative
// temporality, Prometheus's native model): each container is its own series through its
// `service.instance.id`, and a lost export loses nothing because the next one carries the totals.

import type { MetricDescriptor } from './catalogue.ts';

export type AttributeValue = string | number | boolean;
export type Attributes = Readonly<Record<string, AttributeValue>>;

export interface SumPoint {
  attributes: Attributes;
  startTimeMs: number;
  value: number;
  /** The end of the point's window when it is not the export time (a flushed usage bucket). */
  timeMs?: number;
}

export interface HistogramPoint {
  attributes: Attributes;
  startTimeMs: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  /** One count per bucket: `boundaries.length + 1` of them, the last one unbounded. */
  bucketCounts: number[];
}

export interface GaugePoint {
  attributes: Attributes;
  value: number;
}

export interface MetricData {
  descriptor: MetricDescriptor;
  /** Sums and histograms: 'cumulative' here; the flushed usage buckets are 'delta'. */
  temporality: 'cumulative' | 'delta';
  timeMs: number;
  points: Array<SumPoint | HistogramPoint | GaugePoint>;
}

type Point = SumPoint | HistogramPoint | GaugePoint;

const series = new Map<MetricDescriptor, Map<string, Point>>();

/** The same attributes in any order name the same series. */
function seriesKey(attributes: Attributes): string {
  const names = Object.keys(attributes);
  if (names.length > 1) names.sort();
  let text = '';
  for (const name of names) text += `${name}\u0000${String(attributes[name])}\u0001`;
  return text;
}

function pointsOf(descriptor: MetricDescriptor): Map<string, Point> {
  let points = series.get(descriptor);
  if (points === undefined) {
    points = new Map();
    series.set(descriptor, points);
  }
  return points;
}

/** Adds to a counter or up-down counter. */
export function addToSum(descriptor: MetricDescriptor, value: number, attributes: Attributes): void {
  const points = pointsOf(descriptor);
  const key = seriesKey(attributes);
  const point = points.get(key) as SumPoint | undefined;
  if (point === undefined) points.set(key, { attributes, startTimeMs: Date.now(), value });
  else point.value += value;
}

/**
 * Sets a sum's total as observed elsewhere (a Redis server's counter since it started, the
 * connections held right now), with the time that total counts from.
 */
export function observeSum(descriptor: MetricDescriptor, value: number, attributes: Attributes, startTimeMs: number): void {
  pointsOf(descriptor).set(seriesKey(attributes), { attributes, startTimeMs, value });
}

export function setGauge(descriptor: MetricDescriptor, value: number, attributes: Attributes): void {
  pointsOf(descriptor).set(seriesKey(attributes), { attributes, value });
}

export function recordInHistogram(descriptor: MetricDescriptor, value: number, attributes: Attributes): void {
  const boundaries = descriptor.boundaries ?? [];
  const points = pointsOf(descriptor);
  const key = seriesKey(attributes);
  let point = points.get(key) as HistogramPoint | undefined;
  if (point === undefined) {
    point = {
      attributes,
      startTimeMs: Date.now(),
      count: 0,
      sum: 0,
      min: value,
      max: value,
      bucketCounts: new Array<number>(boundaries.length + 1).fill(0),
    };
    points.set(key, point);
  }
  // OTLP buckets are upper-inclusive: bucket i holds (boundaries[i-1], boundaries[i]].
  let bucket = 0;
  while (bucket < boundaries.length && value > boundaries[bucket]!) bucket += 1;
  point.bucketCounts[bucket]! += 1;
  point.count += 1;
  point.sum += value;
  if (value < point.min) point.min = value;
  if (value > point.max) point.max = value;
}

/** Forgets every series of one metric (before observing a fresh set, e.g. connections held now). */
export function clearMetric(descriptor: MetricDescriptor): void {
  series.get(descriptor)?.clear();
}

/** A copy of every series, as of now. */
export function collectMetrics(): MetricData[] {
  const timeMs = Date.now();
  const data: MetricData[] = [];
  for (const [descriptor, points] of series) {
    if (points.size === 0) continue;
    data.push({
      descriptor,
      temporality: 'cumulative',
      timeMs,
      points: [...points.values()].map((point) =>
        'bucketCounts' in point ? { ...point, bucketCounts: [...point.bucketCounts] } : { ...point },
      ),
    });
  }
  return data;
}

/** Drops every point (tests: a fresh container). */
export function resetMetrics(): void {
  series.clear();
}
