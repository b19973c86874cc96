// Bad input over real HTTP (npm run dev: serverless-offline in front of the same handlers): fewer
// cases than bad-input.test.ts, to show that the HTTP layer adds no 5xx, no bare error body and no
// write to Redis of its own.
//
// Some requests mean something else over serverless-offline, and are left to the handler-level
// test (where the function sees exactly what API Gateway would pass):
// - headers larger than Node's 16 KiB limit: the local HTTP server answers them itself (a bare
//   431 or 400, no function runs); one test below checks that this is a 4xx and nothing else;
// - an empty Authorization header, a body on GET or DELETE, a Content-Type that is not a media
//   type (`!`) or a multipart body that is not multipart: hapi (serverless-offline's HTTP server)
//   refuses them with its own bare 400 before any function runs. Wrong media types are sent
//   from a list hapi passes through.

import { request } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../functions/not-found.ts';
import { loadConfig } from '../../shared/config.ts';
import { signUpOverHttp, startDevServer, type DevServer } from '../support/dev-server.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import {
  badBodies,
  TEST_BODY_LIMIT_BYTES,
  chatRoute,
  embeddingsRoute,
  garbageAll,
  garbageAuthorization,
  loginRoute,
  registerRoute,
  type BadRequest,
  type BodyRoute,
} from './bad-requests.ts';
import { expectClientProblem, type Answer } from './problems.ts';
import { redisState, stateDifference } from './redis-state.ts';

const RUNS_PER_PROPERTY = 60;
/** Well under Node's 16 KiB header limit, so that the function, not the server, answers. */
const MAX_HEADER_BYTES = 8_000;

const casesRun = new Map<string, number>();

/** One request on a fresh connection (a refused request must not poison a kept-alive socket's next one). */
function send(baseUrl: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Answer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: url.hostname, port: url.port, method, path, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const flat: Record<string, string> = {};
        for (const [name, value] of Object.entries(response.headers)) flat[name] = Array.isArray(value) ? value.join(', ') : String(value);
        resolve({ statusCode: response.statusCode ?? 0, headers: flat, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    outgoing.on('error', reject);
    if (body !== undefined) outgoing.write(body);
    outgoing.end();
  });
}

/** The bytes a client sends for a generated request (base64 bodies are sent decoded, as raw bytes). */
function bytesOf(bad: BadRequest): Buffer | undefined {
  if (bad.body === undefined) return undefined;
  return bad.isBase64Encoded ? Buffer.from(bad.body, 'base64') : Buffer.from(bad.body, 'utf8');
}

