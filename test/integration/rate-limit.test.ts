// The rate-limit check against a real Redis, standalone and cluster: exactness at the limit,
// refill, several policies at once, cost, sub-second windows, key expiry and the block memory.

import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import type { RateLimitPolicy } from '../../shared/config.ts';
import { rateLimitAttemptsKey, rateLimitKeys } from '../../shared/keys.ts';
import { reserveAttempt } from '../../shared/rate-limit/attempts.ts';
import { checkRateLimit, rateLimitHeaders, type RateLimitRequest } from '../../shared/rate-limit/limiter.ts';
import { useEnvironment } from '../support/env.ts';
import { startRedisCluster, startStandaloneRedis } from '../support/redis.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

const policy = (limit: number, window: string, windowMs: number): RateLimitPolicy => ({ name: `${limit}-per-${window}`, limit, windowMs });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function checkTimes(times: number, request: RateLimitRequest): Promise<boolean[]> {
  const outcomes: boolean[] = [];
  for (let i = 0; i < times; i += 1) outcomes.push((await checkRateLimit(request)).allowed);
  return outcomes;
}

interface Target {
  env: Record<string, string>;
  inspector: Redis | Cluster;
  stop(): Promise<void>;
}

const targets: Array<[string, () => Promise<Target>]> = [
  [
    'standalone',
    async () => {
      const server = await startStandaloneRedis();
      const inspector = new Redis(server.url);
      return { env: { REDIS_URL: server.url }, inspector, stop: async () => (inspector.disconnect(), server.stop()) };
    },
  ],
  [
    'cluster',
    async () => {
      const cluster = await startRedisCluster();
      const inspector = new Cluster([{ host: '127.0.0.1', port: cluster.nodes[0]!.port }]);
      return { env: { REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' }, inspector, stop: async () => (inspector.disconnect(), cluster.stop()) };
    },
  ],
];

describe.each(targets)('checkRateLimit on %s Redis', (_name, start) => {
  let target: Target;
  beforeAll(async () => {
    target = await start();
  });
  afterAll(async () => {
    await useEnvironment({});
    await target.stop();
  });
  const request = (policies: RateLimitPolicy[], extra: Partial<RateLimitRequest> = {}): RateLimitRequest => ({
    bucket: 'test',
    identity: randomUUID(),
    policies,
    ...extra,
  });

  it('admits exactly the limit in a burst and refuses the next one', async () => {
    await useEnvironment(target.env);
    const burst = request([policy(7, '1h', 3_600_000)]);

    const outcomes = await checkTimes(8, burst);

    expect(outcomes).toEqual([true, true, true, true, true, true, true, false]);
  });

  it('reports the remaining units and, when refused, a Retry-After of at least one second', async () => {
    await useEnvironment(target.env);
    const burst = request([policy(3, '1m', 60_000)]);

    const first = await checkRateLimit(burst);
    await checkTimes(2, burst);
    const refused = await checkRateLimit(burst);

    expect(first).toEqual({ allowed: true, states: [expect.objectContaining({ remaining: 2, moreInSeconds: 20 })] });
    assert(!refused.allowed);
    expect(refused.states[0]!.remaining).toBe(0);
    expect(refused.states[0]!.moreInSeconds).toBe(Math.ceil(refused.retryAfterMs / 1000));
    expect(refused.retryAfterMs).toBeGreaterThan(18_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(20_000);
  });

  it('refills one unit per interval: after the retry time one more request fits, not two', async () => {
    await useEnvironment(target.env);
    const limited = request([policy(2, '1s', 1000)]);
    await checkTimes(2, limited);
    const refused = await checkRateLimit(limited);
    assert(!refused.allowed);

    await sleep(refused.retryAfterMs + 50);
    const afterRefill = await checkTimes(2, limited);

    expect(refused.allowed).toBe(false);
    expect(afterRefill).toEqual([true, false]);
  });

  it('refuses a request that one policy refuses without spending anything from the others', async () => {
    await useEnvironment(target.env);
    const burstAndDaily = request([policy(2, '1h', 3_600_000), policy(100, '1d', 86_400_000)]);

    await checkTimes(5, burstAndDaily);
    const peek = await checkRateLimit({ ...burstAndDaily, peek: true });

    expect(peek.states.map((state) => state.remaining)).toEqual([0, 98]);
  });

  it('spends the cost of a request and refuses a cost that no longer fits', async () => {
    await useEnvironment(target.env);
    const tokens = request([policy(10, '1h', 3_600_000)]);

    const first = await checkRateLimit({ ...tokens, cost: 6 });
    const second = await checkRateLimit({ ...tokens, cost: 5 });
    const third = await checkRateLimit({ ...tokens, cost: 4 });

    expect(first.allowed).toBe(true);
    expect(first.states[0]!.remaining).toBe(4);
    expect(second.allowed).toBe(false);
    expect(third.allowed).toBe(true);
    expect(third.states[0]!.remaining).toBe(0);
  });

  it('always refuses a cost above the whole quota, with a window as the retry time', async () => {
    await useEnvironment(target.env);

    const decision = await checkRateLimit(request([policy(10, '1m', 60_000)], { cost: 11 }));

    assert(!decision.allowed);
    expect(decision.retryAfterMs).toBe(60_000);
  });

  it('spends nothing when peeking', async () => {
    await useEnvironment(target.env);
    const peeked = request([policy(1, '1h', 3_600_000)], { peek: true });

    const outcomes = await checkTimes(3, peeked);

    expect(outcomes).toEqual([true, true, true]);
    expect(await target.inspector.exists(rateLimitKeys(peeked.identity, 'test', ['1-per-1h'])[0]!)).toBe(0);
  });

  describe('attempts that count only when they fail', () => {
    it('holds a unit while an attempt runs and keeps it when the attempt counts', async () => {
      await useEnvironment(target.env);
      const limited = request([policy(2, '1h', 3_600_000)]);

      const attempt = await reserveAttempt(limited);
      const held = await checkRateLimit({ ...limited, peek: true });
      const after = await attempt.settle(true);

      expect(attempt.decision.allowed).toBe(true);
      expect(held.states[0]!.remaining).toBe(1);
      expect(after.states[0]!.remaining).toBe(1);
    });

    it('gives the unit back when the attempt does not count, and only once', async () => {
      await useEnvironment(target.env);
      const limited = request([policy(2, '1h', 3_600_000)]);
      await (await reserveAttempt(limited)).settle(true);
      const attempt = await reserveAttempt(limited);

      const first = await attempt.settle(false);
      const again = await attempt.settle(false);

      expect([first.states[0]!.remaining, again.states[0]!.remaining]).toEqual([1, 1]);
    });

    it('admits exactly the limit of concurrent attempts; the others are told to come back in a second', async () => {
      await useEnvironment(target.env);
      const limited = request([policy(3, '1h', 3_600_000)]);

      const attempts = await Promise.all(Array.from({ length: 5 }, () => reserveAttempt(limited)));

      const admitted = attempts.filter((attempt) => attempt.decision.allowed);
      const refused = attempts.map((attempt) => attempt.decision).filter((decision) => !decision.allowed);
      expect(admitted).toHaveLength(3);
      expect(refused.map((decision) => decision.retryAfterMs)).toEqual([1000, 1000]);
      await Promise.all(admitted.map((attempt) => attempt.settle(false)));
      expect((await reserveAttempt(limited)).decision.allowed).toBe(true);
    });

    it('refuses for the whole wait once failures have spent the limit', async () => {
      await useEnvironment(target.env);
      const limited = request([policy(2, '1h', 3_600_000)]);
      for (let i = 0; i < 2; i += 1) await (await reserveAttempt(limited)).settle(true);

      const refused = await reserveAttempt(limited);

      assert(!refused.decision.allowed);
      expect(refused.decision.retryAfterMs).toBeGreaterThan(1_700_000);
    });

    it('gives back to every policy of the limit and lets their keys expire when full again', async () => {
      await useEnvironment(target.env);
      const twoPolicies = request([policy(3, '1m', 60_000), policy(10, '1h', 3_600_000)]);

      const after = await (await reserveAttempt(twoPolicies)).settle(false);

      expect(after.states.map((state) => state.remaining)).toEqual([3, 10]);
      const keys = rateLimitKeys(twoPolicies.identity, 'test', ['3-per-1m', '10-per-1h']);
      expect(await Promise.all(keys.map((key) => target.inspector.exists(key)))).toEqual([0, 0]);
    });
  });

  it('limits sub-second windows exactly and refills them within the window', async () => {
    await useEnvironment(target.env);
    const fast = request([policy(5, '500ms', 500)]);

    const burst = await checkTimes(6, fast);
    await sleep(550);
    const again = await checkTimes(6, fast);

    expect(burst).toEqual([true, true, true, true, true, false]);
    expect(again).toEqual([true, true, true, true, true, false]);
  });

  it('lets each key expire when its quota would be full again', async () => {
    await useEnvironment(target.env);
    const limited = request([policy(20, '1m', 60_000), policy(500, '1d', 86_400_000)]);
    const [minuteKey, dayKey] = rateLimitKeys(limited.identity, 'test', ['20-per-1m', '500-per-1d']);

    await checkTimes(2, limited);
    const minuteTtl = await target.inspector.pttl(minuteKey!);
    const dayTtl = await target.inspector.pttl(dayKey!);

    expect(minuteTtl).toBeGreaterThan(5_000);
    expect(minuteTtl).toBeLessThanOrEqual(6_000); // two intervals of 3 s
    expect(dayTtl).toBeGreaterThan(345_000);
    expect(dayTtl).toBeLessThanOrEqual(345_600); // two intervals of 172.8 s
  });

  it('lets a 500 ms policy key expire within 500 ms', async () => {
    await useEnvironment(target.env);
    const fast = request([policy(5, '500ms', 500)]);

    await checkTimes(5, fast);
    const ttl = await target.inspector.pttl(rateLimitKeys(fast.identity, 'test', ['5-per-500ms'])[0]!);

    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(500);
  });

  it('keeps identities apart, including ones that would break a hash tag', async () => {
    await useEnvironment(target.env);
    const policies = [policy(1, '1h', 3_600_000)];

    const odd = await checkTimes(2, { bucket: 'test', identity: `{odd} ${randomUUID()}`, policies });
    const plain = await checkTimes(1, { bucket: 'test', identity: randomUUID(), policies });

    expect(odd).toEqual([true, false]);
    expect(plain).toEqual([true]);
  });

  it('decides checks issued together one after the other: exactly the limit is admitted', async () => {
    await useEnvironment(target.env);
    const burst = request([policy(7, '1h', 3_600_000)]);

    const decisions = await Promise.all(Array.from({ length: 12 }, () => checkRateLimit(burst)));

    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(7);
    expect(decisions.map((decision) => decision.states[0]!.remaining).slice(0, 7)).toEqual([6, 5, 4, 3, 2, 1, 0]);
  });

  it('keeps checks of different identities, buckets, costs and policies apart when issued together', async () => {
    await useEnvironment(target.env);
    const tight = request([policy(1, '1h', 3_600_000)]);
    const loose = request([policy(5, '1h', 3_600_000), policy(50, '1d', 86_400_000)], { cost: 2 });
    const peeking = request([policy(1, '1h', 3_600_000)], { peek: true });

    const [a, b, c, d, e] = await Promise.all([
      checkRateLimit(tight),
      checkRateLimit(loose),
      checkRateLimit({ ...tight, bucket: 'other' }),
      checkRateLimit(tight),
      checkRateLimit(peeking),
    ]);

    expect([a.allowed, b.allowed, c.allowed, d.allowed, e.allowed]).toEqual([true, true, true, false, true]);
    expect(b.states.map((state) => state.remaining)).toEqual([3, 48]);
  });

  it('still works after Redis forgot the script (NOSCRIPT is answered by sending it again)', async () => {
    await useEnvironment(target.env);
    const limited = request([policy(3, '1h', 3_600_000)]);
    await checkRateLimit(limited);

    const nodes = target.inspector instanceof Cluster ? target.inspector.nodes('master') : [target.inspector];
    await Promise.all(nodes.map((node) => node.script('FLUSH')));
    const afterFlush = await checkRateLimit(limited);

    expect(afterFlush.allowed).toBe(true);
    expect(afterFlush.states[0]!.remaining).toBe(1);
  });

  it('formats the IETF headers for every policy', async () => {
    await useEnvironment(target.env);
    const limited = request([policy(20, '1m', 60_000), policy(500, '1d', 86_400_000)]);

    const headers = rateLimitHeaders(await checkRateLimit(limited));

    expect(headers['RateLimit-Policy']).toBe('"20-per-1m";q=20;w=60, "500-per-1d";q=500;w=86400');
    expect(headers['RateLimit']).toBe('"20-per-1m";r=19;t=3, "500-per-1d";r=499;t=173');
  });
});

describe('an attempt whose end cannot be written (Redis gone meanwhile)', () => {
  it('answers with the state it was reserved with rather than failing the request', async () => {
    const server = await startStandaloneRedis();
    try {
      await useEnvironment({ REDIS_URL: server.url });
      const limited: RateLimitRequest = { bucket: 'test', identity: randomUUID(), policies: [policy(2, '1h', 3_600_000)] };
      const attempt = await reserveAttempt(limited);

      await server.kill();
      const ended = await attempt.settle(false);

      expect(ended).toEqual(attempt.decision);
    } finally {
      await useEnvironment({});
      await server.stop();
    }
  });
});

describe('an attempt given up on while its reservation is on the way', () => {
  it('holds nothing once the late reservation has run: it is ended as a success', async () => {
    const server = await startStandaloneRedis();
    const slow = await startTcpProxy(server.port, { replyDelayMs: 400 });
    const inspector = new Redis(server.url);
    try {
      await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${slow.port}` });
      const limited: RateLimitRequest = { bucket: 'test', identity: randomUUID(), policies: [policy(2, '1h', 3_600_000)] };

      const outcome = await reserveAttempt(limited).catch((error: { status?: number }) => error.status);
      await sleep(1000); // the reservation and the settle that follows it have both run

      const keys = [...rateLimitKeys(limited.identity, 'test', ['2-per-1h']), rateLimitAttemptsKey(limited.identity, 'test')];
      expect(outcome).toBe(503);
      expect(await Promise.all(keys.map((key) => inspector.exists(key)))).toEqual([0, 0]);
    } finally {
      inspector.disconnect();
      await useEnvironment({});
      await slow.close();
      await server.stop();
    }
  });
});
