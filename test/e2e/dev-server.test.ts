import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import packageJson from '../../package.json' with { type: 'json' };
import { startDevServer, type DevServer } from '../support/dev-server.ts';

describe('npm run dev', () => {
  let dev: DevServer;
  beforeAll(async () => {
    dev = await startDevServer({ REDIS_URL: '' });
  }, 90_000);
  afterAll(() => dev?.stop());

  it('starts its own redis-server and answers GET /health with 200', async () => {
    const response = await fetch(`${dev.baseUrl}/health`);

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok', redis: 'ok', version: packageJson.version });
    expect(dev.output()).toContain('local redis-server on redis://127.0.0.1:');
  });

  it('answers an unknown route with a 404 problem', async () => {
    const response = await fetch(`${dev.baseUrl}/no-such-route`, { method: 'POST', body: '{}' });

    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
  });
});
