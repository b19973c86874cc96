// The usage counters and GET /usage against a real redis-server: day and minute buckets with TTLs
// and a flush index, no increment lost under concurrency or after SCRIPT FLUSH, and only the
// caller's counters of the current UTC day.

import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { beforeEach, describe, expect, it } from 'vitest';
import { handler as usageRoute } from '../../functions/usage.ts';
import { minuteUsageKey, usageIndexKey, userDayUsageKey } from '../../shared/keys.ts';
import { getRedis } from '../../shared/redis.ts';
import {
  MINUTE_TTL_SECONDS,
  USER_DAY_TTL_SECONDS,
  dayMember,
  minuteMember,
  readUserDay,
  recordUsage,
} from '../../shared/usage/counters.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { bearer, signUpAndLogIn } from '../support/session.ts';

const AT = Date.parse('2031-05-06T10:20:30.000Z');
const MINUTE = Date.parse('2031-05-06T10:20:00.000Z');

describe('usage counters', () => {
  const redis = useStandaloneRedis();
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14' });
    await (await getRedis()).flushall();
  });

  it('counts a request into the user’s day and the route’s minute', async () => {
    const client = await getRedis();

    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, inputTokens: 120, outputTokens: 30, at: AT });
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, cacheHits: 1, at: AT + 1000 });

    expect(await readUserDay(client, 'u1', '2031-05-06')).toEqual({ requests: 2, inputTokens: 120, outputTokens: 30, cacheHits: 1 });
    expect(await client.hgetall(minuteUsageKey(MINUTE))).toEqual({
      'POST /chat|requests': '2',
      'POST /chat|inputTokens': '120',
      'POST /chat|outputTokens': '30',
      'POST /chat|cacheHits': '1',
    });
  });

  it('counts after Redis forgot its scripts (SCRIPT FLUSH, a restart): they are sent again', async () => {
    const client = await getRedis();
    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at: AT });
    await client.script('FLUSH');

    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at: AT });

    expect(await readUserDay(client, 'u1', '2031-05-06')).toMatchObject({ requests: 2 });
    expect(await client.hget(minuteUsageKey(MINUTE), 'POST /chat|requests')).toBe('2');
  });

  it('gives every bucket and the index a TTL, so nothing stays forever', async () => {
    const client = await getRedis();

    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at: AT });

    const [dayTtl, minuteTtl, indexTtl] = await Promise.all([
      client.ttl(userDayUsageKey('u1', '2031-05-06')),
      client.ttl(minuteUsageKey(MINUTE)),
      client.ttl(usageIndexKey()),
    ]);
    expect(dayTtl).toBeGreaterThan(USER_DAY_TTL_SECONDS - 5);
    expect(dayTtl).toBeLessThanOrEqual(USER_DAY_TTL_SECONDS);
    expect(minuteTtl).toBeGreaterThan(MINUTE_TTL_SECONDS - 5);
    expect(minuteTtl).toBeLessThanOrEqual(MINUTE_TTL_SECONDS);
    expect(indexTtl).toBeGreaterThan(0);
  });

  it('registers each bucket in the flush index, scored by the time it closes', async () => {
    const client = await getRedis();

    await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at: AT });

    expect(await client.zrange(usageIndexKey(), '0', '-1', 'WITHSCORES')).toEqual([
      minuteMember(MINUTE),
      String(MINUTE + 60_000),
      dayMember('2031-05-06', 'u1'),
      String(Date.parse('2031-05-07T00:00:00.000Z')),
    ]);
  });

  it('loses no increment when many requests count at once', async () => {
    const client = await getRedis();

    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        recordUsage(client, { userId: 'u1', route: i % 2 ? 'POST /chat' : 'POST /embeddings', requests: 1, inputTokens: i, at: AT }),
      ),
    );

    const day = await readUserDay(client, 'u1', '2031-05-06');
    const minute = await client.hgetall(minuteUsageKey(MINUTE));
    expect(day.requests).toBe(200);
    expect(day.inputTokens).toBe((199 * 200) / 2);
    expect(Number(minute['POST /chat|requests']) + Number(minute['POST /embeddings|requests'])).toBe(200);
  });

  it('writes nothing when every count is zero', async () => {
    const client = await getRedis();

    await recordUsage(client, { userId: 'u1', route: 'POST /chat', at: AT });

    expect(await client.dbsize()).toBe(0);
  });

  it('refuses a count that is not a whole number ≥ 0', async () => {
    const client = await getRedis();

    await expect(recordUsage(client, { userId: 'u1', route: 'POST /chat', inputTokens: -1 })).rejects.toThrow(RangeError);
    await expect(recordUsage(client, { userId: 'u1', route: 'POST /chat', inputTokens: 1.5 })).rejects.toThrow(RangeError);
  });

  it('sends the two scripts of a record in one socket write (corked), and both apply', async () => {
    const client = (await getRedis()) as Redis;
    // Connected and the scripts known to Redis: no NOSCRIPT retry adds writes of its own.
    await recordUsage(client, { userId: 'warm-up', route: 'POST /warm-up', requests: 1, at: AT });
    const socket = client.stream;
    const corkedAtEachWrite: number[] = [];
    const write = socket.write.bind(socket);
    socket.write = ((...args: Parameters<typeof socket.write>) => {
      corkedAtEachWrite.push(socket.writableCorked);
      return write(...args);
    }) as typeof socket.write;

    try {
      await recordUsage(client, { userId: 'u1', route: 'POST /chat', requests: 1, at: AT });
    } finally {
      socket.write = write;
    }

    expect(corkedAtEachWrite).toEqual([1, 1]);
    expect(socket.writableCorked).toBe(0);
    expect(await readUserDay(client, 'u1', '2031-05-06')).toMatchObject({ requests: 1 });
    expect(await client.hget(minuteUsageKey(MINUTE), 'POST /chat|requests')).toBe('1');
  });

  it('reads zeros for a day with no usage', async () => {
    expect(await readUserDay(await getRedis(), 'nobody', '2031-05-06')).toEqual({ requests: 0, inputTokens: 0, outputTokens: 0, cacheHits: 0 });
  });
});

