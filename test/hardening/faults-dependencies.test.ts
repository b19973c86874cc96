// The other dependencies failing: Secrets Manager at cold start, Claude slower than the time
// budget, the embeddings provider refusing or silent. Each failure is a clear problem, fast (or
// within Claude's budget), nothing of it is cached, and the next request after the dependency is
// back succeeds in the same container.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler as chat } from '../../functions/chat.ts';
import { handler as embeddings } from '../../functions/embeddings.ts';
import { startAnthropicDouble, type AnthropicDouble } from '../doubles/anthropic.ts';
import { startOpenAiEmbeddingsDouble, type OpenAiEmbeddingsDouble, type Failure } from '../doubles/openai-embeddings.ts';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../doubles/secrets-manager.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { startSilentServer, type SilentServer } from '../support/tcp-proxy.ts';
import { bearer, callLogin, callRegister, callSession, signUpAndLogIn, uniqueEmail, type SignedIn } from '../support/session.ts';
import { auditCaches } from './cache-integrity.ts';
import { chatBody, expectUnavailable, timed, type Outcome } from './traffic.ts';

const FAST_FAILURE_MS = 1_500;
const FAST_AUTH = { PASSWORD_SCRYPT_LOG2N: '14' };

const redis = useStandaloneRedis();

const keysMatching = (pattern: string) => redis.admin.keys(pattern);

describe('Secrets Manager down at cold start', () => {
  let secrets: SecretsManagerDouble;
  const SECRET_ID = 'tutor/redis-at-cold-start';
  let user: SignedIn & { email: string };

  beforeAll(async () => {
    secrets = await startSecretsManagerDouble();
    secrets.setSecret(SECRET_ID, redis.server.url);
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH });
    const email = uniqueEmail();
    user = { ...(await signUpAndLogIn({ email })), email };
  });
  afterAll(() => secrets.close());

  const calls = () => [
    () => timed('POST /auth/register', () => callRegister({ email: uniqueEmail(), password: 'a long enough password' })),
    () => timed('POST /auth/login', () => callLogin({ email: user.email, password: user.password })),
    () => timed('GET /auth/session', () => callSession(user.token)),
    () => timed('POST /chat', () => invoke(chat, httpEvent('POST', '/chat', { headers: bearer(user.token), body: chatBody(`cold ${Date.now()}`) }))),
    () => timed('POST /embeddings', () => invoke(embeddings, httpEvent('POST', '/embeddings', { headers: bearer(user.token), body: { input: 'cold start' } }))),
  ];

  /** One call of every route that needs Redis, one after the other, as a Lambda container serves them. */
  const everyRoute = async () => {
    const outcomes: Outcome[] = [];
    for (const call of calls()) outcomes.push(await call());
    return outcomes;
  };

  const expectFastUnavailable = (outcomes: Outcome[], withinMs: number) => {
    for (const outcome of outcomes) {
      expectUnavailable(outcome);
      expect(outcome.status, outcome.route).toBe(503);
      expect(outcome.ms, `${outcome.route} answered in ${Math.round(outcome.ms)} ms`).toBeLessThan(withinMs);
    }
  };

  it('answers 503 on every route while it fails, and the next invocation of the same container reads the secret', async () => {
    await useEnvironment({ REDIS_URL: undefined, REDIS_SECRET_ID: SECRET_ID, ...secrets.env, ...FAST_AUTH });
    secrets.failing = true;

    const down = await everyRoute();
    secrets.failing = false;
    const back = await everyRoute();

    expectFastUnavailable(down, FAST_FAILURE_MS);
    expect(back.map((outcome) => outcome.status)).toEqual([201, 200, 200, 200, 200]);
  });

  it('answers 503 on every route when nothing listens at its endpoint, then recovers once it is reachable', async () => {
    await useEnvironment({ REDIS_URL: undefined, REDIS_SECRET_ID: SECRET_ID, ...secrets.env, AWS_ENDPOINT_URL_SECRETS_MANAGER: 'http://127.0.0.1:1', ...FAST_AUTH });

    const down = await everyRoute();
    process.env['AWS_ENDPOINT_URL_SECRETS_MANAGER'] = secrets.endpoint; // the endpoint comes back (same container)
    const back = await everyRoute();

    expectFastUnavailable(down, FAST_FAILURE_MS);
    expect(back.map((outcome) => outcome.status)).toEqual([201, 200, 200, 200, 200]);
  });

  describe('when it accepts connections and never answers', () => {
    let silent: SilentServer;
    beforeAll(async () => {
      silent = await startSilentServer();
    });
    afterAll(() => silent.close());

    it('answers 503 within about a second (two attempts of 0.5 s of silence), never at the function time-out', async () => {
      const endpoint = `http://127.0.0.1:${silent.port}`;
      await useEnvironment({ REDIS_URL: undefined, REDIS_SECRET_ID: SECRET_ID, ...secrets.env, AWS_ENDPOINT_URL_SECRETS_MANAGER: endpoint, ...FAST_AUTH });

      // All at once, to keep the test short: no Redis client is made while the secret is unread.
      const down = await Promise.all(calls().map((call) => call()));

      expectFastUnavailable(down, 2_000);
    });
  });
});

