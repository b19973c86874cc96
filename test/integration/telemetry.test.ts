// OpenTelemetry metrics against a local OTLP receiver and a real redis-server: nothing when no
// endpoint is set, Redis command durations and connections, catalogued metrics only, running
// totals, collector headers kept out of logs, a silent collector; and the request log line.

import { tracingChannel } from 'node:diagnostics_channel';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import middy from '@middy/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler as health } from '../../functions/health.ts';
import { httpBasics, json, withRequestLogging, type HttpEvent, type HttpResult } from '../../shared/http.ts';
import { annotateRequest } from '../../shared/logger.ts';
import { getRedis } from '../../shared/redis.ts';
import { flushTelemetry, resetTelemetry, startTelemetry } from '../../shared/telemetry/export.ts';
import { ALL_METRICS } from '../support/all-metrics.ts';
import { countCacheRequests, countRateLimitDecision, recordTokenUsage } from '../../shared/telemetry/metrics.ts';
import { collectMetrics } from '../../shared/telemetry/registry.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../doubles/otlp-receiver.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';

describe('OpenTelemetry metrics', () => {
  const redis = useStandaloneRedis();
  let receiver: OtlpReceiver;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
  });
  afterAll(() => receiver.close());
  beforeEach(() => {
    resetTelemetry();
    receiver.reset();
  });

  // First: later tests install the process-wide Redis hook.
  it('records nothing, sends nothing and leaves ioredis untraced when OTEL_EXPORTER_OTLP_ENDPOINT is unset', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: undefined });

    const response = await invoke(health, httpEvent('GET', '/health'));
    countCacheRequests('chat', 'hit');
    recordTokenUsage({ operation: 'chat', provider: 'local', model: 'm', inputTokens: 3 });

    expect(response.statusCode).toBe(200);
    expect(collectMetrics()).toEqual([]);
    expect(tracingChannel('ioredis:command').hasSubscribers).toBe(false);
    expect(receiver.exports).toHaveLength(0);
  });

  it('the receiver decodes what the official OpenTelemetry JS exporter sends', async () => {
    const exporter = new OTLPMetricExporter({ url: `${receiver.url}/v1/metrics` });
    const provider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })] });
    const meter = provider.getMeter('reference');
    meter.createCounter('reference.counter').add(3, { kind: 'a' });
    meter.createHistogram('reference.histogram', { unit: 's' }).record(0.25, { kind: 'b' });

    await provider.forceFlush();
    await provider.shutdown();

    expect(receiver.latestPoints('reference.counter')).toMatchObject([{ attributes: { kind: 'a' }, value: 3 }]);
    expect(receiver.latestPoints('reference.histogram')).toMatchObject([{ attributes: { kind: 'b' }, count: 1, sum: 0.25 }]);
  });

  it('exports the Redis commands of an invocation as db.client.operation.duration before the invocation returns', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });

    const response = await invoke(health, httpEvent('GET', '/health'));

    expect(response.statusCode).toBe(200);
    const [metric] = receiver.metrics('db.client.operation.duration');
    expect(metric).toMatchObject({ type: 'histogram', unit: 's', temporality: 'cumulative' });
    const ping = metric!.points.find((point) => point.attributes['db.operation.name'] === 'PING');
    expect(ping).toMatchObject({
      attributes: { 'db.system.name': 'redis', 'server.address': '127.0.0.1', 'server.port': redis.server.port },
      count: 1,
    });
    expect(ping!.sum).toBeGreaterThan(0);
    expect(ping!.attributes).not.toHaveProperty('error.type');
  });

  it('names the container in the resource: service name, version, stage and a per-container instance id', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'tutor-test' });

    await invoke(health, httpEvent('GET', '/health'));

    const [metric] = receiver.metrics();
    expect(metric!.resource).toMatchObject({ 'service.name': 'tutor-test', 'deployment.environment.name': 'dev' });
    expect(metric!.resource['service.instance.id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(metric!.scope.name).toBe('tutor-copiloto');
  });

  it('records a failed Redis command with the Redis error prefix as error.type', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    startTelemetry();
    const client = await getRedis();
    await client.set('telemetry:string', 'x');

    await expect(client.hincrby('telemetry:string', 'field', 1)).rejects.toThrow(/WRONGTYPE/);
    await flushTelemetry();

    const failed = receiver
      .latestPoints('db.client.operation.duration')
      .find((point) => point.attributes['db.operation.name'] === 'HINCRBY');
    expect(failed).toMatchObject({ attributes: { 'error.type': 'WRONGTYPE', 'db.system.name': 'redis' }, count: 1 });
  });

  it('records the Redis error prefix of a failed command as db.response.status_code too, as the Redis conventions ask', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    startTelemetry();
    const client = await getRedis();
    await client.set('telemetry:string', 'x');

    await expect(client.lpush('telemetry:string', 'y')).rejects.toThrow(/WRONGTYPE/);
    await flushTelemetry();

    const failed = receiver
      .latestPoints('db.client.operation.duration')
      .find((point) => point.attributes['db.operation.name'] === 'LPUSH');
    expect(failed?.attributes).toMatchObject({ 'db.response.status_code': 'WRONGTYPE', 'error.type': 'WRONGTYPE' });
  });

  it('reports the Redis connection the container holds as db.client.connection.count', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });

    await invoke(health, httpEvent('GET', '/health'));

    expect(receiver.latestPoints('db.client.connection.count')).toEqual([
      expect.objectContaining({
        attributes: { 'db.client.connection.pool.name': `127.0.0.1:${redis.server.port}`, 'db.client.connection.state': 'used' },
        value: 1,
      }),
    ]);
    expect(receiver.metrics('db.client.connection.count')[0]).toMatchObject({ type: 'sum', monotonic: false });
  });

  it('exports cache lookups, rate-limit decisions and model tokens with their attributes', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });

    countCacheRequests('chat', 'hit');
    countCacheRequests('chat', 'hit');
    countCacheRequests('embeddings', 'miss', 5);
    countRateLimitDecision('chat', 'refused');
    recordTokenUsage({ operation: 'chat', provider: 'anthropic', model: 'claude-haiku-4-5', inputTokens: 120, outputTokens: 30 });
    await flushTelemetry();

    expect(receiver.metrics('tutor.cache.requests')[0]).toMatchObject({ type: 'sum', monotonic: true, temporality: 'cumulative' });
    expect(receiver.latestPoints('tutor.cache.requests')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ attributes: { cache: 'chat', outcome: 'hit' }, value: 2 }),
        expect.objectContaining({ attributes: { cache: 'embeddings', outcome: 'miss' }, value: 5 }),
      ]),
    );
    expect(receiver.latestPoints('tutor.rate_limit.decisions')).toEqual([
      expect.objectContaining({ attributes: { route: 'chat', outcome: 'refused' }, value: 1 }),
    ]);
    const tokens = receiver.latestPoints('gen_ai.client.token.usage');
    const common = { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': 'claude-haiku-4-5' };
    expect(tokens).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ attributes: { ...common, 'gen_ai.token.type': 'input' }, count: 1, sum: 120 }),
        expect.objectContaining({ attributes: { ...common, 'gen_ai.token.type': 'output' }, count: 1, sum: 30 }),
      ]),
    );
  });

  it('sends only catalogued metrics, with their catalogued kind, unit and attribute names', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    countCacheRequests('embeddings', 'hit');
    countRateLimitDecision('embeddings', 'allowed');
    recordTokenUsage({ operation: 'embeddings', provider: 'local', model: 'local-hash-384', inputTokens: 12 });

    await invoke(health, httpEvent('GET', '/health'));

    const types = { counter: 'sum', updowncounter: 'sum', gauge: 'gauge', histogram: 'histogram' } as const;
    expect(receiver.metrics().length).toBeGreaterThanOrEqual(4);
    for (const metric of receiver.metrics()) {
      const descriptor = ALL_METRICS.find((candidate) => candidate.name === metric.name);
      expect(descriptor, metric.name).toBeDefined();
      expect({ type: metric.type, unit: metric.unit }).toEqual({ type: types[descriptor!.kind], unit: descriptor!.unit });
      for (const point of metric.points) {
        for (const attribute of Object.keys(point.attributes)) expect(descriptor!.attributes, metric.name).toContain(attribute);
      }
    }
  });

  it('keeps counting across exports: each export carries the running totals', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });

    countCacheRequests('chat', 'miss');
    await flushTelemetry();
    countCacheRequests('chat', 'miss');
    await flushTelemetry();

    const [first, second] = receiver.metrics('tutor.cache.requests').map((metric) => metric.points[0]!);
    expect([first!.value, second!.value]).toEqual([1, 2]);
    expect(second!.startTimeUnixNano).toBe(first!.startTimeUnixNano);
  });

  it('sends OTEL_EXPORTER_OTLP_HEADERS to the collector and keeps their values out of the logs', async () => {
    await useEnvironment({
      REDIS_URL: redis.server.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Basic%20c2VjcmV0LXRva2VuLTEyMw%3D%3D,X-Scope-OrgID=tenant-1',
      LOG_LEVEL: 'debug',
    });
    const output = captureOutput();

    try {
      countCacheRequests('chat', 'hit');
      await flushTelemetry();
      receiver.failNext(500);
      await flushTelemetry(); // refused: logged
    } finally {
      output.restore();
    }

    expect(receiver.exports[0]!.headers).toMatchObject({ authorization: 'Basic c2VjcmV0LXRva2VuLTEyMw==', 'x-scope-orgid': 'tenant-1' });
    expect(output.text()).toContain('metrics export failed');
    expect(output.text()).not.toContain('c2VjcmV0LXRva2VuLTEyMw');
  });

  it('keeps a credential out of the logs when the collector echoes it without its scheme in a partial success', async () => {
    const credential = 'dGVuYW50LTQyOmVjaG9lZC1iYWNr';
    await useEnvironment({
      REDIS_URL: redis.server.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Basic%20${credential}`,
      LOG_LEVEL: 'warn',
    });
    receiver.rejectOnePointNext(`tenant credential ${credential} may not write`);
    const output = captureOutput();

    try {
      countCacheRequests('chat', 'hit');
      await flushTelemetry();
    } finally {
      output.restore();
    }

    expect(output.text()).toContain('the OTLP endpoint rejected some data points');
    expect(output.text()).toContain('tenant credential *** may not write');
    expect(output.text()).not.toContain(credential);
  });

  it('answers normally, within the export time-out, when the collector does not answer', async () => {
    const silent: Server = createServer(() => {}); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TIMEOUT: '200' });
    const started = Date.now();

    const response = await invoke(health, httpEvent('GET', '/health'));

    silent.closeAllConnections();
    silent.close();
    expect(response.statusCode).toBe(200);
    expect(Date.now() - started).toBeLessThan(3000); // a hang would reach the test time-out
  });

  describe('when the collector refuses or does not answer', () => {
    it('sends nothing more until the Retry-After of a collector that answered 429 has passed, then sends the totals', async () => {
      await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
      receiver.failNext(429, 1, { 'Retry-After': '1' });
      countCacheRequests('chat', 'hit');
      await flushTelemetry(); // refused

      countCacheRequests('chat', 'hit');
      await flushTelemetry();
      const duringWait = receiver.exports.length;
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await flushTelemetry();

      expect(duringWait).toBe(0);
      expect(receiver.latestPoints('tutor.cache.requests')).toEqual([expect.objectContaining({ value: 2 })]);
    });

    it('does not make the next invocations wait for a collector that did not answer the last export', async () => {
      let exports = 0;
      const silent: Server = createServer(() => (exports += 1)); // accepts, never answers
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const { port } = silent.address() as AddressInfo;
      // A time-out of 10 s: an invocation that exported again would take that long, far above the bound below.
      await useEnvironment({ REDIS_URL: redis.server.url, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TIMEOUT: '10000' });
      await invoke(health, httpEvent('GET', '/health')); // waits out the time-out

      const started = Date.now();
      const responses = [await invoke(health, httpEvent('GET', '/health')), await invoke(health, httpEvent('GET', '/health'))];
      const took = Date.now() - started;

      silent.closeAllConnections();
      silent.close();
      expect(responses.map((response) => response.statusCode)).toEqual([200, 200]);
      expect(took).toBeLessThan(3_000);
      expect(exports).toBe(1);
    }, 45_000); // the time-out once, and twice more should the invocations export again
  });

  describe('the request log line', () => {
    it('carries the fields annotated during the request, such as the cache outcome', async () => {
      await useEnvironment({ LOG_LEVEL: 'info' });
      const handler = withRequestLogging(
        'GET /annotated',
        middy<HttpEvent, HttpResult>()
          .use(httpBasics())
          .handler(async () => {
            annotateRequest({ cache: 'hit' });
            return json(200, {});
          }),
      );
      const output = captureOutput();

      try {
        await invoke(handler, httpEvent('GET', '/annotated'));
      } finally {
        output.restore();
      }

      const lines = output.text().trim().split('\n').map((line) => JSON.parse(line));
      expect(lines.find((line) => line.message === 'request')).toMatchObject({
        level: 'info',
        route: 'GET /annotated',
        status: 200,
        cache: 'hit',
        requestId: expect.any(String),
        durationMs: expect.any(Number),
      });
    });
  });
});
