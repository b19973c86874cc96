// The rate-limit middleware on a real middy handler: headers on every answer, 429 problems,
// identities, cost, and what happens when Redis is down or silent (fail open or closed, fast).

import { randomUUID } from 'node:crypto';
import middy, { type MiddlewareObj } from '@middy/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteRateLimit } from '../../shared/config.ts';
import { httpBasics, json, type HttpEvent, type HttpResult } from '../../shared/http.ts';
import { HttpProblem } from '../../shared/problem.ts';
import { checkRateLimit } from '../../shared/rate-limit/limiter.ts';
import { rateLimit } from '../../shared/rate-limit/middleware.ts';
import { captureOutput } from '../support/logs.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { startStandaloneRedis, type RedisServer } from '../support/redis.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const perHour = (limit: number, onRedisDown: 'open' | 'closed' = 'closed'): RouteRateLimit => ({
  policies: [{ name: `${limit}-per-1h`, limit, windowMs: 3_600_000 }],
  onRedisDown,
});

/** Stands in for the auth middleware: a `user` header becomes the signed-in user. */
const fakeAuth: MiddlewareObj<HttpEvent, HttpResult> = {
  before: (request) => {
    const id = request.event.headers['user'];
    if (id !== undefined) Object.assign(request.event, { user: { id, email: `${id}@example.com`, name: id } });
  },
};

/** Stands in for the auth middleware of a protected route: without a `user` header, a 401. */
const fakeRequiredAuth: MiddlewareObj<HttpEvent, HttpResult> = {
  before: (request) => {
    if (request.event.headers['user'] === undefined) throw new HttpProblem(401, 'invalid-token', { headers: { 'WWW-Authenticate': 'Bearer' } });
    return fakeAuth.before!(request);
  },
};

function limitedHandler(limit: RouteRateLimit, options: { cost?: (event: HttpEvent) => number; authRequired?: boolean } = {}) {
  return middy<HttpEvent, HttpResult>()
    .use(httpBasics())
    .use(options.authRequired ? fakeRequiredAuth : fakeAuth)
    .use(rateLimit({ bucket: `route-${randomUUID()}`, limit: () => limit, ...(options.cost ? { cost: options.cost } : {}) }))
    .handler(async (event) => {
      if ((event.jsonBody as { fail?: boolean } | undefined)?.fail) throw new HttpProblem(400, 'validation', { detail: 'bad' });
      return json(200, { ok: true });
    });
}

const post = (headers: Record<string, string> = {}, body: unknown = {}, sourceIp = '198.51.100.1') =>
  httpEvent('POST', '/limited', { headers, body, sourceIp });