const sendable = (value: string) => /^[\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?$/.test(value) || value === '';
const PASSED_BY_HAPI = new Set(['application/json', 'text/plain', 'text/json', 'application/xml', 'application/octet-stream', 'application/x-www-form-urlencoded', 'application/json-seq', 'application/jsonx']);
const meaningfulOverHttp = (bad: BadRequest) => bad.kind === 'no content-type' || PASSED_BY_HAPI.has(bad.headers['content-type'] ?? '');

describe('bad input over HTTP (npm run dev)', () => {
  const redis = useStandaloneRedis();
  let dev: DevServer;
  let token: string;

  beforeAll(async () => {
    dev = await startDevServer({
      REDIS_URL: redis.server.url,
      PASSWORD_SCRYPT_LOG2N: '14',
      RATE_LIMIT_CHAT: '1000000/1m',
      RATE_LIMIT_EMBEDDINGS: '1000000/1m',
      RATE_LIMIT_LOGIN: '1000000/1m',
      CHAT_PROVIDER: 'local',
      EMBEDDINGS_PROVIDER: 'local',
      LOG_LEVEL: 'error',
      MAX_BODY_BYTES: String(TEST_BODY_LIMIT_BYTES),
    });
    token = await signUpOverHttp(dev.baseUrl);
  }, 90_000);

  afterAll(async () => {
    const total = [...casesRun.values()].reduce((sum, n) => sum + n, 0);
    console.log(`bad-input cases run over HTTP: ${total} in all; ${[...casesRun].map(([route, n]) => `${route}: ${n}`).join('; ')}`);
    await dev?.stop();
  });

  async function expectRefusedWithoutWrites(method: string, path: string, requests: fc.Arbitrary<BadRequest>, authorised: boolean): Promise<void> {
    const before = await redisState(redis.admin);
    await fc.assert(
      fc.asyncProperty(requests, async (bad) => {
        const headers = authorised && !('authorization' in bad.headers) ? { authorization: `Bearer ${token}`, ...bad.headers } : bad.headers;
        const answer = await send(dev.baseUrl, method, path, headers, bytesOf(bad));
        casesRun.set(`${method} ${path}`, (casesRun.get(`${method} ${path}`) ?? 0) + 1);
        expectClientProblem(answer, bad.kind);
        if (bad.status !== undefined) expect(answer.statusCode, bad.kind).toBe(bad.status);
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
    const after = await redisState(redis.admin);
    expect(stateDifference(before, after)).toEqual([]);
  }

  const bodiesOf = (route: BodyRoute) => badBodies(route).filter(meaningfulOverHttp);
  const configured = loadConfig({});

  it('POST /auth/register and POST /auth/login refuse bad bodies with 4xx problems and write nothing', async () => {
    await expectRefusedWithoutWrites('POST', '/auth/register', bodiesOf(registerRoute), false);
    await expectRefusedWithoutWrites('POST', '/auth/login', bodiesOf(loginRoute), false);
  });

  it('POST /chat and POST /embeddings refuse bad bodies with 4xx problems and write nothing, not even rate-limit state', async () => {
    await expectRefusedWithoutWrites('POST', '/chat', bodiesOf(chatRoute(configured.chat.models)), true);
    await expectRefusedWithoutWrites('POST', '/embeddings', bodiesOf(embeddingsRoute(configured.embeddings.model, configured.embeddings.dimensions)), true);
  });

  it('every protected route answers a garbage Authorization header with a 401 problem', async () => {
    const garbage = (method: string) =>
      garbageAuthorization(token)
        .filter((value) => value.trim() !== '' && sendable(value) && value.length <= MAX_HEADER_BYTES)
        .map((authorization): BadRequest => ({
          kind: 'garbage authorization',
          status: 401,
          headers: { authorization, 'content-type': 'application/json' },
          ...(method === 'POST' ? { body: '{}' } : {}),
        }));
    for (const [method, path] of [['GET', '/auth/session'], ['GET', '/usage'], ['POST', '/auth/logout'], ['POST', '/chat'], ['POST', '/embeddings']] as const) {
      await expectRefusedWithoutWrites(method, path, garbage(method), true);
    }
  });

  it('POST /auth/logout?all=<neither true nor false> is a 400 problem and the session lives on', async () => {
    const before = await redisState(redis.admin);

    await fc.assert(
      fc.asyncProperty(garbageAll, async (all) => {
        const answer = await send(dev.baseUrl, 'POST', `/auth/logout?all=${encodeURIComponent(all)}`, { authorization: `Bearer ${token}` });
        casesRun.set('POST /auth/logout', (casesRun.get('POST /auth/logout') ?? 0) + 1);
        expectClientProblem(answer, `all=${JSON.stringify(all)}`);
        expect(answer.statusCode).toBe(400);
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );

    expect(stateDifference(before, await redisState(redis.admin))).toEqual([]);
    expect((await send(dev.baseUrl, 'GET', '/auth/session', { authorization: `Bearer ${token}` })).statusCode).toBe(200);
  });

  it('an unknown route answers every method, path and body with a 404 problem', async () => {
    const requests = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE'),
      path: fc.oneof(fc.webPath(), fc.string({ maxLength: 30 }).map((text) => `/${encodeURIComponent(text)}`)),
      body: fc.string({ maxLength: 40 }),
    });
    await fc.assert(
      fc.asyncProperty(requests, async ({ method, path, body }) => {
        const route = path.split('?')[0]!.replace(/\/+$/, '');
        fc.pre(!Object.hasOwn(ROUTES, route) && !path.startsWith('//') && !/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(path));
        const withBody = method !== 'GET' && method !== 'DELETE';
        const answer = await send(dev.baseUrl, method, path.startsWith('/') ? path : `/${path}`, { 'content-type': 'text/plain' }, withBody ? Buffer.from(body) : undefined);
        casesRun.set('not-found', (casesRun.get('not-found') ?? 0) + 1);
        expectClientProblem(answer, `${method} ${path}`);
        expect(answer.statusCode).toBe(404);
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });

  it('headers beyond the local server\'s limit are a 4xx from the server itself, and the next request is served', async () => {
    const answer = await send(dev.baseUrl, 'POST', '/auth/register', { 'content-type': 'application/json', 'x-junk': 'a'.repeat(64_000) }, Buffer.from('{}'));

    expect(answer.statusCode).toBeGreaterThanOrEqual(400);
    expect(answer.statusCode).toBeLessThan(500);
    expect((await send(dev.baseUrl, 'GET', '/health', {})).statusCode).toBe(200);
  });
});
