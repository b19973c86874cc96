// Sessions against a real redis-server: GET /auth/session, POST /auth/logout (one session or all)
// and the bearer middleware; sliding expiry under an absolute cap, idle expiry, 401 faults, and a
// session read and renewed in one round trip.

import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { handler as sessionRoute } from '../../functions/auth-session.ts';
import { authShard, digest, sessionKey, userSessionsKey } from '../../shared/keys.ts';
import { getRedis } from '../../shared/redis.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { callLogin, callLogout, callSession, signUpAndLogIn } from '../support/session.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('sessions: GET /auth/session, POST /auth/logout and the bearer middleware', () => {
  const redis = useStandaloneRedis();

  const environment = (vars: Record<string, string> = {}) =>
    useEnvironment({ REDIS_URL: redis.server.url, PASSWORD_SCRYPT_LOG2N: '14', ...vars });

  it('answers GET /auth/session with the user and the renewed expiry', async () => {
    await environment({ SESSION_IDLE_SECONDS: '600' });
    const { token, user } = await signUpAndLogIn({ name: 'Ada' });
    const before = Date.now();

    const response = await callSession(token);

    expect(response.statusCode).toBe(200);
    expect(response.json).toEqual({ user: { id: user.id, email: user.email, name: 'Ada' }, expiresAt: expect.any(String) });
    expect(Date.parse(response.json.expiresAt)).toBeGreaterThanOrEqual(before + 600_000 - 2000);
  });

  it('answers HEAD /auth/session as GET, without the body: 200 for a live token, 401 with its challenge for another', async () => {
    await environment();
    const { token } = await signUpAndLogIn();
    const head = (authorization: string) => invoke(sessionRoute, httpEvent('HEAD', '/auth/session', { headers: { authorization } }));

    const [live, dead] = [await head(`Bearer ${token}`), await head('Bearer not-a-token')];

    expect([live.statusCode, live.body]).toEqual([200, '']);
    expect([dead.statusCode, dead.body, dead.headers['www-authenticate']]).toEqual([401, '', 'Bearer']);
  });

  it('keeps the session key and the index under the TTL of their expiry', async () => {
    await environment({ SESSION_IDLE_SECONDS: '600', SESSION_MAX_SECONDS: '3600' });
    const { token, user } = await signUpAndLogIn();
    const tokenDigest = digest(token);
    const client = await getRedis();

    const sessionTtl = await client.ttl(sessionKey(tokenDigest));
    const indexTtl = await client.ttl(userSessionsKey(authShard(tokenDigest), user.id));

    expect(sessionTtl).toBeGreaterThan(590);
    expect(sessionTtl).toBeLessThanOrEqual(600);
    expect(indexTtl).toBeGreaterThan(3590);
    expect(indexTtl).toBeLessThanOrEqual(3600);
  });

  it('slides the expiry at each use, but never past the absolute cap', async () => {
    await environment({ SESSION_IDLE_SECONDS: '2', SESSION_MAX_SECONDS: '3' });
    const { token } = await signUpAndLogIn();

    await sleep(1200);
    const renewed = await callSession(token); // would be dead at 2 s without this renewal
    await sleep(1200);
    const stillAlive = await callSession(token); // 2.4 s after login: alive only because it slid
    await sleep(900);
    const capped = await callSession(token); // 3.3 s after login: past the 3 s cap, however used

    expect(renewed.statusCode).toBe(200);
    expect(stillAlive.statusCode).toBe(200);
    expect(Date.parse(stillAlive.json.expiresAt)).toBe(Date.parse(renewed.json.expiresAt)); // both at the cap
    expect(capped.statusCode).toBe(401);
    expect(capped.headers['www-authenticate']).toBe('Bearer');
  });

  it('expires a session left unused for longer than the idle time', async () => {
    await environment({ SESSION_IDLE_SECONDS: '1', SESSION_MAX_SECONDS: '60' });
    const { token } = await signUpAndLogIn();

    await sleep(1300);
    const response = await callSession(token);

    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer');
  });

  it('ends the session on POST /auth/logout (204, no body) and rejects its token afterwards', async () => {
    await environment();
    const { token } = await signUpAndLogIn();

    const logout = await callLogout(token);
    const afterwards = await callSession(token);
    const logoutAgain = await callLogout(token);

    expect(logout.statusCode).toBe(204);
    expect(logout.body).toBe('');
    expect(afterwards.statusCode).toBe(401);
    expect(afterwards.headers['www-authenticate']).toBe('Bearer');
    expect(logoutAgain.statusCode).toBe(401);
    expect(await (await getRedis()).exists(sessionKey(digest(token)))).toBe(0);
  });

  it('ends only the session of the token: the same user’s other sessions live on', async () => {
    await environment();
    const { token, user, password } = await signUpAndLogIn();
    const other = await callLogin({ email: user.email, password });

    await callLogout(token);

    expect((await callSession(other.json.token)).statusCode).toBe(200);
  });

  it('ends every session of the user with ?all=true, and no one else’s', async () => {
    await environment();
    const { token, user, password } = await signUpAndLogIn();
    const second = (await callLogin({ email: user.email, password })).json.token as string;
    const third = (await callLogin({ email: user.email, password })).json.token as string;
    const stranger = await signUpAndLogIn();

    const logout = await callLogout(second, { all: 'true' });

    expect(logout.statusCode).toBe(204);
    const answers = await Promise.all([token, second, third].map(async (each) => (await callSession(each)).statusCode));
    expect(answers).toEqual([401, 401, 401]);
    expect((await callSession(stranger.token)).statusCode).toBe(200);
    expect(await (await getRedis()).exists(userSessionsKey(authShard(digest(token)), user.id))).toBe(0);
  });

  it('lets the user log in again after logging out everywhere', async () => {
    await environment();
    const { token, user, password } = await signUpAndLogIn();
    await callLogout(token, { all: 'true' });

    const again = await callLogin({ email: user.email, password });

    expect(again.statusCode).toBe(200);
    expect((await callSession(again.json.token)).statusCode).toBe(200);
  });

  it.each(['TRUE', '1'])('ends every session with ?all=%s too', async (value) => {
    await environment();
    const { token, user, password } = await signUpAndLogIn();
    const second = (await callLogin({ email: user.email, password })).json.token as string;

    const logout = await callLogout(second, { all: value });

    expect(logout.statusCode).toBe(204);
    expect((await callSession(token)).statusCode).toBe(401);
  });

  it.each(['everything', ''])('refuses an `all` query value other than true or false (%j) with 400, ending nothing', async (value) => {
    await environment();
    const { token } = await signUpAndLogIn();

    const response = await callLogout(token, { all: value });

    expect(response.statusCode).toBe(400);
    expect((await callSession(token)).statusCode).toBe(200);
  });

  it('says a repeated all must be given once (API Gateway joins the values), ending nothing', async () => {
    await environment();
    const { token } = await signUpAndLogIn();

    const response = await callLogout(token, { all: 'true,true' });

    expect(response.statusCode).toBe(400);
    expect(response.json.errors).toEqual([{ path: 'all', message: 'must be given once: true or false' }]);
    expect((await callSession(token)).statusCode).toBe(200);
  });

  it.each<Record<string, string>>([{ All: 'true' }, { logoutAll: '1' }, { all: 'true', everywhere: 'yes' }])(
    'refuses a query parameter it does not know (%o) with 400 naming it, ending nothing',
    async (query) => {
      await environment();
      const { token, user, password } = await signUpAndLogIn();
      const other = (await callLogin({ email: user.email, password })).json.token as string;

      const response = await callLogout(token, query);

      expect(response.statusCode).toBe(400);
      expect(response.json.errors).toEqual([{ path: Object.keys(query).find((name) => name !== 'all'), message: expect.stringContaining('not a known parameter') }]);
      expect([(await callSession(token)).statusCode, (await callSession(other)).statusCode]).toEqual([200, 200]);
    },
  );

  describe('refuses with 401 and WWW-Authenticate: Bearer, the problem saying which fault', () => {
    const wellFormedButUnknown = randomBytes(32).toString('base64url');
    const cases: Array<[string, Record<string, string>, 'unauthorized' | 'invalid-token']> = [
      ['no Authorization header', {}, 'unauthorized'],
      ['an empty Authorization header', { authorization: '' }, 'unauthorized'],
      ['another scheme', { authorization: 'Basic YWRhOnNlY3JldA==' }, 'unauthorized'],
      ['the scheme without a token', { authorization: 'Bearer' }, 'invalid-token'],
      ['a token with characters a token cannot have', { authorization: 'Bearer abc$%^def' }, 'invalid-token'],
      ['a token of the wrong length', { authorization: 'Bearer abcdef' }, 'invalid-token'],
      ['two tokens', { authorization: `Bearer ${wellFormedButUnknown} ${wellFormedButUnknown}` }, 'invalid-token'],
      ['a well-formed token no session has', { authorization: `Bearer ${wellFormedButUnknown}` }, 'invalid-token'],
    ];
    it.each(cases)('%s', async (_, headers, fault) => {
      await environment();

      const response = await invoke(sessionRoute, httpEvent('GET', '/auth/session', { headers }));

      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
      expect(response.headers['content-type']).toBe('application/problem+json');
      expect(response.json).toMatchObject({ status: 401, type: expect.stringMatching(new RegExp(`/${fault}$`)) });
    });
  });

  it('accepts the scheme name in any case', async () => {
    await environment();
    const { token } = await signUpAndLogIn();

    const response = await invoke(sessionRoute, httpEvent('GET', '/auth/session', { headers: { Authorization: `bearer ${token}` } }));

    expect(response.statusCode).toBe(200);
  });

  it('reads and renews a valid session in one Redis round trip (once the script is cached)', async () => {
    await environment();
    const { token } = await signUpAndLogIn();
    await callSession(token); // the first use on a server loads the script (NOSCRIPT, then EVAL)
    const commands = await watchCommands(redis.server.url);

    const response = await callSession(token);
    await sleep(100); // MONITOR lines arrive asynchronously
    commands.stop();

    expect(response.statusCode).toBe(200);
    expect(commands.sent.map((args) => args[0]!.toLowerCase())).toEqual(['evalsha']);
  });
});

/** The commands clients send to Redis (not those a script runs), as seen by MONITOR. */
async function watchCommands(url: string): Promise<{ sent: string[][]; stop: () => void }> {
  const client = new Redis(url);
  const monitor = await client.monitor();
  const sent: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua') sent.push(args);
  });
  return {
    sent,
    stop: () => {
      monitor.disconnect();
      client.disconnect();
    },
  };
}