describe('Claude slower than the time budget', () => {
  let claude: AnthropicDouble;
  let user: SignedIn;
  beforeAll(async () => {
    claude = await startAnthropicDouble();
  });
  beforeEach(async () => {
    claude.reset();
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH, ...claude.env, CHAT_PROVIDER: 'anthropic', CHAT_TIMEOUT_MS: '500' });
    user ??= await signUpAndLogIn();
  });
  afterAll(() => claude.close());

  const ask = (content: string) =>
    timed('POST /chat', () => invoke(chat, httpEvent('POST', '/chat', { headers: bearer(user.token), body: chatBody(content) })));

  it('gives a clear 5xx problem within the budget, caches nothing, and the next identical question reaches Claude again', async () => {
    const question = `Why is the sky blue? ${Date.now()}`;
    const answersBefore = (await keysMatching('tc:{rc:chat:*}:answer')).sort();
    claude.defaultDelayMs = 3_000;

    const slow = await ask(question);
    claude.defaultDelayMs = 0;
    const answersAfterFailure = (await keysMatching('tc:{rc:chat:*}:answer')).sort();
    const locksAfterFailure = await keysMatching('tc:{rc:chat:*}:lock');
    const again = await ask(question);

    expect(slow.status).toBeGreaterThanOrEqual(500);
    expect(slow.answer.headers['content-type']).toBe('application/problem+json');
    expect(slow.answer.json).toMatchObject({ status: slow.status, type: expect.stringMatching(/timeout/) });
    expect(slow.ms).toBeLessThan(500 + 1_000);
    expect(answersAfterFailure).toEqual(answersBefore);
    expect(locksAfterFailure).toEqual([]);
    expect(again.status).toBe(200);
    expect(again.answer.headers['x-cache']).toBe('MISS');
  });

  it('fails every concurrent identical request within the budget when Claude is slow, then one call answers them all', async () => {
    const question = `What is a limit? ${Date.now()}`;
    claude.defaultDelayMs = 3_000;

    const slow = await Promise.all(Array.from({ length: 5 }, () => ask(question)));
    claude.defaultDelayMs = 0;
    const callsBefore = claude.calls;
    const fast = await Promise.all(Array.from({ length: 5 }, () => ask(question)));

    for (const outcome of slow) {
      expect(outcome.status, outcome.answer.body).toBeGreaterThanOrEqual(500);
      expect(outcome.answer.headers['content-type']).toBe('application/problem+json');
      expect(outcome.ms).toBeLessThan(500 + 1_000);
    }
    expect(fast.map((outcome) => outcome.status)).toEqual([200, 200, 200, 200, 200]);
    expect(claude.calls - callsBefore).toBe(1);
    expect((await auditCaches(redis.admin, 384)).faults).toEqual([]);
  });
});

describe('the embeddings provider failing', () => {
  let provider: OpenAiEmbeddingsDouble;
  let user: SignedIn;
  const DIMENSIONS = 64;
  beforeAll(async () => {
    provider = await startOpenAiEmbeddingsDouble();
  });
  beforeEach(async () => {
    provider.reset();
    await useEnvironment({ REDIS_URL: redis.server.url, ...FAST_AUTH, ...provider.env(DIMENSIONS), EMBEDDINGS_TIMEOUT_MS: '300' });
    user ??= await signUpAndLogIn();
    for (const key of await keysMatching('tc:{e*')) await redis.admin.del(key);
  });
  afterAll(() => provider.close());

  const embed = (input: string[]) =>
    timed('POST /embeddings', () => invoke(embeddings, httpEvent('POST', '/embeddings', { headers: bearer(user.token), body: { input } })));

  const failures: Array<[string, Failure | 'silent', number]> = [
    ['a 500', { status: 500 }, 502],
    ['a 429 with Retry-After', { status: 429, retryAfter: '7' }, 429],
    ['a 503', { status: 503 }, 503],
    ['a 200 that is not an embeddings answer', { status: 200, body: '<html>maintenance</html>' }, 502],
    ['an answer slower than EMBEDDINGS_TIMEOUT_MS', 'silent', 504],
  ];

  for (const [what, failure, status] of failures) {
    it(`answers ${what} from the provider with a ${status} problem, fast, caching nothing; the next request is served and cached`, async () => {
      if (failure === 'silent') provider.delayMs = 2_000;
      else provider.failure = failure;
      const texts = [`alpha ${what}`, `beta ${what}`];

      const failed = await embed(texts);
      const cachedAfterFailure = await keysMatching('tc:{e*');
      provider.reset();
      const served = await embed(texts);

      expect(failed.status).toBe(status);
      expect(failed.answer.headers['content-type']).toBe('application/problem+json');
      expect(failed.answer.json.status).toBe(status);
      if (status === 429) expect(failed.answer.headers['retry-after']).toBe('7');
      expect(failed.ms).toBeLessThan(FAST_FAILURE_MS);
      expect(cachedAfterFailure).toEqual([]);
      expect(served.status).toBe(200);
      const audit = await auditCaches(redis.admin, DIMENSIONS);
      expect(audit.faults).toEqual([]);
      expect(audit.vectors).toBe(2);
    });
  }
});
