// Bad input on every route, through the handlers with API Gateway events: property-based, with
// the generators of bad-requests.ts. Each refusal must be a 4xx problem+json whose `status` is
// the response's, never a 5xx or a throw, and a batch of refusals must leave Redis as it was.
//
// What refused requests may change in Redis, and why (everything else is compared):
// - The rate-limit state of the signed-in user on POST /chat and POST /embeddings, in the batches
//   of other routes and of headers only: at these limits a key expires within milliseconds of
//   its last write, so one left by an earlier batch may vanish during a later one. The batches of
//   bad bodies on those routes compare it too: a request found invalid spends nothing.
// - The TTL of the caller's session: every authenticated request slides it. TTLs are compared
//   only as "has one or not" (see redis-state.ts).
// Nothing else, and on the auth routes nothing at all (a bad body only reads the address's
// rate-limit state, for its headers, and failed logins are not generated here).

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as chat } from '../../functions/chat.ts';
import { handler as embeddings } from '../../functions/embeddings.ts';
import { handler as health } from '../../functions/health.ts';
import { handler as login } from '../../functions/auth-login.ts';
import { handler as logout } from '../../functions/auth-logout.ts';
import { handler as notFound, ROUTES as KNOWN_ROUTES } from '../../functions/not-found.ts';
import { handler as register } from '../../functions/auth-register.ts';
import { handler as session } from '../../functions/auth-session.ts';
import { handler as usage } from '../../functions/usage.ts';
import { config } from '../../shared/config.ts';
import { key, rateLimitTag } from '../../shared/keys.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke, type InvokeResult } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { callSession, signUpAndLogIn, type SignedIn } from '../support/session.ts';
import {
  badBodies,
  TEST_BODY_LIMIT_BYTES,
  chatRoute,
  embeddingsRoute,
  garbageAll,
  garbageAuthorization,
  hugeHeaders,
  loginRoute,
  registerRoute,
  type BadRequest,
  type BodyRoute,
} from './bad-requests.ts';
import { expectClientProblem } from './problems.ts';
import { redisState, stateDifference, type KeyFilter } from './redis-state.ts';

type Handler = (event: any, context: any) => Promise<unknown>;

interface Route {
  name: string;
  method: string;
  path: string;
  handler: Handler;
  /** Needs a bearer token; the signed-in user's is sent unless the case brings its own. */
  protected: boolean;
}

const ROUTES = {
  register: { name: 'POST /auth/register', method: 'POST', path: '/auth/register', handler: register, protected: false },
  login: { name: 'POST /auth/login', method: 'POST', path: '/auth/login', handler: login, protected: false },
  session: { name: 'GET /auth/session', method: 'GET', path: '/auth/session', handler: session, protected: true },
  logout: { name: 'POST /auth/logout', method: 'POST', path: '/auth/logout', handler: logout, protected: true },
  chat: { name: 'POST /chat', method: 'POST', path: '/chat', handler: chat, protected: true },
  embeddings: { name: 'POST /embeddings', method: 'POST', path: '/embeddings', handler: embeddings, protected: true },
  usage: { name: 'GET /usage', method: 'GET', path: '/usage', handler: usage, protected: true },
  health: { name: 'GET /health', method: 'GET', path: '/health', handler: health, protected: false },
} satisfies Record<string, Route>;

/** Cases run per route and the statuses they got, printed at the end (and quoted in RELIABILITY.md). */
const casesRun = new Map<string, Map<number, number>>();

function count(route: string, status: number): void {
  const statuses = casesRun.get(route) ?? new Map<number, number>();
  statuses.set(status, (statuses.get(status) ?? 0) + 1);
  casesRun.set(route, statuses);
}

