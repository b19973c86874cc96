// POST /auth/login against a real redis-server: tokens and what Redis keeps of them, one 401 for
// a wrong password and an unknown email, throttling by address and by account, secrets kept out of
// logs, Redis down, and the two round trips a login costs.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as login } from '../../functions/auth-login.ts';
import { digest, sessionKey, userKey } from '../../shared/keys.ts';
import { getRedis } from '../../shared/redis.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { startStandaloneRedis, type RedisServer } from '../support/redis.ts';
import { startRoundTripProxy, type RoundTripProxy } from '../support/round-trip-proxy.ts';
import {
  callLogin,
  callLogout,
  callRegister,
  callSession,
  randomAddress,
  signUpAndLogIn,
  uniqueEmail,
} from '../support/session.ts';

const PASSWORD = 'correct horse battery';

describe('POST /auth/login', () => {
  const redis = useStandaloneRedis();

  const environment = (vars: Record<string, string> = {}) =>
    useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', ...vars });

  async function registered(email = uniqueEmail(), password = PASSWORD): Promise<string> {
    const response = await callRegister({ email, password, name: 'Ada' });
    expect(response.statusCode).toBe(201);
    return email;
  }

  it('answers 200 with a bearer token, its expiry and the user', async () => {
    await environment({ SESSION_IDLE_SECONDS: '3600' });
    const email = await registered();
    const before = Date.now();

    const response = await callLogin({ email, password: PASSWORD });

    expect(response.statusCode).toBe(200);
    expect(response.json).toEqual({
      token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      tokenType: 'Bearer',
      expiresAt: expect.any(String),
      user: { id: expect.any(String), email, name: 'Ada' },
    });
    const expiresAt = Date.parse(response.json.expiresAt);
    expect(new Date(expiresAt).toISOString()).toBe(response.json.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 3600_000 - 2000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 3600_000 + 2000);
    expect(response.headers['ratelimit-policy']).toBe('"address-10-per-15m";q=10;w=900, "account-5-per-15m";q=5;w=900');
    expect(response.headers['cache-control']).toBe('no-store');
  });

  it('accepts the email in any case and with surrounding spaces', async () => {
    await environment();
    const email = await registered();

    const response = await callLogin({ email: `  ${email.toUpperCase()}  `, password: PASSWORD });

    expect(response.statusCode).toBe(200);
    expect(response.json.user.email).toBe(email);
  });

  it('logs in with the longest password registration takes: 256 characters of several code points each', async () => {
    await environment();
    const password = 'e\u0301\u0302\u0303\u0304'.repeat(256); // 256 characters, 1,280 code points
    const email = await registered(uniqueEmail(), password);

    const response = await callLogin({ email, password });

    expect(response.statusCode).toBe(200);
  });

  it('gives a different token at each login, each one valid', async () => {
    await environment();
    const email = await registered();

    const first = await callLogin({ email, password: PASSWORD });
    const second = await callLogin({ email, password: PASSWORD });

    expect(first.json.token).not.toBe(second.json.token);
    expect((await callSession(first.json.token)).statusCode).toBe(200);
    expect((await callSession(second.json.token)).statusCode).toBe(200);
  });

  it('answers a wrong password and an unknown email with the same 401 body', async () => {
    await environment();
    const email = await registered();

    const wrongPassword = await callLogin({ email, password: 'not the password' });
    const unknownEmail = await callLogin({ email: uniqueEmail(), password: 'not the password' });

    expect(wrongPassword.statusCode).toBe(401);
    expect(unknownEmail.statusCode).toBe(401);
    expect(wrongPassword.headers['content-type']).toBe('application/problem+json');
    expect(wrongPassword.body).toBe(unknownEmail.body);
    expect(wrongPassword.headers['www-authenticate']).toBe('Bearer');
    expect(unknownEmail.headers['www-authenticate']).toBe('Bearer');
  });

  it('keeps in Redis only the digest of the token, never the token itself', async () => {
    await environment();
    const { token } = await signUpAndLogIn();

    const everything = await dumpRedis();

    expect(everything).not.toContain(token);
    expect(everything).toContain(sessionKey(digest(token)));
  });

  it('re-hashes a password stored with weaker parameters at the next login, and never weakens one', async () => {
    await environment({ PASSWORD_SCRYPT_LOG2N: '14' });
    const email = await registered();
    const storedParameters = async () => ((await (await getRedis()).hget(userKey(digest(email)), 'passwordHash')) ?? '').split('$').slice(0, 4).join('$');
    expect(await storedParameters()).toBe('scrypt$14$8$1');

    await environment({ PASSWORD_SCRYPT_LOG2N: '15' });
    const stronger = await callLogin({ email, password: PASSWORD });
    const afterStronger = await storedParameters();
    await environment({ PASSWORD_SCRYPT_LOG2N: '14' });
    const weaker = await callLogin({ email, password: PASSWORD });

    expect([stronger.statusCode, weaker.statusCode]).toEqual([200, 200]);
    expect(afterStronger).toBe('scrypt$15$8$1');
    expect(await storedParameters()).toBe('scrypt$15$8$1');
  });

  it('answers 401, not 500, when the stored hash is unreadable', async () => {
    await environment();
    const email = await registered();
    await (await getRedis()).hset(userKey(digest(email)), 'passwordHash', 'scrypt$99$8$1$not-base64$');

    const response = await callLogin({ email, password: PASSWORD });

    expect(response.statusCode).toBe(401);
  });

  it('answers 401 without running a stored hash costlier than any this service makes', async () => {
    await environment();
    const email = await registered();
    const salt = Buffer.alloc(16, 1).toString('base64');
    const key = Buffer.alloc(64, 2).toString('base64');
    await (await getRedis()).hset(userKey(digest(email)), 'passwordHash', `scrypt$20$64$1$${salt}$${key}`);

    const response = await callLogin({ email, password: PASSWORD });

    expect(response.statusCode).toBe(401);
  });

  describe('throttling', () => {
    it('refuses an account with 429 and Retry-After after its allowed failures, whatever the address, even with the right password', async () => {
      await environment({ RATE_LIMIT_LOGIN_ACCOUNT: '3/1h' });
      const email = await registered();
      const failures = [];
      for (let attempt = 0; attempt < 3; attempt++) {
        failures.push((await callLogin({ email, password: 'not the password' }, randomAddress())).statusCode);
      }

      const refused = await callLogin({ email, password: PASSWORD }, randomAddress());

      expect(failures).toEqual([401, 401, 401]);
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['content-type']).toBe('application/problem+json');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    });

    it('lists both limits, by address and by account, on every answer, refusals included', async () => {
      await environment({ RATE_LIMIT_LOGIN: '4/1h', RATE_LIMIT_LOGIN_ACCOUNT: '2/1h' });
      const email = await registered();
      const address = randomAddress();

      const success = await callLogin({ email, password: PASSWORD }, address);
      const failures = [
        await callLogin({ email, password: 'not the password' }, address),
        await callLogin({ email, password: 'not the password' }, address),
      ];
      const refused = await callLogin({ email, password: PASSWORD }, address);

      const policy = '"address-4-per-1h";q=4;w=3600, "account-2-per-1h";q=2;w=3600';
      expect([success, ...failures, refused].map((answer) => answer.headers['ratelimit-policy'])).toEqual([policy, policy, policy, policy]);
      expect(success.headers['ratelimit']).toBe('"address-4-per-1h";r=4;t=0, "account-2-per-1h";r=2;t=0');
      expect(failures[1]!.statusCode).toBe(401);
      expect(failures[1]!.headers['ratelimit']).toBe('"address-4-per-1h";r=2;t=900, "account-2-per-1h";r=0;t=1800');
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['ratelimit']).toBe(`"address-4-per-1h";r=2;t=900, "account-2-per-1h";r=0;t=${refused.headers['retry-after']}`);
    });

    it('answers the longer wait when both the address and the account are spent, so that obeying it works', async () => {
      await environment({ RATE_LIMIT_LOGIN: '2/20s', RATE_LIMIT_LOGIN_ACCOUNT: '2/1h' });
      const email = await registered();
      const address = randomAddress();
      for (let attempt = 0; attempt < 2; attempt++) await callLogin({ email, password: 'not the password' }, address);

      const refused = await callLogin({ email, password: PASSWORD }, address);

      expect(refused.statusCode).toBe(429);
      // The address refills a unit in 10 s, the account in 30 minutes: only the latter lets a login through.
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(1700);
    });

    it('puts the address limit\'s headers on a 400 too, read without spending', async () => {
      await environment({ RATE_LIMIT_LOGIN: '4/1h' });
      const address = randomAddress();

      const invalid = await callLogin({ email: 'a@b.org' }, address);
      const malformed = await invoke(login, httpEvent('POST', '/auth/login', { body: '{"email":', headers: { 'content-type': 'application/json' }, sourceIp: address }));

      for (const refused of [invalid, malformed]) {
        expect(refused.statusCode).toBe(400);
        expect(refused.headers['ratelimit']).toBe('"address-4-per-1h";r=4;t=0');
      }
    });

    it('refuses a burst of concurrent guesses from one address beyond its limit: no more than the limit are checked', async () => {
      await environment({ RATE_LIMIT_LOGIN: '3/1h' });
      const address = randomAddress();

      const answers = await Promise.all(Array.from({ length: 10 }, () => callLogin({ email: uniqueEmail(), password: 'not the password' }, address)));

      const statuses = answers.map((answer) => answer.statusCode).sort();
      expect(statuses).toEqual([401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    });

    it('refuses a burst of concurrent guesses at one account beyond its limit, whatever the addresses', async () => {
      await environment({ RATE_LIMIT_LOGIN_ACCOUNT: '2/1h' });
      const email = await registered();

      const answers = await Promise.all(Array.from({ length: 8 }, () => callLogin({ email, password: 'not the password' }, randomAddress())));

      const statuses = answers.map((answer) => answer.statusCode).sort();
      expect(statuses).toEqual([401, 401, 429, 429, 429, 429, 429, 429]);
    });

    it('tells logins beyond the limit in flight at once to come back in a second, and lets them in then', async () => {
      await environment({ RATE_LIMIT_LOGIN: '2/1h' });
      const address = randomAddress();
      const emails = [await registered(), await registered(), await registered(), await registered()];

      const answers = await Promise.all(emails.map((email) => callLogin({ email, password: PASSWORD }, address)));
      const refused = emails.filter((_, index) => answers[index]!.statusCode === 429);
      const retried = await Promise.all(refused.map((email) => callLogin({ email, password: PASSWORD }, address)));

      expect(answers.filter((answer) => answer.statusCode === 200).length).toBeGreaterThanOrEqual(2);
      expect(refused.map((_, index) => answers.filter((answer) => answer.statusCode === 429)[index]!.headers['retry-after'])).toEqual(refused.map(() => '1'));
      expect(retried.map((answer) => answer.statusCode)).toEqual(refused.map(() => 200));
    });

    it('gives back the units of concurrent successful logins once each is done', async () => {
      await environment({ RATE_LIMIT_LOGIN: '3/1h' });
      const address = randomAddress();
      const emails = [await registered(), await registered(), await registered()];
      await Promise.all(emails.map((email) => callLogin({ email, password: PASSWORD }, address)));

      const afterwards = await callLogin({ email: emails[0]!, password: PASSWORD }, address);

      expect(afterwards.statusCode).toBe(200);
      expect(afterwards.headers['ratelimit']).toMatch(/^"address-3-per-1h";r=3;t=0, /);
    });

    it('does not count successful logins against the account', async () => {
      await environment({ RATE_LIMIT_LOGIN_ACCOUNT: '2/1h' });
      const email = await registered();

      const answers = [];
      for (let attempt = 0; attempt < 4; attempt++) answers.push((await callLogin({ email, password: PASSWORD })).statusCode);

      expect(answers).toEqual([200, 200, 200, 200]);
    });

    it('refuses a client address with 429 and Retry-After after its allowed failures, whatever the email', async () => {
      await environment({ RATE_LIMIT_LOGIN: '3/1h' });
      const address = randomAddress();
      const email = await registered();
      const failures = [];
      for (let attempt = 0; attempt < 3; attempt++) {
        failures.push((await callLogin({ email: uniqueEmail(), password: PASSWORD }, address)).statusCode);
      }

      const refused = await callLogin({ email, password: PASSWORD }, address);
      const elsewhere = await callLogin({ email, password: PASSWORD }, randomAddress());

      expect(failures).toEqual([401, 401, 401]);
      expect(refused.statusCode).toBe(429);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(refused.headers['ratelimit']).toBe(`"address-3-per-1h";r=0;t=${refused.headers['retry-after']}, "account-5-per-15m";r=5;t=0`);
      expect(elsewhere.statusCode).toBe(200);
    });

    it('does not count successful logins against the address (many users behind one address)', async () => {
      await environment({ RATE_LIMIT_LOGIN: '2/1h' });
      const address = randomAddress();
      const emails = [await registered(), await registered(), await registered()];

      const answers = [];
      for (const email of [...emails, ...emails]) answers.push((await callLogin({ email, password: PASSWORD }, address)).statusCode);

      expect(answers).toEqual([200, 200, 200, 200, 200, 200]);
    });

    it("does not refill an address's budget when a login from it succeeds", async () => {
      await environment({ RATE_LIMIT_LOGIN: '2/1h' });
      const address = randomAddress();
      const own = await registered();

      const failure = await callLogin({ email: uniqueEmail(), password: PASSWORD }, address);
      const success = await callLogin({ email: own, password: PASSWORD }, address);
      const another = await callLogin({ email: uniqueEmail(), password: PASSWORD }, address);
      const refused = await callLogin({ email: own, password: PASSWORD }, address);

      expect([failure, success, another, refused].map((answer) => answer.statusCode)).toEqual([401, 200, 401, 429]);
    });

    it("does not reset another account's failures when someone logs into their own account", async () => {
      await environment({ RATE_LIMIT_LOGIN_ACCOUNT: '2/1h' });
      const victim = await registered();
      const attacker = await registered();
      const address = randomAddress();

      await callLogin({ email: victim, password: 'guess number one' }, address);
      const own = await callLogin({ email: attacker, password: PASSWORD }, address);
      await callLogin({ email: victim, password: 'guess number two' }, address);
      const refused = await callLogin({ email: victim, password: PASSWORD }, randomAddress());

      expect(own.statusCode).toBe(200);
      expect(refused.statusCode).toBe(429);
    });
  });

  it('never writes the password, the token or the password hash to the logs', async () => {
    await environment({ LOG_LEVEL: 'debug' });
    const email = uniqueEmail();
    const output = captureOutput();
    let token: string;
    try {
      await callRegister({ email, password: PASSWORD });
      await callLogin({ email, password: 'not the password' });
      token = (await callLogin({ email, password: PASSWORD })).json.token;
      await callSession(token);
      await callLogout(token, { all: 'true' });
      await callSession(token);
    } finally {
      output.restore();
    }
    const hash = await (await getRedis()).hget(userKey(digest(email)), 'passwordHash');

    expect(output.text()).toContain('POST /auth/login');
    expect(output.text()).not.toContain(PASSWORD);
    expect(output.text()).not.toContain('not the password');
    expect(output.text()).not.toContain(token);
    expect(hash).toMatch(/^scrypt\$/);
    expect(output.text()).not.toContain(hash!.split('$')[5]);
  });

  describe('answers a malformed body with a 4xx problem, never a 5xx', () => {
    const shapes: Array<[string, string | undefined, Record<string, string>, number]> = [
      ['no body', undefined, {}, 400],
      ['invalid JSON', '{"email": "a@b.org", ', { 'content-type': 'application/json' }, 400],
      ['a JSON array', '[{"email": "a@b.org", "password": "x"}]', { 'content-type': 'application/json' }, 400],
      ['JSON null', 'null', { 'content-type': 'application/json' }, 400],
      ['a JSON string', '"a@b.org"', { 'content-type': 'application/json' }, 400],
      ['JSON true', 'true', { 'content-type': 'application/json' }, 400],
      ['a missing password', '{"email": "a@b.org"}', { 'content-type': 'application/json' }, 400],
      ['a missing email', '{"password": "correct horse battery"}', { 'content-type': 'application/json' }, 400],
      ['a numeric email', '{"email": 42, "password": "correct horse battery"}', { 'content-type': 'application/json' }, 400],
      ['a null password', '{"email": "a@b.org", "password": null}', { 'content-type': 'application/json' }, 400],
      ['an object as password', '{"email": "a@b.org", "password": {"$ne": ""}}', { 'content-type': 'application/json' }, 400],
      ['an empty password', '{"email": "a@b.org", "password": ""}', { 'content-type': 'application/json' }, 400],
      ['a field it does not know', '{"email": "a@b.org", "password": "correct horse battery", "remember": true}', { 'content-type': 'application/json' }, 400],
      ['a password of 100,000 characters', JSON.stringify({ email: 'a@b.org', password: 'x'.repeat(100_000) }), { 'content-type': 'application/json' }, 400],
      ['a form instead of JSON', 'email=a%40b.org&password=x', { 'content-type': 'application/x-www-form-urlencoded' }, 415],
      ['plain text', '{"email": "a@b.org"}', { 'content-type': 'text/plain' }, 415],
    ];
    it.each(shapes)('%s', async (_, body, headers, status) => {
      await environment();

      const response = await invoke(login, httpEvent('POST', '/auth/login', { body, headers, sourceIp: randomAddress() }));

      expect(response.statusCode).toBe(status);
      expect(response.headers['content-type']).toBe('application/problem+json');
      expect(response.json.status).toBe(status);
    });
  });

  describe('when Redis is down', () => {
    const wellFormedToken = randomBytes(32).toString('base64url');
    const routes: Array<[string, () => Promise<{ statusCode: number; headers: Record<string, string> }>]> = [
      ['POST /auth/register', () => callRegister({ email: uniqueEmail(), password: PASSWORD })],
      ['POST /auth/login', () => callLogin({ email: uniqueEmail(), password: PASSWORD })],
      ['GET /auth/session', () => callSession(wellFormedToken)],
      ['POST /auth/logout', () => callLogout(wellFormedToken)],
    ];
    it.each(routes)('%s answers 503 with Retry-After within about a second', async (_, call) => {
      await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', PASSWORD_SCRYPT_LOG2N: '14' });
      const started = Date.now();

      const response = await call();

      expect(response.statusCode).toBe(503);
      expect(response.headers['content-type']).toBe('application/problem+json');
      expect(response.headers['retry-after']).toBe('1');
      expect(Date.now() - started).toBeLessThan(3000);
    });
  });
});