describe('the rateLimit middleware', () => {
  const redis = useStandaloneRedis();

  it('adds RateLimit-Policy and RateLimit to an admitted response', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const handler = limitedHandler(perHour(5));

    const response = await invoke(handler, post({ user: randomUUID() }));

    expect(response.statusCode).toBe(200);
    expect(response.headers['ratelimit-policy']).toBe('"5-per-1h";q=5;w=3600');
    expect(response.headers['ratelimit']).toBe('"5-per-1h";r=4;t=720');
  });

  it('answers 429 problem+json with Retry-After and the headers once the limit is spent', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const handler = limitedHandler(perHour(2));
    const user = randomUUID();
    await invoke(handler, post({ user }));
    await invoke(handler, post({ user }));

    const refused = await invoke(handler, post({ user }));

    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toBe('application/problem+json');
    expect(refused.json).toMatchObject({ status: 429, type: expect.stringContaining('rate-limited') });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1799);
    // `t` is when more quota comes (one unit back after 30 minutes), which is when to retry.
    expect(refused.headers['ratelimit']).toBe(`"2-per-1h";r=0;t=${refused.headers['retry-after']}`);
    expect(refused.headers['ratelimit-policy']).toBe('"2-per-1h";q=2;w=3600');
  });

  it('limits each signed-in user separately, whatever address they come from', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const handler = limitedHandler(perHour(1));
    const [alice, bob] = [randomUUID(), randomUUID()];

    const aliceFirst = await invoke(handler, post({ user: alice }, {}, '192.0.2.1'));
    const aliceElsewhere = await invoke(handler, post({ user: alice }, {}, '192.0.2.2'));
    const bobSameAddress = await invoke(handler, post({ user: bob }, {}, '192.0.2.1'));

    expect([aliceFirst.statusCode, aliceElsewhere.statusCode, bobSameAddress.statusCode]).toEqual([200, 429, 200]);
  });

  it('limits anonymous callers by the API Gateway source address, never by X-Forwarded-For', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const handler = limitedHandler(perHour(1));
    const address = `192.0.2.${Math.floor(Math.random() * 200) + 10}`;

    const first = await invoke(handler, post({ 'x-forwarded-for': '10.0.0.1' }, {}, address));
    const spoofed = await invoke(handler, post({ 'x-forwarded-for': '10.0.0.2' }, {}, address));

    expect([first.statusCode, spoofed.statusCode]).toEqual([200, 429]);
  });

  it('spends the cost the route computes from the request', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const handler = limitedHandler(perHour(10), { cost: (event) => (event.jsonBody as { inputs: number }).inputs });
    const user = randomUUID();

    const seven = await invoke(handler, post({ user }, { inputs: 7 }));
    const four = await invoke(handler, post({ user }, { inputs: 4 }));
    const three = await invoke(handler, post({ user }, { inputs: 3 }));

    expect([seven.statusCode, four.statusCode, three.statusCode]).toEqual([200, 429, 200]);
    expect(three.headers['ratelimit']).toBe('"10-per-1h";r=0;t=360');
  });

  it('spends nothing on a request whose cost the route cannot compute (invalid), leaving its 400 to the handler', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const handler = limitedHandler(perHour(10), { cost: (event) => (event.jsonBody as { inputs: string[] }).inputs.length });

    const response = await invoke(handler, post({ user: randomUUID() }, { fail: true }));

    expect(response.statusCode).toBe(400);
    expect(response.headers['ratelimit']).toBe('"10-per-1h";r=10;t=0');
  });

  it('answers a cost beyond a policy\'s whole quota with a 413 and no Retry-After, spending nothing', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const handler = limitedHandler(perHour(10), { cost: (event) => (event.jsonBody as { inputs: number }).inputs });
    const user = randomUUID();

    const beyond = await invoke(handler, post({ user }, { inputs: 11 }));
    const within = await invoke(handler, post({ user }, { inputs: 10 }));

    expect(beyond.statusCode).toBe(413);
    expect(beyond.headers['content-type']).toBe('application/problem+json');
    expect(beyond.headers['retry-after']).toBeUndefined();
    expect(beyond.headers['ratelimit']).toBe('"10-per-1h";r=10;t=0');
    expect(within.statusCode).toBe(200);
  });

  it('keeps the headers on a problem raised by the handler', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const handler = limitedHandler(perHour(5));

    const response = await invoke(handler, post({ user: randomUUID() }, { fail: true }));

    expect(response.statusCode).toBe(400);
    expect(response.headers['ratelimit']).toBe('"5-per-1h";r=4;t=720');
  });

  it("gives the 401 of a request auth refused the headers of its client address's quota, full, without asking Redis", async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1' });
    const handler = limitedHandler(perHour(5), { authRequired: true });

    const refused = await invoke(handler, post({}, {}, '198.51.100.20'));

    expect(refused.statusCode).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer');
    expect(refused.headers['ratelimit-policy']).toBe('"5-per-1h";q=5;w=3600');
    expect(refused.headers['ratelimit']).toBe('"5-per-1h";r=5;t=0');
  });
});

describe('the rateLimit middleware when Redis cannot answer', () => {
  let redis: RedisServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    redis = await startStandaloneRedis();
    proxy = await startTcpProxy(redis.port);
  });
  afterAll(async () => {
    await useEnvironment({});
    await proxy.close();
    await redis.stop();
  });

  it('fails closed: 503 with Retry-After within a second when nothing listens', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1' });
    const handler = limitedHandler(perHour(5, 'closed'));
    const started = Date.now();

    const response = await invoke(handler, post({ user: randomUUID() }));

    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.json).toMatchObject({ status: 503 });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('fails open: admits the request without rate-limit headers and logs a warning', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'warn' });
    const handler = limitedHandler(perHour(5, 'open'));
    const output = captureOutput();

    let response;
    try {
      response = await invoke(handler, post({ user: randomUUID() }));
    } finally {
      output.restore();
    }

    expect(response.statusCode).toBe(200);
    expect(response.headers['ratelimit']).toBeUndefined();
    expect(output.text()).toContain('rate limit not checked');
  });

  it('makes checkRateLimit throw a 503 problem within about 200 ms when Redis is silent', async () => {
    await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    const request = { bucket: 'silent', identity: randomUUID(), policies: perHour(5).policies };
    await checkRateLimit(request);
    proxy.freeze();
    const started = Date.now();

    const failure = await checkRateLimit(request).catch((error: unknown) => error);
    proxy.thaw();

    expect(failure).toBeInstanceOf(HttpProblem);
    expect((failure as HttpProblem).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(800);
  });

  it('gives up on a silent Redis within about 200 ms, failing closed', async () => {
    await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    const handler = limitedHandler(perHour(5, 'closed'));
    await invoke(handler, post({ user: randomUUID() })); // connected while the proxy still forwards
    proxy.freeze();
    const started = Date.now();

    const response = await invoke(handler, post({ user: randomUUID() }));
    proxy.thaw();

    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('1');
    expect(Date.now() - started).toBeLessThan(800);
  });

  it('gives up on a silent Redis within about 200 ms, failing open', async () => {
    await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    const handler = limitedHandler(perHour(5, 'open'));
    await invoke(handler, post({ user: randomUUID() }));
    proxy.freeze();
    const started = Date.now();

    const response = await invoke(handler, post({ user: randomUUID() }));
    proxy.thaw();

    expect(response.statusCode).toBe(200);
    expect(Date.now() - started).toBeLessThan(800);
  });
});