function summary(): string {
  let total = 0;
  const lines = [...casesRun].map(([route, statuses]) => {
    const cases = [...statuses.values()].reduce((sum, n) => sum + n, 0);
    total += cases;
    const byStatus = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`).join(' ');
    return `${route}: ${cases} (${byStatus})`;
  });
  return `bad-input cases run through the handlers: ${total} in all; ${lines.join('; ')}`;
}

describe('bad input on every route, through the handlers', () => {
  const redis = useStandaloneRedis();
  let user: SignedIn;
  const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();

  beforeAll(async () => {
    // Limits high enough that the refusals under test are 400s rather than 429s.
    await useEnvironment({
      REDIS_URL: redis.server.url,
      PASSWORD_SCRYPT_LOG2N: '14',
      RATE_LIMIT_CHAT: '1000000/1m',
      RATE_LIMIT_EMBEDDINGS: '1000000/1m',
      CHAT_PROVIDER: 'local',
      EMBEDDINGS_PROVIDER: 'local',
      MAX_BODY_BYTES: String(TEST_BODY_LIMIT_BYTES),
    });
    user = await signUpAndLogIn();
  });

  afterAll(() => console.log(summary()));

  async function send(route: Route, request: BadRequest): Promise<InvokeResult> {
    const headers = route.protected && !('authorization' in request.headers) ? { authorization: `Bearer ${user.token}`, ...request.headers } : request.headers;
    const event = httpEvent(route.method, route.path, {
      headers,
      ...(request.body === undefined ? {} : { body: request.body }),
      ...(request.query === undefined ? {} : { query: request.query }),
      isBase64Encoded: request.isBase64Encoded ?? false,
    });
    const answer = await invoke(route.handler, event);
    count(route.name, answer.statusCode);
    return answer;
  }

  /**
   * The rate-limit state (every policy) of the signed-in user in the chat and embeddings buckets
   * (see the header). Ignored in every batch, not only on those routes: at these limits the keys
   * expire within milliseconds of their last write, so they may vanish during any later batch.
   */
  function userRateLimitState(name: string): boolean {
    const tag = key(rateLimitTag(`user:${user.user.id}`));
    return name.startsWith(`${tag}:chat:`) || name.startsWith(`${tag}:embeddings:`);
  }

  const nothing: KeyFilter = () => false;

  /** Every case refused with a 4xx problem, and Redis (but `mayChange`) as it was before the batch. */
  async function expectRefusedWithoutWrites(
    route: Route,
    requests: fc.Arbitrary<BadRequest>,
    numRuns: number,
    mayChange: KeyFilter = userRateLimitState,
  ): Promise<void> {
    const before = await redisState(redis.admin, mayChange);

    await fc.assert(
      fc.asyncProperty(requests, async (request) => {
        const answer = await send(route, request);
        expectClientProblem(answer, request.kind);
        if (request.status !== undefined) expect(answer.statusCode, request.kind).toBe(request.status);
      }),
      { numRuns },
    );

    const after = await redisState(redis.admin, mayChange);
    expect(stateDifference(before, after)).toEqual([]);
    expect(after.size).toBe(before.size);
  }

  /** A valid body sent with a bad header set: the header decides the refusal. */
  const withHeaders = (routeBody: BodyRoute | undefined, headers: fc.Arbitrary<Record<string, string>>, kind: string, status: number) =>
    headers.map((set): BadRequest => ({
      kind,
      status,
      ...(routeBody === undefined ? {} : { body: JSON.stringify(routeBody.valid()) }),
      headers: { 'content-type': 'application/json', ...set },
    }));

  const authorization = () => garbageAuthorization(user.token).map((value) => ({ authorization: value }));

  describe('bodies', () => {
    it('POST /auth/register refuses every bad body with a 4xx problem and writes nothing', async () => {
      await expectRefusedWithoutWrites(ROUTES.register, badBodies(registerRoute), 1000);
    });

    it('POST /auth/login refuses every bad body with a 4xx problem and writes nothing', async () => {
      await expectRefusedWithoutWrites(ROUTES.login, badBodies(loginRoute), 1000);
    });

    it('POST /chat refuses every bad body with a 4xx problem and writes nothing, its rate-limit state included', async () => {
      await expectRefusedWithoutWrites(ROUTES.chat, badBodies(chatRoute(config().chat.models)), 1000, nothing);
    });

    it('POST /embeddings refuses every bad body with a 4xx problem and writes nothing, its rate-limit state included', async () => {
      const { model, dimensions } = config().embeddings;
      await expectRefusedWithoutWrites(ROUTES.embeddings, badBodies(embeddingsRoute(model, dimensions)), 1000, nothing);
    });
  });

  it('a body that arrives as a JSON value rather than text (serverless-offline passes `0` and `false` so) is a 400 problem', async () => {
    for (const value of [0, false, 1, true]) {
      const event = httpEvent('POST', '/chat', { headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` } });
      (event as unknown as { body: unknown }).body = value;

      const answer = await invoke(chat, event);

      expectClientProblem(answer, `body ${value}`);
      expect(answer.statusCode).toBe(400);
    }
  });

  describe('headers', () => {
    it('every protected route answers a garbage Authorization header with a 401 problem and writes nothing', async () => {
      const bodies: Record<string, BodyRoute | undefined> = {
        [ROUTES.chat.name]: chatRoute(config().chat.models),
        [ROUTES.embeddings.name]: embeddingsRoute(config().embeddings.model, config().embeddings.dimensions),
      };
      for (const route of [ROUTES.session, ROUTES.logout, ROUTES.chat, ROUTES.embeddings, ROUTES.usage]) {
        await expectRefusedWithoutWrites(route, withHeaders(bodies[route.name], authorization(), 'garbage authorization', 401), 200);
      }
    });

    it('huge and numerous headers beside a bad body are refused like the bad body alone', async () => {
      const wrongFields = (routeBody: BodyRoute) =>
        fc.tuple(hugeHeaders, routeBody.wrongFields).map(([headers, body]): BadRequest => ({
          kind: `${Object.keys(headers).length} headers`,
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json', ...headers },
        }));
      await expectRefusedWithoutWrites(ROUTES.register, wrongFields(registerRoute), 50);
      await expectRefusedWithoutWrites(ROUTES.login, wrongFields(loginRoute), 50);
      await expectRefusedWithoutWrites(ROUTES.chat, wrongFields(chatRoute(config().chat.models)), 50);
      const { model, dimensions } = config().embeddings;
      await expectRefusedWithoutWrites(ROUTES.embeddings, wrongFields(embeddingsRoute(model, dimensions)), 50);
    });
  });

  describe('query strings', () => {
    it('POST /auth/logout?all=<neither true nor false> is a 400 problem that ends no session', async () => {
      const requests = garbageAll.map((all): BadRequest => ({ kind: `all=${JSON.stringify(all)}`, headers: {}, query: { all } }));

      await expectRefusedWithoutWrites(ROUTES.logout, requests, 300);

      expect((await callSession(user.token)).statusCode).toBe(200);
    });
  });

  describe('routes that ignore what they do not read', () => {
    it('GET /health answers 200 whatever the body, headers and query', async () => {
      const anything = fc.record({
        body: fc.oneof(fc.string({ maxLength: 50 }), fc.constant('{"__proto__":{"status":"pwned"}}')),
        headers: hugeHeaders,
        query: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 5 }),
      });

      await fc.assert(
        fc.asyncProperty(anything, async (request) => {
          const answer = await send(ROUTES.health, { kind: 'anything', ...request });
          expect(answer.statusCode).toBe(200);
          expect(answer.json).toMatchObject({ status: 'ok', redis: 'ok' });
        }),
        { numRuns: 200 },
      );
    });

    it('GET /auth/session and GET /usage ignore a garbage body and answer the valid token', async () => {
      const bodies = fc.oneof(fc.string({ maxLength: 80 }), fc.constant('{"__proto__":{"id":"someone-else"}}'));

      await fc.assert(
        fc.asyncProperty(bodies, fc.constantFrom(ROUTES.session, ROUTES.usage), async (body, route) => {
          const answer = await send(route, { kind: 'garbage body on GET', body, headers: {} });
          expect(answer.statusCode).toBe(200);
          if (route === ROUTES.session) expect(answer.json.user.id).toBe(user.user.id);
        }),
        { numRuns: 200 },
      );
    });

    it('an unknown route answers every method, path and body with a 404 problem', async () => {
      const requests = fc.record({
        method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE', 'BREW'),
        path: fc.oneof(fc.webPath(), fc.string({ maxLength: 40 }).map((text) => `/${text}`), fc.constantFrom('/../../etc/passwd', '/%00', '/chat/../health', `/${'a'.repeat(10_000)}`)),
        body: fc.oneof(fc.string({ maxLength: 40 }), fc.constant('{"__proto__":{}}')),
      });

      await fc.assert(
        fc.asyncProperty(requests, async ({ method, path, body }) => {
          fc.pre(!Object.hasOwn(KNOWN_ROUTES, path)); // a known path with another method is a 405 (tested with the handlers)
          const answer = await invoke(notFound, httpEvent(method, path, { body, headers: { 'content-type': 'text/plain' } }));
          count('not-found (any route)', answer.statusCode);
          // A HEAD gets the problem's headers without its body.
          if (method === 'HEAD') expect([answer.headers['content-type'], answer.body]).toEqual(['application/problem+json', '']);
          else expectClientProblem(answer, `${method} ${path}`);
          expect(answer.statusCode).toBe(404);
        }),
        { numRuns: 300 },
      );
    });
  });

  it('no request sent by the tests above polluted Object.prototype (run alone, it has none to check)', () => {
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore);
    const probe = {} as Record<string, unknown>;
    for (const field of ['email', 'password', 'messages', 'input', 'status', 'id', 'isAdmin']) expect(probe[field]).toBeUndefined();
  });
});
