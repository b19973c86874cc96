// POST /auth/register against a real redis-server: how an account is stored (scrypt hash, no
// TTL), email normalisation, 409 for a taken email and its throttling, one winner of concurrent
// registrations, registration switched off, and 400 problems naming the field at fault.

import { describe, expect, it } from 'vitest';
import { handler as register } from '../../functions/auth-register.ts';
import { digest, userKey } from '../../shared/keys.ts';
import { getRedis } from '../../shared/redis.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { callRegister, randomAddress, uniqueEmail } from '../support/session.ts';

const PASSWORD = 'correct horse battery';

describe('POST /auth/register', () => {
  const redis = useStandaloneRedis();

  const fastHashing = () => useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14' });

  async function storedAccount(email: string): Promise<Record<string, string>> {
    return (await getRedis()).hgetall(userKey(digest(email)));
  }

  it('creates the account and answers 201 with the user, never the password or its hash', async () => {
    await fastHashing();
    const email = uniqueEmail();

    const response = await callRegister({ email, password: PASSWORD, name: 'Ada Lovelace' });

    expect(response.statusCode).toBe(201);
    expect(response.json).toEqual({
      user: { id: expect.any(String), email, name: 'Ada Lovelace', createdAt: expect.any(String) },
    });
    expect(new Date(response.json.user.createdAt).toISOString()).toBe(response.json.user.createdAt);
    expect(response.body).not.toContain(PASSWORD);
    expect(response.body).not.toContain('scrypt');
  });

  it('normalises the email (trimmed, lower case) and trims the name', async () => {
    await fastHashing();
    const email = uniqueEmail();

    const response = await callRegister({ email: `  ${email.toUpperCase()} `, password: PASSWORD, name: '  Ada  ' });

    expect(response.statusCode).toBe(201);
    expect(response.json.user).toMatchObject({ email, name: 'Ada' });
  });

  it('gives a null name when none, an empty one or null is sent', async () => {
    await fastHashing();

    const answers = await Promise.all([
      callRegister({ email: uniqueEmail(), password: PASSWORD }),
      callRegister({ email: uniqueEmail(), password: PASSWORD, name: '   ' }),
      callRegister({ email: uniqueEmail(), password: PASSWORD, name: null }),
    ]);

    expect(answers.map((answer) => [answer.statusCode, answer.json.user.name])).toEqual([
      [201, null],
      [201, null],
      [201, null],
    ]);
  });

  it('gives a null name for one made only of characters that draw nothing (Hangul fillers, blank Braille)', async () => {
    await fastHashing();
    const blankLooking = ['\u3164\u3164', ' \u2800 ', '\u115F\u1160\uFFA0', '\u3164\u200D', '\u200C'];

    const answers = await Promise.all(blankLooking.map((name) => callRegister({ email: uniqueEmail(), password: PASSWORD, name })));

    expect(answers.map((answer) => [answer.statusCode, answer.json.user.name])).toEqual(blankLooking.map(() => [201, null]));
  });

  it('keeps a name in which such a character stands beside visible ones', async () => {
    await fastHashing();

    const response = await callRegister({ email: uniqueEmail(), password: PASSWORD, name: '\u1100\u1161\u3164 Kim' });

    expect([response.statusCode, response.json.user.name]).toEqual([201, '\u1100\u1161\u3164 Kim']);
  });

  it('stores the account without a TTL, with the password hashed by scrypt N=2^17, r=8, p=1 by default', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    const email = uniqueEmail();

    await callRegister({ email, password: PASSWORD });

    const account = await storedAccount(email);
    const [scheme, log2N, r, p, salt, key] = (account.passwordHash ?? '').split('$');
    expect([scheme, log2N, r, p]).toEqual(['scrypt', '17', '8', '1']);
    expect(Buffer.from(salt!, 'base64')).toHaveLength(16);
    expect(Buffer.from(key!, 'base64')).toHaveLength(64);
    expect(account.passwordHash).not.toContain(PASSWORD);
    expect(await (await getRedis()).ttl(userKey(digest(email)))).toBe(-1);
  });

  it('answers 409 when the email is taken, whatever its case and surrounding spaces', async () => {
    await fastHashing();
    const email = uniqueEmail();
    await callRegister({ email, password: PASSWORD });

    const again = await callRegister({ email: ` ${email.toUpperCase()}`, password: 'another password 123' });

    expect(again.statusCode).toBe(409);
    expect(again.headers['content-type']).toBe('application/problem+json');
    expect(again.json).toMatchObject({ status: 409, type: expect.stringContaining('email-taken') });
  });

  describe('throttling', () => {
    const limited = () => useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', RATE_LIMIT_REGISTER: '2/1h' });

    it('refuses an address with 429 after its allowed "taken" answers, so emails cannot be tried at full speed', async () => {
      await limited();
      const address = randomAddress();
      const taken = uniqueEmail();
      await callRegister({ email: taken, password: PASSWORD });

      const answers = [];
      for (let attempt = 0; attempt < 3; attempt++) answers.push(await callRegister({ email: taken, password: PASSWORD }, address));
      const fresh = await callRegister({ email: uniqueEmail(), password: PASSWORD }, address);

      expect(answers.map((answer) => answer.statusCode)).toEqual([409, 409, 429]);
      expect(answers[1]!.headers['ratelimit']).toBe('"2-per-1h";r=0;t=1800');
      expect(Number(answers[2]!.headers['retry-after'])).toBeGreaterThan(1700);
      expect(fresh.statusCode).toBe(429);
    });

    it('does not count new accounts against the address (a class registering from one school)', async () => {
      await limited();
      const address = randomAddress();

      const answers = [];
      for (let n = 0; n < 5; n++) answers.push((await callRegister({ email: uniqueEmail(), password: PASSWORD }, address)).statusCode);

      expect(answers).toEqual([201, 201, 201, 201, 201]);
    });

    it('refuses a burst of concurrent "taken" probes beyond the limit: no more than the limit are told the email is taken', async () => {
      await limited();
      const address = randomAddress();
      const taken = uniqueEmail();
      await callRegister({ email: taken, password: PASSWORD });

      const answers = await Promise.all(Array.from({ length: 8 }, () => callRegister({ email: taken, password: PASSWORD }, address)));

      const statuses = answers.map((answer) => answer.statusCode).sort();
      expect(statuses).toEqual([409, 409, 429, 429, 429, 429, 429, 429]);
    });

    it('does not count new accounts against the address even when they register at the same moment', async () => {
      await limited();
      const address = randomAddress();
      await Promise.all([0, 1].map(() => callRegister({ email: uniqueEmail(), password: PASSWORD }, address)));

      const afterwards = await callRegister({ email: uniqueEmail(), password: PASSWORD }, address);

      expect(afterwards.statusCode).toBe(201);
      expect(afterwards.headers['ratelimit']).toBe('"2-per-1h";r=2;t=0');
    });

    it('tells registrations beyond the limit in flight at once to come back in a second, never to wait the window', async () => {
      await limited();
      const address = randomAddress();

      const answers = await Promise.all(Array.from({ length: 4 }, () => callRegister({ email: uniqueEmail(), password: PASSWORD }, address)));
      const refused = answers.filter((answer) => answer.statusCode === 429);
      const retried = await Promise.all(refused.map(() => callRegister({ email: uniqueEmail(), password: PASSWORD }, address)));

      expect(answers.filter((answer) => answer.statusCode === 201).length).toBeGreaterThanOrEqual(2);
      expect(refused.map((answer) => answer.headers['retry-after'])).toEqual(refused.map(() => '1'));
      expect(retried.map((answer) => answer.statusCode)).toEqual(refused.map(() => 201));
    });

    it('answers an invalid body with the limit\'s headers, and spends nothing on it', async () => {
      await limited();
      const address = randomAddress();

      const refusals = [];
      for (let n = 0; n < 3; n++) refusals.push(await callRegister({ email: 'not an email', password: PASSWORD }, address));
      const created = await callRegister({ email: uniqueEmail(), password: PASSWORD }, address);

      expect(refusals.map((refusal) => [refusal.statusCode, refusal.headers['ratelimit']])).toEqual(Array(3).fill([400, '"2-per-1h";r=2;t=0']));
      expect(created.headers['ratelimit']).toBe('"2-per-1h";r=2;t=0');
    });
  });

  it('refuses a field it does not know, so that a typo or a smuggled flag never passes unseen', async () => {
    await fastHashing();
    const email = uniqueEmail();

    const response = await callRegister({ email, password: PASSWORD, admin: true });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors).toEqual([{ path: 'admin', message: 'is not a known field' }]);
    expect(await storedAccount(email)).toEqual({});
  });

  it('names at most 20 unknown fields, each cut at 120 characters: the answer never grows with the garbage sent', async () => {
    await fastHashing();
    const unknown = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`field${i}`, 1]));
    const longKey = 'k'.repeat(100_000);

    const many = await callRegister({ email: uniqueEmail(), password: PASSWORD, ...unknown });
    const long = await callRegister({ email: uniqueEmail(), password: PASSWORD, [longKey]: 1 });

    expect(many.statusCode).toBe(400);
    expect(many.json.errors).toHaveLength(20);
    expect(many.json.errors[0]).toEqual({ path: 'field0', message: 'is not a known field' });
    expect(long.statusCode).toBe(400);
    expect(long.json.errors).toEqual([{ path: `${'k'.repeat(119)}…`, message: 'is not a known field' }]);
  });

  it('lets exactly one of two concurrent registrations of one email win', async () => {
    await fastHashing();
    const email = uniqueEmail();

    const answers = await Promise.all([
      callRegister({ email, password: PASSWORD }),
      callRegister({ email: email.toUpperCase(), password: 'another password 123' }),
    ]);

    expect(answers.map((answer) => answer.statusCode).sort()).toEqual([201, 409]);
  });

  it('answers 403 and stores nothing when registration is switched off', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', AUTH_REGISTRATION_OPEN: 'false' });
    const email = uniqueEmail();

    const response = await callRegister({ email, password: PASSWORD });

    expect(response.statusCode).toBe(403);
    expect(response.json).toMatchObject({ status: 403, type: expect.stringContaining('registration-closed') });
    expect(response.headers['ratelimit-policy']).toBe('"10-per-15m";q=10;w=900');
    expect(await storedAccount(email)).toEqual({});
  });

  it('counts a password in the characters a person sees: twelve code points that make six letters are six characters', async () => {
    await fastHashing();
    const email = uniqueEmail();

    const decomposed = await callRegister({ email, password: 'e\u0301'.repeat(6) });
    const jamo = await callRegister({ email, password: '\u1100\u1161\u11a8'.repeat(4) });
    const noPrecomposedForm = await callRegister({ email, password: 'x\u0301'.repeat(6) });
    const oneLetterManyMarks = await callRegister({ email, password: `q${'\u0300'.repeat(11)}` });
    const twoFamilies = await callRegister({ email, password: '👨\u200d👩\u200d👧\u200d👦'.repeat(2) });
    // Compatibility characters that the hash's NFKC expands count as typed: one character, not 18.
    const ligature = await callRegister({ email, password: '\ufdfa' });
    const units = await callRegister({ email, password: '\u3392'.repeat(4) });

    for (const response of [decomposed, jamo, noPrecomposedForm, oneLetterManyMarks, twoFamilies, ligature, units]) {
      expect(response.statusCode).toBe(400);
      expect(response.json.errors).toEqual([{ path: 'password', message: 'must have at least 12 characters' }]);
    }
    expect(await storedAccount(email)).toEqual({});
  });

  it('accepts names in every script, joiners of emoji and Persian included', async () => {
    await fastHashing();
    const names = ['Zoë Åström', 'محمد\u200cرضا', 'अनु', '👩\u200d🔬 Ada', '🏴\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f} Mary'];

    const answers = await Promise.all(names.map((name) => callRegister({ email: uniqueEmail(), password: PASSWORD, name })));

    expect(answers.map((answer) => [answer.statusCode, answer.json.user?.name])).toEqual(names.map((name) => [201, name]));
  });

  it('accepts twelve characters however they are made: accented letters, family emoji', async () => {
    await fastHashing();

    const accented = await callRegister({ email: uniqueEmail(), password: 'x\u0301'.repeat(12) });
    const families = await callRegister({ email: uniqueEmail(), password: '👨\u200d👩\u200d👧\u200d👦'.repeat(12) });

    expect([accented.statusCode, families.statusCode]).toEqual([201, 201]);
  });

  it.each([
    ['a control character', 'Ada\u0000'],
    ['an escape sequence', '\u001b[2JAda'],
    ['a line break', 'Ada\nLovelace'],
    ['a right-to-left override', 'Ada\u202eecalevoL'],
    ['a zero-width space', 'Ada\u200bLovelace'],
    ['a byte-order mark', 'Ada\ufeffLovelace'],
  ])('refuses a name holding %s: names are shown to people', async (_, name) => {
    await fastHashing();
    const email = uniqueEmail();

    const response = await callRegister({ email, password: PASSWORD, name });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors).toEqual([{ path: 'name', message: 'must not hold control characters, line separators or invisible formatting characters' }]);
    expect(await storedAccount(email)).toEqual({});
  });

  describe('refuses with 400 naming the field', () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['an email without @', { email: 'ada.example.org', password: PASSWORD }, 'email'],
      ['an email without a domain', { email: 'ada@', password: PASSWORD }, 'email'],
      ['an email with spaces inside', { email: 'ada lovelace@example.org', password: PASSWORD }, 'email'],
      ['an email longer than 254 characters', { email: `${'a'.repeat(64)}@${'b'.repeat(186)}.org`, password: PASSWORD }, 'email'],
      ['an empty email', { email: '', password: PASSWORD }, 'email'],
      ['a password of 11 characters', { email: 'ada@example.org', password: 'x'.repeat(11) }, 'password'],
      ['a password of 257 characters', { email: 'ada@example.org', password: 'x'.repeat(257) }, 'password'],
      ['a name of 101 characters', { email: 'ada@example.org', password: PASSWORD, name: 'n'.repeat(101) }, 'name'],
      ['a name that is not a string', { email: 'ada@example.org', password: PASSWORD, name: 42 }, 'name'],
      ['an email that is not a string', { email: ['ada@example.org'], password: PASSWORD }, 'email'],
      ['a password that is not a string', { email: 'ada@example.org', password: 123456789012 }, 'password'],
      ['a missing email', { password: PASSWORD }, 'email'],
      ['a missing password', { email: 'ada@example.org' }, 'password'],
    ];
    it.each(cases)('%s', async (_, body, field) => {
      await fastHashing();

      const response = await callRegister(body);

      expect(response.statusCode).toBe(400);
      expect(response.headers['content-type']).toBe('application/problem+json');
      expect(response.json.errors.map((error: { path: string }) => error.path)).toContain(field);
    });
  });

  it('says in words that a missing field is required', async () => {
    await fastHashing();

    const response = await callRegister({ email: 'ada@example.org' });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors).toEqual([{ path: 'password', message: 'is required: a string' }]);
  });

  it('accepts the bounds themselves: a 12- and a 256-character password, a 100-character name', async () => {
    await fastHashing();

    const answers = await Promise.all([
      callRegister({ email: uniqueEmail(), password: 'x'.repeat(12) }),
      callRegister({ email: uniqueEmail(), password: 'y'.repeat(256), name: 'n'.repeat(100) }),
    ]);

    expect(answers.map((answer) => answer.statusCode)).toEqual([201, 201]);
  });

  it('counts a name in characters as people do: 100 emoji are accepted, 101 refused', async () => {
    await fastHashing();

    const hundred = await callRegister({ email: uniqueEmail(), password: PASSWORD, name: '🦊'.repeat(100) });
    const hundredAndOne = await callRegister({ email: uniqueEmail(), password: PASSWORD, name: '🦊'.repeat(101) });

    expect(hundred.statusCode).toBe(201);
    expect(hundred.json.user.name).toBe('🦊'.repeat(100));
    expect(hundredAndOne.statusCode).toBe(400);
    expect(hundredAndOne.json.errors).toEqual([{ path: 'name', message: 'must have at most 100 characters' }]);
  });

  describe('answers a malformed body with a 4xx problem, never a 5xx', () => {
    const shapes: Array<[string, string | undefined, Record<string, string>, number]> = [
      ['no body', undefined, {}, 400],
      ['invalid JSON', '{"email": ', { 'content-type': 'application/json' }, 400],
      ['a JSON array', '[]', { 'content-type': 'application/json' }, 400],
      ['JSON null', 'null', { 'content-type': 'application/json' }, 400],
      ['a JSON string', '"ada@example.org"', { 'content-type': 'application/json' }, 400],
      ['a JSON number', '42', { 'content-type': 'application/json' }, 400],
      ['an empty object', '{}', { 'content-type': 'application/json' }, 400],
      ['a form instead of JSON', 'email=a%40b.org&password=x', { 'content-type': 'application/x-www-form-urlencoded' }, 415],
      ['text without a content type', '{"email":"a@b.org"}', {}, 415],
    ];
    it.each(shapes)('%s', async (_, body, headers, status) => {
      await fastHashing();

      const response = await invoke(register, httpEvent('POST', '/auth/register', { body, headers }));

      expect(response.statusCode).toBe(status);
      expect(response.headers['content-type']).toBe('application/problem+json');
      expect(response.json.status).toBe(status);
    });
  });
});
