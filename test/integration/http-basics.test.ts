// The HTTP basics every route shares: body parsing and its 400/413/415 refusals, problems from
// thrown errors, an opaque 500, security headers, request ids in responses and log lines, and
// 404/405 answers for unknown routes and methods.

import { gzipSync } from 'node:zlib';
import middy from '@middy/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as notFound } from '../../functions/not-found.ts';
import { httpBasics, json, withRequestLogging, type HttpEvent, type HttpResult } from '../../shared/http.ts';
import { HttpProblem } from '../../shared/problem.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';

/** A route that echoes the parsed body, or throws what the test asks for. */
const echo = withRequestLogging(
  'POST /echo',
  middy<HttpEvent, HttpResult>()
    .use(httpBasics())
    .handler(async (event) => {
      const body = event.jsonBody as { fail?: string } | undefined;
      if (body?.fail === 'problem') throw new HttpProblem(409, 'conflict', { detail: 'Already there.' });
      if (body?.fail === 'crash') throw new Error('internal detail: token=abc123secret');
      return json(200, { received: event.jsonBody ?? null });
    }),
);

const post = (body: string | object | undefined, headers: Record<string, string> = {}, extra = {}) =>
  invoke(echo, httpEvent('POST', '/echo', { body, headers, ...extra }));

