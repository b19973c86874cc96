// GET /health: 200 with the package version when a real redis-server answers (HEAD: the same
// without the body), a 503 degraded within about a second when nothing listens on the Redis port.

import { describe, expect, it } from 'vitest';
import { handler } from '../../functions/health.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import packageJson from '../../package.json' with { type: 'json' };

describe('GET /health', () => {
  const redis = useStandaloneRedis();

  it('answers 200 with the package version when Redis answers', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });

    const response = await invoke(handler, httpEvent('GET', '/health'));

    expect(response.statusCode).toBe(200);
    expect(response.json).toEqual({ status: 'ok', redis: 'ok', version: packageJson.version });
  });

  it('answers HEAD as it answers GET, without the body but with its length', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const get = await invoke(handler, httpEvent('GET', '/health'));

    const response = await invoke(handler, httpEvent('HEAD', '/health'));

    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(response.headers['content-length']).toBe(String(Buffer.byteLength(get.body)));
    expect(response.body).toBe('');
  });

  it('answers 503 degraded within about a second when nothing listens on the Redis port', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1' });
    const started = Date.now();

    const response = await invoke(handler, httpEvent('GET', '/health'));

    expect(response.statusCode).toBe(503);
    expect(response.json).toMatchObject({ status: 'degraded', redis: 'unavailable' });
    expect(response.headers['retry-after']).toBe('1');
    expect(Date.now() - started).toBeLessThan(3000); // a hang would reach the 20 s test time-out
  });
});
