// `npm run dev` itself: it starts its own redis-server, hands the functions bodies as sent (no
// re-encoding, no made-up Content-Type), answers an unknown route with a 404 problem, refuses
// what API Gateway refuses with problems, and applies the stage's CORS rules as API Gateway does.

import { createServer } from 'node:net';
import OpenAI from 'openai';
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

  it('names the port it serves on when it is ready, not the internal one of serverless-offline', () => {
    expect(dev.output()).toContain(`Server ready: ${dev.baseUrl}`);
  });

  it('answers HEAD /health as GET, without a body', async () => {
    const get = await fetch(`${dev.baseUrl}/health`);
    const response = await fetch(`${dev.baseUrl}/health`, { method: 'HEAD' });

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(await get.text())));
    expect(await response.text()).toBe('');
  });

  it('hands the function the body as sent: a JSON string holding an object is not an object', async () => {
    const credentials = JSON.stringify({ email: 'double-encoded@example.test', password: 'correct horse battery staple' });

    const response = await fetch(`${dev.baseUrl}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(credentials),
    });

    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(((await response.json()) as { errors: unknown[] }).errors).toEqual([{ path: '(body)', message: expect.stringContaining('object') }]);
  });

  it('hands the function the bytes as sent: invalid UTF-8 is a 400, not silently replaced', async () => {
    const body = Buffer.concat([Buffer.from('{"email":"caf'), Buffer.from([0xe9]), Buffer.from('@example.test","password":"correct horse battery staple"}')]);

    const response = await fetch(`${dev.baseUrl}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

    expect(response.status).toBe(400);
    expect(((await response.json()) as { type: string }).type).toMatch(/invalid-encoding$/);
  });

  it('makes up no Content-Type: a JSON body without one is a 415', async () => {
    const body = new TextEncoder().encode(JSON.stringify({ email: 'no-type@example.test', password: 'correct horse battery staple' }));

    const response = await fetch(`${dev.baseUrl}/auth/register`, { method: 'POST', body });

    expect(response.status).toBe(415);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
  });

  it('runs beside another npm run dev: its internal Lambda port is a free one, not a fixed 3002', async () => {
    // 3002 taken, by this test or by anything else on the machine.
    const held = createServer();
    await new Promise<void>((resolve) => held.once('error', () => resolve()).listen(3002, '127.0.0.1', () => resolve()));
    let second: DevServer | undefined;
    try {
      second = await startDevServer({ REDIS_URL: '', OFFLINE_LAMBDA_PORT: '' });

      // What is asked is that it serves; on a busy machine a cold function's first connection to
      // its new Redis may outlast the connect time-out (a 503), so a few tries.
      let status = 0;
      for (let attempt = 0; attempt < 10 && status !== 200; attempt += 1) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 300));
        status = (await fetch(`${second.baseUrl}/health`)).status;
      }

      expect(status).toBe(200);
    } finally {
      await second?.stop();
      held.close();
    }
  }, 90_000);

  it('answers an unknown route with a 404 problem', async () => {
    const response = await fetch(`${dev.baseUrl}/no-such-route`, { method: 'POST', body: '{}' });

    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
  });

  describe('what API Gateway does in front of the functions (infra/local/gateway.ts)', () => {
    it('refuses a body over API Gateway’s 10 MiB with a 413 problem', async () => {
      const body = Buffer.alloc(10 * 1024 * 1024 + 1, 0x20);

      const response = await fetch(`${dev.baseUrl}/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

      expect(response.status).toBe(413);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
    });

    it('answers a Range request in full: 200 and the whole JSON', async () => {
      const response = await fetch(`${dev.baseUrl}/health`, { headers: { Range: 'bytes=0-5' } });

      expect(response.status).toBe(200);
      expect(await response.json()).toEqual(expect.objectContaining({ status: 'ok' }));
    });

    it('sends a path with a trailing slash to the catch-all: a 404 problem, not the route without it', async () => {
      const response = await fetch(`${dev.baseUrl}/health/`);

      expect(response.status).toBe(404);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(await response.json()).toEqual(expect.objectContaining({ detail: 'No route for GET /health/.' }));
    });

    it('answers an OPTIONS that is not a CORS preflight from the catch-all: 204 and the methods allowed', async () => {
      const response = await fetch(`${dev.baseUrl}/chat`, { method: 'OPTIONS' });

      expect(response.status).toBe(204);
      expect(response.headers.get('allow')).toBe('POST, OPTIONS');
    });

    it('answers a path the local server cannot decode with a 400 problem', async () => {
      const response = await fetch(`${dev.baseUrl}/%zz`);

      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(await response.json()).toEqual(expect.objectContaining({ status: 400, title: 'Bad Request' }));
    });
  });

  describe('CORS, as the stage allows it (infra/cors.yml)', () => {
    const allowed = 'http://localhost:5173';
    const stranger = 'https://elsewhere.example';
    const preflight = (origin: string) =>
      fetch(`${dev.baseUrl}/chat`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });

    it('answers the preflight of an allowed origin with what it may send', async () => {
      const response = await preflight(allowed);

      expect(response.status).toBe(204);
      expect(response.headers.get('access-control-allow-origin')).toBe(allowed);
      expect(response.headers.get('access-control-allow-methods')).toContain('POST');
      expect(response.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    });

    it('lets through the preflight of every header the OpenAI SDK sends (a browser app using it for embeddings)', async () => {
      let sent: string[] = [];
      const sdk = new OpenAI({
        apiKey: 'a-session-token',
        baseURL: dev.baseUrl,
        dangerouslyAllowBrowser: true,
        fetch: async (_url, init) => {
          sent = [...new Headers(init?.headers).keys()];
          return Response.json({ object: 'list', model: 'm', data: [], usage: { prompt_tokens: 0, total_tokens: 0 } });
        },
      });
      await sdk.embeddings.create({ input: 'hello', model: 'm' });
      // What a browser asks the preflight about: not the safelisted Accept, nor what it sets itself.
      const unsafe = sent.filter((name) => !['accept', 'content-length', 'user-agent'].includes(name));

      const response = await fetch(`${dev.baseUrl}/embeddings`, {
        method: 'OPTIONS',
        headers: { origin: allowed, 'access-control-request-method': 'POST', 'access-control-request-headers': unsafe.join(', ') },
      });

      expect(unsafe).toContain('x-stainless-os');
      const allowedHeaders = (response.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/\s*,\s*/);
      expect(unsafe.filter((name) => !allowedHeaders.includes(name))).toEqual([]);
    });

    it('lets an allowed origin read the answer and its rate-limit and cache headers', async () => {
      const response = await fetch(`${dev.baseUrl}/health`, { headers: { origin: allowed } });

      expect(response.headers.get('access-control-allow-origin')).toBe(allowed);
      expect(response.headers.get('access-control-expose-headers')).toContain('RateLimit');
    });

    it('lets an allowed origin read the answers that come from no route, as those of the routes', async () => {
      const response = await fetch(`${dev.baseUrl}/chat/`, { headers: { origin: allowed } });

      expect(response.status).toBe(404);
      expect(response.headers.get('access-control-allow-origin')).toBe(allowed);
      expect(response.headers.get('access-control-expose-headers')).toContain('X-Request-Id');
    });

    it('gives another origin no CORS header, on the preflight and on the answer', async () => {
      const [refusedPreflight, answer] = await Promise.all([preflight(stranger), fetch(`${dev.baseUrl}/health`, { headers: { origin: stranger } })]);

      expect(refusedPreflight.headers.get('access-control-allow-origin')).toBeNull();
      expect(answer.status).toBe(200);
      expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    });
  });
});
