// The Grafana dashboard: importable, querying only metrics the code exports (under the names
// Prometheus gives OTLP metrics) and labels they carry, with panels for cache hit rate, Redis
// latency, connections, memory, rate-limit refusals, Claude tokens and usage.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL_METRICS } from '../support/all-metrics.ts';
import type { MetricDescriptor } from '../../shared/telemetry/catalogue.ts';
import { FLUSH_METRICS } from '../../shared/telemetry/flush-catalogue.ts';

// How Prometheus names OTLP metrics (its OTLP receiver and the Collector's Prometheus exporters,
// default translation "UnderscoreEscapingWithSuffixes"): characters outside [a-zA-Z0-9_:] become
// `_`, the unit is appended as a word (s → seconds, By → bytes; `{...}` annotations are dropped),
// monotonic sums end in `_total`, histograms become `_bucket`, `_sum` and `_count` series.
const UNIT_WORDS: Record<string, string> = { s: 'seconds', ms: 'milliseconds', By: 'bytes', KiBy: 'kibibytes' };

function prometheusNames(metric: MetricDescriptor): string[] {
  let base = metric.name.replace(/[^a-zA-Z0-9_:]/g, '_');
  const unit = metric.unit.startsWith('{') ? undefined : metric.unit === '1' && metric.kind === 'gauge' ? 'ratio' : UNIT_WORDS[metric.unit];
  if (unit !== undefined && !base.endsWith(`_${unit}`)) base = `${base}_${unit}`;
  switch (metric.kind) {
    case 'counter':
      return [`${base}_total`];
    case 'histogram':
      return [`${base}_bucket`, `${base}_sum`, `${base}_count`];
    default:
      return [base];
  }
}

const labelOf = (attribute: string) => attribute.replace(/[^a-zA-Z0-9_]/g, '_');

const EXPORTED = new Map<string, MetricDescriptor>(ALL_METRICS.flatMap((metric) => prometheusNames(metric).map((name) => [name, metric] as const)));

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** Metric names of a PromQL expression: identifiers that are not functions, keywords, labels or durations. */
function metricsIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ');
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?![a-zA-Z0-9_:]|\s*\()/g)]
    .map((match) => match[0])
    .filter((word) => !PROMQL_WORDS.has(word) && !/^\d/.test(word));
}

/** Label names used in matchers and in by / without clauses. */
function labelsIn(expr: string): string[] {
  const labels: string[] = [];
  for (const [, matchers] of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const [, name] of matchers!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.push(name!);
  }
  for (const [, names] of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    labels.push(...names!.split(',').map((name) => name.trim()).filter(Boolean));
  }
  return labels;
}

interface Panel {
  type: string;
  title: string;
  id: number;
  datasource?: { uid?: string };
  targets?: Array<{ expr: string; interval?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(new URL('../../infra/grafana/dashboard.json', import.meta.url), 'utf8'));
const panels: Panel[] = (dashboard.panels as Panel[]).flatMap((panel) => [panel, ...(panel.panels ?? [])]);
const queries = panels.flatMap((panel) =>
  (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr, interval: target.interval })),
);
/** What the dashboard holds, so that the tests looping over panels and queries check that many. */
const GRAPH_PANELS = 18;
const QUERIES = 23;

describe('the Grafana dashboard', () => {
  it('names metrics the way Prometheus stores the OTLP names', () => {
    const byName = (name: string) => ALL_METRICS.find((metric) => metric.name === name)!;

    expect(prometheusNames(byName('db.client.operation.duration'))).toEqual([
      'db_client_operation_duration_seconds_bucket',
      'db_client_operation_duration_seconds_sum',
      'db_client_operation_duration_seconds_count',
    ]);
    expect(prometheusNames(byName('tutor.cache.requests'))).toEqual(['tutor_cache_requests_total']);
    expect(prometheusNames(byName('redis.memory.used'))).toEqual(['redis_memory_used_bytes']);
    expect(prometheusNames(byName('db.client.connection.count'))).toEqual(['db_client_connection_count']);
  });

  it('is an importable dashboard: a title, a uid, a Prometheus data source variable, unique panel ids', () => {
    expect(dashboard).toMatchObject({ title: expect.any(String), uid: expect.any(String), schemaVersion: expect.any(Number) });
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }));
    const ids = panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const graphPanels = panels.filter((candidate) => candidate.type !== 'row');
    expect(graphPanels).toHaveLength(GRAPH_PANELS);
    for (const panel of graphPanels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
    }
  });

  it('queries only metrics that the code exports', () => {
    expect(queries).toHaveLength(QUERIES);
    for (const { panel, expr } of queries) {
      const names = metricsIn(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect([...EXPORTED.keys()], `${panel}: ${name}`).toContain(name);
    }
  });

  it('filters and groups only by labels that those metrics carry', () => {
    let checked = 0;
    for (const { panel, expr } of queries) {
      const carried = new Set(['le', ...metricsIn(expr).flatMap((name) => EXPORTED.get(name)!.attributes.map(labelOf))]);
      for (const label of labelsIn(expr)) {
        expect([...carried], `${panel}: label ${label}`).toContain(label);
        checked += 1;
      }
    }

    expect(checked).toBeGreaterThan(0); // the label parser found the dashboard's labels at all
  });

  it('takes rates of the metrics exported once a minute with a one-minute min step, so that each window holds several of their points', () => {
    const everyMinute = new Set(Object.values(FLUSH_METRICS).flatMap(prometheusNames));
    const rated = queries.filter(({ expr }) => /\brate\(/.test(expr) && metricsIn(expr).some((name) => everyMinute.has(name)));

    expect(rated.length).toBeGreaterThan(0);
    for (const { panel, interval } of rated) expect(interval, panel).toBe('1m');
  });

  it('counts each Redis node’s INFO gauges once, however many flush-metrics containers reported them', () => {
    // Each container is its own series (service.instance.id): a replaced one stays visible for
    // Prometheus's 5-minute lookback beside its successor, both with the same node's figure.
    const gauges = Object.values(FLUSH_METRICS).filter((metric) => metric.kind === 'gauge').flatMap(prometheusNames);
    const reading = queries.filter(({ expr }) => metricsIn(expr).some((name) => gauges.includes(name)));

    expect(reading.length).toBeGreaterThan(0);
    for (const { panel, expr } of reading) {
      for (const name of metricsIn(expr)) expect(expr, panel).toContain(`max by (server_address, server_port) (${name})`);
    }
  });

  it('shows cache hit rate, Redis latency p50 and p99, connections, memory, rate-limit refusals, Claude tokens and usage', () => {
    const all = queries.map((query) => query.expr).join('\n');

    expect(all).toMatch(/tutor_cache_requests_total\{outcome="hit"\}/);
    expect(all).toMatch(/histogram_quantile\(0\.5, sum by \(le\) \(rate\(db_client_operation_duration_seconds_bucket/);
    expect(all).toMatch(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(db_client_operation_duration_seconds_bucket/);
    expect(all).toContain('db_client_connection_count');
    expect(all).toContain('redis_clients_connected');
    expect(all).toContain('redis_memory_used_bytes');
    expect(all).toMatch(/tutor_rate_limit_decisions_total\{outcome="refused"\}/);
    expect(all).toMatch(/gen_ai_client_token_usage_sum\{gen_ai_operation_name="chat"\}/);
    expect(all).toContain('tutor_usage_requests_total');
    expect(all).toContain('tutor_usage_tokens_total');
  });
});