describe('POST /auth/login and Redis', () => {
  let redis: RedisServer;
  let proxy: RoundTripProxy;
  beforeAll(async () => {
    redis = await startStandaloneRedis();
    proxy = await startRoundTripProxy(redis.port);
  });
  afterAll(async () => {
    await useEnvironment({});
    await proxy.close();
    await redis.stop();
  });

  it('reads the account in the round trip of the limit check: two round trips in all, the second for the session', async () => {
    await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, PASSWORD_SCRYPT_LOG2N: '14' });
    const email = uniqueEmail();
    expect((await callRegister({ email, password: PASSWORD })).statusCode).toBe(201);
    // A first login has Redis load the scripts, as a server that has served logins before has.
    expect((await callLogin({ email, password: PASSWORD })).statusCode).toBe(200);
    proxy.reset();

    const response = await callLogin({ email, password: PASSWORD });

    expect(response.statusCode).toBe(200);
    expect(proxy.roundTrips()).toBe(2);
  });
});

/** Every key name and every value in the standalone test Redis, as one text. */
async function dumpRedis(): Promise<string> {
  const redis = await getRedis();
  const keys = await redis.keys('*');
  const parts: string[] = [];
  for (const name of keys) {
    const type = await redis.type(name);
    parts.push(name);
    if (type === 'string') parts.push((await redis.get(name)) ?? '');
    if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(name)));
    if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(name, 0, '-1')));
    if (type === 'set') parts.push(JSON.stringify(await redis.smembers(name)));
  }
  return parts.join('\n');
}
