// GET /usage over real HTTP (`npm run dev`, local tutor): the caller's counters of the day,
// counting a chat request, and a 401 problem without a token.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpOverHttp, startDevServer, type DevServer } from '../support/dev-server.ts';

describe('GET /usage on npm run dev', () => {
  let dev: DevServer;
  let token: string;
  beforeAll(async () => {
    dev = await startDevServer({ REDIS_URL: '', CHAT_PROVIDER: 'local', PASSWORD_SCRYPT_LOG2N: '14' });
    token = await signUpOverHttp(dev.baseUrl);
  }, 90_000);
  afterAll(async () => {
    await dev?.stop();
  });

  const usage = () => fetch(`${dev.baseUrl}/usage`, { headers: { authorization: `Bearer ${token}` } });
  const utcDay = () => new Date().toISOString().slice(0, 10);

  it('answers the day’s counters of the caller over HTTP, counting a chat request', async () => {
    const dayBefore = utcDay(); // the server's day is this one, or the next if midnight passes meanwhile
    const before = (await (await usage()).json()) as Record<string, unknown>;
    const dayAfter = utcDay();
    const chat = await fetch(`${dev.baseUrl}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ messages: [{ role: 'user', content: `What is a fraction? (${Date.now()})` }] }),
    });
    const chatBody = (await chat.json()) as { usage: { inputTokens: number; outputTokens: number } };

    const response = await usage();

    const { day, ...countersBefore } = before;
    expect([dayBefore, dayAfter]).toContain(day);
    expect(countersBefore).toEqual({ requests: 0, inputTokens: 0, outputTokens: 0, cacheHits: 0 });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect(await response.json()).toMatchObject({ requests: 1, inputTokens: chatBody.usage.inputTokens, outputTokens: chatBody.usage.outputTokens, cacheHits: 0 });
  });

  it('answers 401 problem+json with WWW-Authenticate without a token', async () => {
    const response = await fetch(`${dev.baseUrl}/usage`);

    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });
});
