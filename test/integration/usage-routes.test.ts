// Usage counted by the routes and read back by GET /usage, against a real redis-server and a
// stand-in for Claude: chat tokens and cache hits, embeddings tokens, nothing for a refused
// request, and background counting that only logs when Redis is down.

import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler as chat } from '../../functions/chat.ts';
import { handler as embeddings } from '../../functions/embeddings.ts';
import { handler as usageRoute } from '../../functions/usage.ts';
import { minuteUsageKey } from '../../shared/keys.ts';
import { withLogContext } from '../../shared/logger.ts';
import { getRedis } from '../../shared/redis.ts';
import { countUsageInBackground, minuteStart, readUserDay } from '../../shared/usage/counters.ts';
import { startAnthropicDouble, type AnthropicDouble } from '../doubles/anthropic.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke, lambdaContext } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { bearer, signUpAndLogIn } from '../support/session.ts';

const today = () => new Date().toISOString().slice(0, 10);

describe('usage counted by the routes, read by GET /usage', () => {
  const redis = useStandaloneRedis();
  let double: AnthropicDouble;
  beforeAll(async () => {
    double = await startAnthropicDouble();
  });
  afterAll(() => double.close());
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', ...double.env });
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
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', ...double.env, RATE_LIMIT_EMBEDDINGS: '2/1m' });
    const { token } = await signUpAndLogIn();
    const embed = () => invoke(embeddings, httpEvent('POST', '/embeddings', { body: { input: ['one', 'two'] }, headers: bearer(token) }));

    await embed();
    const refused = await embed();

    expect(refused.statusCode).toBe(429);
    expect((await usageOf(token)).requests).toBe(1);
  });

  it('writes a chat’s count before its answer leaves, in one command even when Redis has forgotten its scripts', async () => {
    const { token, user } = await signUpAndLogIn();
    const client = (await getRedis()) as Redis;
    await client.script('FLUSH');
    const event = httpEvent('POST', '/chat', { body: { messages: [{ role: 'user', content: `What is a ratio? ${randomUUID()}` }] }, headers: bearer(token) });

    // Sent on the container's connection the instant the answer is handed back: Redis runs it
    // after the count if the count left before the answer, in one command.
    const countSeenRightBehindTheAnswer = await chat(event as Parameters<typeof chat>[0], lambdaContext('chat')).then(() => readUserDay(client, user.id, today()));

    expect(countSeenRightBehindTheAnswer.requests).toBe(1);
  });

  it('sends the records counted in one tick together: one script per user and one for every minute bucket, in one socket write', async () => {
    const client = (await getRedis()) as Redis;
    // Connected and the scripts known to Redis: no NOSCRIPT retry adds writes of its own.
    countUsageInBackground({ userId: 'warm-up', route: 'POST /chat', requests: 1 });
    for (let waited = 0; waited < 5000 && (await readUserDay(client, 'warm-up', today())).requests === 0; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const socket = client.stream;
    const corkedAtEachScript: number[] = [];
    const write = socket.write.bind(socket);
    socket.write = ((...args: Parameters<typeof socket.write>) => {
      if (/EVAL/i.test(String(args[0]))) corkedAtEachScript.push(socket.writableCorked);
      return write(...args);
    }) as typeof socket.write;

    try {
      countUsageInBackground({ userId: 'b1', route: 'POST /chat', requests: 1, cacheHits: 1 });
      countUsageInBackground({ userId: 'b2', route: 'POST /chat', requests: 1, inputTokens: 7, outputTokens: 3 });
      countUsageInBackground({ userId: 'b1', route: 'POST /batched', requests: 1, inputTokens: 5 });
      for (let waited = 0; waited < 5000 && (await readUserDay(client, 'b1', today())).requests < 2; waited += 20) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      socket.write = write;
    }

    // b1's day, b2's day, the minute bucket: three scripts, corked into one write.
    expect(corkedAtEachScript).toEqual([1, 1, 1]);
    expect(await readUserDay(client, 'b1', today())).toEqual({ requests: 2, inputTokens: 5, outputTokens: 0, cacheHits: 1 });
    expect(await readUserDay(client, 'b2', today())).toEqual({ requests: 1, inputTokens: 7, outputTokens: 3, cacheHits: 0 });
    const fields = await client.hgetall(minuteUsageKey(minuteStart(Date.now())));
    expect(Number(fields['POST /chat|requests'])).toBeGreaterThanOrEqual(3);
    expect(fields['POST /batched|inputTokens']).toBe('5');
  });

  it('logs a failed count once per request, each line with its own request id', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'warn' });
    const output = captureOutput();

    try {
      withLogContext({ requestId: 'req-a' }, () => countUsageInBackground({ userId: 'u1', route: 'POST /chat', requests: 1 }));
      withLogContext({ requestId: 'req-b' }, () => countUsageInBackground({ userId: 'u2', route: 'POST /chat', requests: 1 }));
      for (let waited = 0; waited < 5000 && output.text().split('usage not counted').length < 3; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      output.restore();
    }

    const lines = output
      .text()
      .split('\n')
      .filter((line) => line.includes('usage not counted'))
      .map((line) => JSON.parse(line) as { requestId?: string });
    expect(lines.map((line) => line.requestId).sort()).toEqual(['req-a', 'req-b']);
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
