// The metrics and log fields of the routes, exported to a local OTLP receiver: POST /chat's cache
// outcome, rate-limit decisions and Claude tokens, POST /embeddings' hits, misses and tokens, and
// login throttle decisions.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler as chat } from '../../functions/chat.ts';
import { handler as embeddings } from '../../functions/embeddings.ts';
import { resetTelemetry } from '../../shared/telemetry/export.ts';
import { startAnthropicDouble, type AnthropicDouble } from '../doubles/anthropic.ts';
import { startOtlpReceiver, type DecodedPoint, type OtlpReceiver } from '../doubles/otlp-receiver.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { bearer, callLogin, signUpAndLogIn } from '../support/session.ts';

const valueOf = (points: DecodedPoint[], attributes: Record<string, string>) =>
  points.find((point) => Object.entries(attributes).every(([name, value]) => point.attributes[name] === value))?.value;

describe('metrics and logs of the routes', () => {
  const redis = useStandaloneRedis();
  let double: AnthropicDouble;
  let receiver: OtlpReceiver;
  beforeAll(async () => {
    [double, receiver] = await Promise.all([startAnthropicDouble(), startOtlpReceiver()]);
  });
  afterAll(() => Promise.all([double.close(), receiver.close()]));
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', ...double.env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    resetTelemetry();
    receiver.reset();
  });

  it('POST /chat exports its cache outcome, its rate-limit decision and Claude’s tokens, and logs the cache outcome', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', ...double.env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, LOG_LEVEL: 'info' });
    const { token } = await signUpAndLogIn();
    const body = { messages: [{ role: 'user', content: `Why is the sky blue? ${randomUUID()}` }] };
    resetTelemetry();
    const output = captureOutput();
    let miss;
    try {
      miss = await invoke(chat, httpEvent('POST', '/chat', { body, headers: bearer(token) }));
      await invoke(chat, httpEvent('POST', '/chat', { body, headers: bearer(token) }));
    } finally {
      output.restore();
    }

    const cache = receiver.latestPoints('tutor.cache.requests');
    expect(valueOf(cache, { cache: 'chat', outcome: 'miss' })).toBe(1);
    expect(valueOf(cache, { cache: 'chat', outcome: 'hit' })).toBe(1);
    expect(valueOf(receiver.latestPoints('tutor.rate_limit.decisions'), { route: 'chat', outcome: 'allowed' })).toBe(2);
    const tokens = receiver.latestPoints('gen_ai.client.token.usage');
    const input = tokens.find((point) => point.attributes['gen_ai.token.type'] === 'input');
    expect(input).toMatchObject({
      attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': 'claude-sonnet-4-5' },
      count: 1,
      sum: miss.json.usage.inputTokens,
    });
    const requestLines = output
      .text()
      .split('\n')
      .filter((line) => line.includes('"message":"request"'))
      .map((line) => JSON.parse(line));
    expect(requestLines.filter((line) => line.route === 'POST /chat').map((line) => line.cache)).toEqual(['MISS', 'HIT']);
  });

  it('POST /embeddings exports hits and misses per input and the provider’s tokens', async () => {
    const { token } = await signUpAndLogIn();
    const input = [`gamma ${randomUUID()}`, `delta ${randomUUID()}`, `epsilon ${randomUUID()}`];

    await invoke(embeddings, httpEvent('POST', '/embeddings', { body: { input: input.slice(0, 1) }, headers: bearer(token) }));
    await invoke(embeddings, httpEvent('POST', '/embeddings', { body: { input }, headers: bearer(token) }));

    const cache = receiver.latestPoints('tutor.cache.requests');
    expect(valueOf(cache, { cache: 'embeddings', outcome: 'hit' })).toBe(1);
    expect(valueOf(cache, { cache: 'embeddings', outcome: 'miss' })).toBe(1 + 2);
    const calls = receiver.latestPoints('gen_ai.client.token.usage');
    expect(calls).toEqual([
      expect.objectContaining({
        attributes: { 'gen_ai.operation.name': 'embeddings', 'gen_ai.provider.name': 'local', 'gen_ai.request.model': 'local-hash-384', 'gen_ai.token.type': 'input' },
        count: 2,
      }),
    ]);
  });

  it('POST /embeddings exports the inputs of a request asking for fresh vectors as bypasses, as the chat counts its own', async () => {
    const { token } = await signUpAndLogIn();
    const input = [`zeta ${randomUUID()}`, `eta ${randomUUID()}`];

    await invoke(embeddings, httpEvent('POST', '/embeddings', { body: { input }, headers: { ...bearer(token), 'Cache-Control': 'no-cache' } }));

    const cache = receiver.latestPoints('tutor.cache.requests');
    expect(valueOf(cache, { cache: 'embeddings', outcome: 'bypass' })).toBe(2);
    expect(valueOf(cache, { cache: 'embeddings', outcome: 'miss' }) ?? 0).toBe(0);
  });

  it('counts a refused chat request as refused, by route', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', ...double.env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, RATE_LIMIT_CHAT: '1/1h' });
    const { token } = await signUpAndLogIn();
    const ask = () => invoke(chat, httpEvent('POST', '/chat', { body: { messages: [{ role: 'user', content: `Hi ${randomUUID()}` }] }, headers: bearer(token) }));
    resetTelemetry();

    const answers = [(await ask()).statusCode, (await ask()).statusCode];

    expect(answers).toEqual([200, 429]);
    const decisions = receiver.latestPoints('tutor.rate_limit.decisions');
    expect([valueOf(decisions, { route: 'chat', outcome: 'allowed' }), valueOf(decisions, { route: 'chat', outcome: 'refused' })]).toEqual([1, 1]);
  });

  it('counts login throttle decisions by bucket, once per attempt', async () => {
    const { user } = await signUpAndLogIn();
    resetTelemetry();

    await callLogin({ email: user.email, password: 'wrong password, surely' });

    const decisions = receiver.latestPoints('tutor.rate_limit.decisions');
    expect(valueOf(decisions, { route: 'login:address', outcome: 'allowed' })).toBe(1);
    expect(valueOf(decisions, { route: 'login:account', outcome: 'allowed' })).toBe(1);
  });
});
