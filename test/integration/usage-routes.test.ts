// Usage counted by the routes and read back by GET /usage, against a real redis-server and a
// stand-in for Claude: chat tokens and cache hits, embeddings tokens, nothing for a refused
// request, and background counting that only logs when Redis is down.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler as chat } from '../../functions/chat.ts';
import { handler as embeddings } from '../../functions/embeddings.ts';
import { handler as usageRoute } from '../../functions/usage.ts';
import { countUsageInBackground } from '../../shared/usage/counters.ts';
import { startAnthropicDouble, type AnthropicDouble } from '../doubles/anthropic.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';
import { startStandaloneRedis, type RedisServer } from '../support/redis.ts';
import { bearer, signUpAndLogIn } from '../support/session.ts';

const today = () => new Date().toISOString().slice(0, 10);

describe('usage counted by the routes, read by GET /usage', () => {
  let redis: RedisServer;
  let double: AnthropicDouble;
  beforeAll(async () => {
    [redis, double] = await Promise.all([startStandaloneRedis(), startAnthropicDouble()]);
  });
  afterAll(async () => {
    await useEnvironment({});
    await Promise.all([redis.stop(), double.close()]);
  });
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: redis.url, PASSWORD_SCRYPT_LOG2N: '14', ...double.env });
  });

  const usageOf = async (token: string) => (await invoke(usageRoute, httpEvent('GET', '/usage', { headers: bearer(token) }))).json;

  it('counts a chat answer with its Claude tokens, and a cached repeat as a cache hit without tokens', async () => {
    const { token } = await signUpAndLogIn();
    const body = { messages: [{ role: 'user', content: `What is a prime number? ${randomUUID()}` }] };

    const miss = await invoke(chat, httpEvent('POST', '/chat', { body, headers: bearer(token) }));
    const hit = await invoke(chat, httpEvent('POST', '/chat', { body, headers: bearer(token) }));
    const usage = await usageOf(token);

    expect([miss.headers['x-cache'], hit.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(usage).toEqual({
      day: today(),
      requests: 2,
      inputTokens: miss.json.usage.inputTokens,
      outputTokens: miss.json.usage.outputTokens,
      cacheHits: 1,
    });
    expect(usage.inputTokens).toBeGreaterThan(0);
  });

  it('counts the tokens an embeddings request cost at the provider, and no tokens for the inputs served from the cache', async () => {
    const { token } = await signUpAndLogIn();
    const input = [`alpha ${randomUUID()}`, `beta ${randomUUID()}`];

    const first = await invoke(embeddings, httpEvent('POST', '/embeddings', { body: { input }, headers: bearer(token) }));
    const second = await invoke(embeddings, httpEvent('POST', '/embeddings', { body: { input }, headers: bearer(token) }));
    const usage = await usageOf(token);

    expect(second.headers['x-cache-hits']).toBe('2/2');
    expect(usage).toMatchObject({
      requests: 2,
      // The second request came from the cache, as a chat HIT does: it cost the user no tokens.
      inputTokens: first.json.usage.prompt_tokens,
      outputTokens: 0,
      cacheHits: 2,
    });
  });

  it('does not count a request the rate limiter refused', async () => {
    await useEnvironment({ REDIS_URL: redis.url, PASSWORD_SCRYPT_LOG2N: '14', ...double.env, RATE_LIMIT_EMBEDDINGS: '2/1m' });
    const { token } = await signUpAndLogIn();
    const embed = () => invoke(embeddings, httpEvent('POST', '/embeddings', { body: { input: ['one', 'two'] }, headers: bearer(token) }));

    await embed();
    const refused = await embed();

    expect(refused.statusCode).toBe(429);
    expect((await usageOf(token)).requests).toBe(1);
  });

  it('logs, and throws nothing at the caller, when Redis is down while counting in the background', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'warn' });
    const output = captureOutput();

    try {
      countUsageInBackground({ userId: 'u1', route: 'POST /chat', requests: 1 });
      for (let waited = 0; waited < 5000 && !output.text().includes('usage not counted'); waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      output.restore();
    }

    expect(output.text()).toContain('usage not counted');
  });
});