describe('GET /usage', () => {
  const redis = useStandaloneRedis();
  beforeEach(async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14' });
  });

  const today = () => new Date().toISOString().slice(0, 10);

  it('answers the caller’s counters of the current UTC day', async () => {
    const { token, user } = await signUpAndLogIn();
    const client = await getRedis();
    await recordUsage(client, { userId: user.id, route: 'POST /chat', requests: 2, inputTokens: 300, outputTokens: 40, cacheHits: 1 });
    const dayBefore = today();

    const response = await invoke(usageRoute, httpEvent('GET', '/usage', { headers: bearer(token) }));

    expect(response.statusCode).toBe(200);
    expect([dayBefore, today()]).toContain(response.json.day);
    expect(response.json).toEqual({ day: response.json.day, requests: 2, inputTokens: 300, outputTokens: 40, cacheHits: 1 });
  });

  it('answers zeros for a user who has not used anything today', async () => {
    const { token } = await signUpAndLogIn();

    const response = await invoke(usageRoute, httpEvent('GET', '/usage', { headers: bearer(token) }));

    expect(response.statusCode).toBe(200);
    expect(response.json).toEqual({ day: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/), requests: 0, inputTokens: 0, outputTokens: 0, cacheHits: 0 });
  });

  it('counts neither other users nor other days', async () => {
    const { token, user } = await signUpAndLogIn();
    const client = await getRedis();
    await recordUsage(client, { userId: randomUUID(), route: 'POST /chat', requests: 5 });
    await recordUsage(client, { userId: user.id, route: 'POST /chat', requests: 3, at: Date.now() - 2 * 86_400_000 });

    const response = await invoke(usageRoute, httpEvent('GET', '/usage', { headers: bearer(token) }));

    expect(response.json.requests).toBe(0);
  });

  it('answers 401 with WWW-Authenticate without a bearer token', async () => {
    const response = await invoke(usageRoute, httpEvent('GET', '/usage'));

    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  it('answers 503 within about a second when Redis is down', async () => {
    const { token } = await signUpAndLogIn();
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', PASSWORD_SCRYPT_LOG2N: '14' });
    const started = Date.now();

    const response = await invoke(usageRoute, httpEvent('GET', '/usage', { headers: bearer(token) }));

    expect(response.statusCode).toBe(503);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(Date.now() - started).toBeLessThan(3000); // a hang would reach the test time-out
  });
});
