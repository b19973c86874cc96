// The auth flows on a 3-master Redis Cluster: every script touches keys of one slot (the
// account's hash tag), and the session is still found from the opaque token alone.

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authShard, digest, rateLimitKeys, sessionKey, userKey, userSessionsKey } from '../../shared/keys.ts';
import { checkRateLimit } from '../../shared/rate-limit/limiter.ts';
import { useEnvironment } from '../support/env.ts';
import { nodeServing, startRedisCluster, whileFrozen, type RedisCluster } from '../support/redis.ts';
import { callLogin, callLogout, callRegister, callSession, randomAddress, signUpAndLogIn, uniqueEmail } from '../support/session.ts';

describe('auth on a Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await useEnvironment({});
    await cluster.stop();
  });

  const environment = (vars: Record<string, string> = {}) =>
    useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true', PASSWORD_SCRYPT_LOG2N: '14', ...vars });

  async function slotOf(key: string): Promise<number> {
    const node = new Redis(cluster.nodes[0]!.port, '127.0.0.1');
    try {
      return (await node.cluster('KEYSLOT', key)) as number;
    } finally {
      node.disconnect();
    }
  }

  it('registers, refuses a duplicate, logs in, reads the session and logs out', async () => {
    await environment();
    const email = uniqueEmail();

    const registered = await callRegister({ email, password: 'correct horse battery' });
    const duplicate = await callRegister({ email: email.toUpperCase(), password: 'correct horse battery' });
    const login = await callLogin({ email, password: 'correct horse battery' });
    const session = await callSession(login.json.token);
    const logout = await callLogout(login.json.token);
    const afterwards = await callSession(login.json.token);

    expect([registered, duplicate, login, session, logout, afterwards].map((answer) => answer.statusCode)).toEqual([
      201, 409, 200, 200, 204, 401,
    ]);
  });

  it('keeps the account, its sessions and its session index in one slot', async () => {
    await environment();
    const { token, user } = await signUpAndLogIn();
    const tokenDigest = digest(token);

    const slots = await Promise.all([
      slotOf(userKey(digest(user.email))),
      slotOf(sessionKey(tokenDigest)),
      slotOf(userSessionsKey(authShard(tokenDigest), user.id)),
    ]);

    expect(new Set(slots).size).toBe(1);
  });

  it('ends every session of the user with ?all=true', async () => {
    await environment();
    const { token, user, password } = await signUpAndLogIn();
    const others: string[] = [];
    for (let i = 0; i < 3; i++) {
      const login = await callLogin({ email: user.email, password });
      expect(login.statusCode).toBe(200);
      others.push(login.json.token);
    }
    const stranger = await signUpAndLogIn();

    const logout = await callLogout(token, { all: 'true' });

    expect(logout.statusCode).toBe(204);
    const answers = await Promise.all([token, ...others].map(async (each) => (await callSession(each)).statusCode));
    expect(answers).toEqual([401, 401, 401, 401]);
    expect((await callSession(stranger.token)).statusCode).toBe(200);
  });

  it('throttles an account after its allowed failures', async () => {
    await environment({ RATE_LIMIT_LOGIN_ACCOUNT: '2/1h' });
    const { user, password } = await signUpAndLogIn();
    await callLogin({ email: user.email, password: 'guess number one' }, randomAddress());
    await callLogin({ email: user.email, password: 'guess number two' }, randomAddress());

    const refused = await callLogin({ email: user.email, password }, randomAddress());

    expect(refused.statusCode).toBe(429);
  });

  it('gives the address its unit back when the account limit, on another node, cannot be checked', async () => {
    await environment({ RATE_LIMIT_LOGIN: '2/1h', RATE_LIMIT_LOGIN_ACCOUNT: '5/1h' });
    const address = randomAddress();
    const addressNode = await nodeServing(cluster, rateLimitKeys(address, 'login:address', ['2-per-1h'])[0]!);
    let email = uniqueEmail();
    let accountNode = await nodeServing(cluster, rateLimitKeys(digest(email), 'login:account', ['5-per-1h'])[0]!);
    while (accountNode === addressNode) {
      email = uniqueEmail();
      accountNode = await nodeServing(cluster, rateLimitKeys(digest(email), 'login:account', ['5-per-1h'])[0]!);
    }

    // A 400 reads the address's state without spending; it also has the client learn the cluster's
    // layout, which a frozen seed node would otherwise stall.
    const before = await callLogin({ email }, address);

    // Frozen for one attempt, well within the cluster's node time-out: the account check times out.
    const attempt = await whileFrozen(accountNode, () => callLogin({ email, password: 'a guess at the password' }, address));
    const afterwards = await callLogin({ email }, address);

    expect(attempt.statusCode).toBe(503);
    expect([before.headers['ratelimit'], afterwards.headers['ratelimit']]).toEqual(Array(2).fill('"address-2-per-1h";r=2;t=0'));
  });

  it('gives both units back when the account itself cannot be read: a 503 is not a failed login', async () => {
    await environment({ RATE_LIMIT_LOGIN: '2/1h', RATE_LIMIT_LOGIN_ACCOUNT: '5/1h' });
    const address = randomAddress();
    const limitNodes = async (email: string) =>
      Promise.all([
        nodeServing(cluster, rateLimitKeys(address, 'login:address', ['2-per-1h'])[0]!),
        nodeServing(cluster, rateLimitKeys(digest(email), 'login:account', ['5-per-1h'])[0]!),
      ]);
    let email = uniqueEmail();
    while ((await limitNodes(email)).includes(await nodeServing(cluster, userKey(digest(email))))) email = uniqueEmail();
    const userNode = await nodeServing(cluster, userKey(digest(email)));
    const before = await callLogin({ email }, address); // learns the cluster's layout (see above)

    const attempt = await whileFrozen(userNode, () => callLogin({ email, password: 'a guess at the password' }, address));
    const afterwards = await callLogin({ email }, address);
    const account = await checkRateLimit({ bucket: 'login:account', identity: digest(email), policies: [{ name: '5-per-1h', limit: 5, windowMs: 3_600_000 }], peek: true });

    expect(attempt.statusCode).toBe(503);
    expect([before.headers['ratelimit'], afterwards.headers['ratelimit']]).toEqual(Array(2).fill('"address-2-per-1h";r=2;t=0'));
    expect(account.states[0]!.remaining).toBe(5);
  });

  it('gives the registration unit back when the email cannot be looked up: a 503 is not "taken"', async () => {
    await environment({ RATE_LIMIT_REGISTER: '2/1h' });
    const address = randomAddress();
    const limitNode = await nodeServing(cluster, rateLimitKeys(address, 'register:taken', ['2-per-1h'])[0]!);
    let email = uniqueEmail();
    while ((await nodeServing(cluster, userKey(digest(email)))) === limitNode) email = uniqueEmail();
    const userNode = await nodeServing(cluster, userKey(digest(email)));
    const before = await callRegister({ email }, address); // learns the cluster's layout (see above)

    const attempt = await whileFrozen(userNode, () => callRegister({ email, password: 'correct horse battery' }, address));
    const afterwards = await callRegister({ email }, address);

    expect(attempt.statusCode).toBe(503);
    expect([before.headers['ratelimit'], afterwards.headers['ratelimit']]).toEqual(Array(2).fill('"2-per-1h";r=2;t=0'));
  });

  it('serves many sessions at once, their keys spread over the nodes', async () => {
    await environment();
    const users = [];
    for (let i = 0; i < 12; i++) users.push(await signUpAndLogIn());

    const sessions = await Promise.all(users.map(({ token }) => callSession(token)));
    const logouts = await Promise.all(users.map(({ token }, i) => callLogout(token, i % 2 === 0 ? { all: 'true' } : {})));
    const afterwards = await Promise.all(users.map(({ token }) => callSession(token)));

    expect(sessions.map((answer) => answer.statusCode)).toEqual(users.map(() => 200));
    expect(logouts.map((answer) => answer.statusCode)).toEqual(users.map(() => 204));
    expect(afterwards.map((answer) => answer.statusCode)).toEqual(users.map(() => 401));
  });
});