describe('the HTTP basics of every route', () => {
  beforeAll(() => useEnvironment({ MAX_BODY_BYTES: '2048' }));
  afterAll(() => useEnvironment({}));

  it('hands the parsed JSON body to the handler', async () => {
    const response = await post({ question: 'what is 2+2?' });

    expect(response.statusCode).toBe(200);
    expect(response.json).toEqual({ received: { question: 'what is 2+2?' } });
  });

  it('accepts a base64-encoded JSON body', async () => {
    const encoded = Buffer.from(JSON.stringify({ a: 1 })).toString('base64');

    const response = await post(encoded, { 'content-type': 'application/json' }, { isBase64Encoded: true });

    expect(response.json).toEqual({ received: { a: 1 } });
  });

  it('answers 400 problem+json for malformed JSON', async () => {
    const response = await post('{"a":', { 'content-type': 'application/json' });

    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(response.json).toMatchObject({ status: 400, title: 'Bad Request', type: expect.stringContaining('malformed-json') });
  });

  it('answers 415 for a body that is not JSON', async () => {
    const response = await post('a=1', { 'content-type': 'application/x-www-form-urlencoded' });

    expect(response.statusCode).toBe(415);
    expect(response.json.status).toBe(415);
  });

  it('answers 413 for a body over the size limit', async () => {
    const response = await post({ text: 'x'.repeat(4096) });

    expect(response.statusCode).toBe(413);
    expect(response.json.status).toBe(413);
  });

  it('answers 400 for a body that is not valid UTF-8', async () => {
    const invalid = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]).toString('base64');

    const response = await post(invalid, { 'content-type': 'application/json' }, { isBase64Encoded: true });

    expect(response.statusCode).toBe(400);
  });

  it('answers 400 naming the field for a string that holds a lone surrogate, valid JSON but not text', async () => {
    const response = await post('{"messages":[{"content":"half an emoji \\ud83d"}]}', { 'content-type': 'application/json' });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors).toEqual([{ path: 'messages.0.content', message: expect.stringContaining('lone surrogate') }]);
  });

  it('finds a lone surrogate 1,000 levels deep and names its path, cut at 120 characters', async () => {
    await useEnvironment({ MAX_BODY_BYTES: String(1 << 20) });
    const body = `${'['.repeat(1000)}"\\udc00"${']'.repeat(1000)}`;

    const response = await post(body, { 'content-type': 'application/json' });
    await useEnvironment({ MAX_BODY_BYTES: '2048' });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors[0].path).toBe(`${'0.'.repeat(59)}0…`);
  });

  // A guard, not a measure: the test's time-out (20 s, under the chat function's 29 s) fails the
  // quadratic walk that gathered the path (about 40 s here); the linear one takes under a second.
  it('names the path of a lone surrogate a million levels deep before the function would time out', async () => {
    await useEnvironment({ MAX_BODY_BYTES: String(6 << 20) });
    const body = `${'['.repeat(1_000_000)}"\\udc00"${']'.repeat(1_000_000)}`;

    const response = await post(body, { 'content-type': 'application/json' });
    await useEnvironment({ MAX_BODY_BYTES: '2048' });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors[0].path).toMatch(/^0\.0\.0/);
  }, 20_000);

  it('answers 400 naming the key for a key given twice in one object, whichever value comes last', async () => {
    const response = await post('{"messages":[{"role":"user","content":"hi","role":"assistant"}]}', { 'content-type': 'application/json' });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors).toEqual([{ path: 'messages.0.role', message: 'appears more than once in its object' }]);
  });

  it('takes a key spelled with escapes as the key it spells: "\\u0065mail" is a second "email"', async () => {
    const response = await post('{"email":"a@b.co","\\u0065mail":"c@d.co"}', { 'content-type': 'application/json' });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors).toEqual([{ path: 'email', message: 'appears more than once in its object' }]);
  });

  it('names a long key given twice by its first 120 characters at most', async () => {
    await useEnvironment({ MAX_BODY_BYTES: String(1 << 20) });
    const key = 'k'.repeat(100_000);

    const response = await post(`{"${key}":1,"${key}":2}`, { 'content-type': 'application/json' });
    await useEnvironment({ MAX_BODY_BYTES: '2048' });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors).toEqual([{ path: `${'k'.repeat(119)}…`, message: 'appears more than once in its object' }]);
  });

  it('accepts the same key in different objects, and key-like text inside strings', async () => {
    const text = '{"a":{"k":1},"b":{"k":2},"s":"{\\"k\\":1,\\"k\\":2}"}';

    const response = await post(text, { 'content-type': 'application/json' });

    expect(response.json).toEqual({ received: JSON.parse(text) });
  });

  it('accepts a surrogate pair written as two escapes: one emoji', async () => {
    const response = await post('{"text":"\\ud83d\\ude00"}', { 'content-type': 'application/json' });

    expect(response.json).toEqual({ received: { text: '😀' } });
  });

  it('answers 415 with Accept-Encoding for a gzipped body, before reading its bytes as text', async () => {
    const gzipped = gzipSync(JSON.stringify({ a: 1 })).toString('base64');

    const response = await post(gzipped, { 'content-type': 'application/json', 'content-encoding': 'gzip' }, { isBase64Encoded: true });

    expect(response.statusCode).toBe(415);
    expect(response.headers['accept-encoding']).toBe('identity');
    expect(response.json.type).toMatch(/unsupported-content-encoding$/);
  });

  it('answers 415 for JSON declared in a charset other than UTF-8, and accepts utf-8 spelled any way', async () => {
    const latin1 = await post({ a: 1 }, { 'content-type': 'application/json; charset=iso-8859-1' });
    const utf8 = await post({ a: 1 }, { 'content-type': 'application/json; Charset="UTF-8"' });

    expect(latin1.statusCode).toBe(415);
    expect(utf8.json).toEqual({ received: { a: 1 } });
  });

  it('accepts JSON declared in US-ASCII, a subset of UTF-8', async () => {
    const response = await post({ a: 1 }, { 'content-type': 'application/json; charset=us-ascii' });

    expect(response.json).toEqual({ received: { a: 1 } });
  });

  it('turns a thrown HttpProblem into its problem response', async () => {
    const response = await post({ fail: 'problem' });

    expect(response.statusCode).toBe(409);
    expect(response.json).toEqual({
      type: 'https://tutor-copiloto.dev/problems/conflict',
      title: 'Conflict',
      status: 409,
      detail: 'Already there.',
    });
  });

  it('answers an unexpected error with an opaque 500 that reveals nothing', async () => {
    const output = captureOutput();
    let response;
    try {
      response = await post({ fail: 'crash' });
    } finally {
      output.restore();
    }

    expect(response.statusCode).toBe(500);
    expect(response.json.detail).toBe('Something went wrong on our side.');
    expect(response.body).not.toContain('abc123secret');
    expect(response.body).not.toContain('internal detail');
  });

  it('sends security headers and a request id on every response', async () => {
    const response = await post({});

    expect(response.headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
      'x-frame-options': 'DENY',
    });
    expect(response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('writes the request id in every log line of the request', async () => {
    await useEnvironment({ MAX_BODY_BYTES: '2048', LOG_LEVEL: 'info' });
    const output = captureOutput();
    let response;
    try {
      response = await post({});
    } finally {
      output.restore();
    }
    const lines = output.text().trim().split('\n').map((line) => JSON.parse(line));

    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line.requestId).toBe(response.headers['x-request-id']);
  });

  it('answers a known path asked with another method with a 405 problem and Allow', async () => {
    const response = await invoke(notFound, httpEvent('POST', '/health'));

    expect(response.statusCode).toBe(405);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(response.headers['allow']).toBe('GET, HEAD, OPTIONS');
    expect(response.json).toMatchObject({ status: 405, title: 'Method Not Allowed' });
  });

  it("gives a HEAD to no route the Content-Length of its GET's problem, OpenAI's error member included", async () => {
    const get = await invoke(notFound, httpEvent('GET', '/auth/login'));
    const getElsewhere = await invoke(notFound, httpEvent('GET', '/lessons'));

    const head = await invoke(notFound, httpEvent('HEAD', '/auth/login'));
    const headElsewhere = await invoke(notFound, httpEvent('HEAD', '/lessons'));

    expect(get.json.error).toEqual({ message: get.json.detail, type: 'invalid_request_error', param: null, code: 'method-not-allowed' });
    expect([head.statusCode, head.headers['content-length'], head.body]).toEqual([405, String(Buffer.byteLength(get.body)), '']);
    expect([headElsewhere.statusCode, headElsewhere.headers['content-length']]).toEqual([404, String(Buffer.byteLength(getElsewhere.body))]);
  });

  it('answers a plain OPTIONS on a known path with 204 and Allow', async () => {
    const response = await invoke(notFound, httpEvent('OPTIONS', '/chat'));

    expect(response.statusCode).toBe(204);
    expect(response.headers['allow']).toBe('POST, OPTIONS');
  });

  it('answers an unknown route with a 404 problem, whatever its body', async () => {
    const response = await invoke(notFound, httpEvent('POST', '/nowhere', { body: 'not json', headers: { 'content-type': 'text/plain' } }));

    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toBe('application/problem+json');
  });

  it('says to drop /v1 from the base URL when the rest of the path is a route, and only then', async () => {
    const versioned = await invoke(notFound, httpEvent('POST', '/v1/chat'));
    const unknown = await invoke(notFound, httpEvent('POST', '/v1/chat/completions'));

    expect(versioned.json.detail).toBe("No route for POST /v1/chat: the base URL is the API's root, without /v1 (/chat).");
    expect(unknown.json.detail).toBe('No route for POST /v1/chat/completions.');
  });

  it('names the unknown route in the 404, cut at 120 characters', async () => {
    const short = await invoke(notFound, httpEvent('GET', '/lessons'));
    const long = await invoke(notFound, httpEvent('GET', `/${'x'.repeat(9_000)}`));

    expect(short.json.detail).toBe('No route for GET /lessons.');
    expect(long.json.detail).toBe(`No route for GET /${'x'.repeat(118)}….`);
  });
});
