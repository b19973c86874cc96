// A container's Redis connection against real servers: created lazily and reused, a fast 503 when
// Redis is absent, silent or restarted, TLS and Cluster, and the URL read from a local stand-in
// for Secrets Manager, password rotation included, the password never logged.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { handler as health } from '../../functions/health.ts';
import { ConfigError } from '../../shared/config.ts';
import { HttpProblem } from '../../shared/problem.ts';
import { currentRedisClient, withRedis, type RedisClient } from '../../shared/redis.ts';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../doubles/secrets-manager.ts';
import { useEnvironment } from '../support/env.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';
import { addMaster, startRedisCluster, startStandaloneRedis, startTlsRedis, type RedisCluster, type RedisServer, type TlsRedis } from '../support/redis.ts';
import { startSilentServer, startTcpProxy, type SilentServer, type TcpProxy } from '../support/tcp-proxy.ts';

const checkHealth = () => invoke(health, httpEvent('GET', '/health'));

/**
 * The tests that time a failure shorten the Redis time-outs (800 ms each by default) to 200 ms,
 * so that their 503, due within 400 ms, sits far below FAST_FAILURE_MS, itself far below what a
 * client left waiting would take (ioredis's own connect time-out is 10 s; a silent socket, never).
 */
const SHORT_REDIS_TIMEOUTS = { REDIS_CONNECT_TIMEOUT_MS: '200', REDIS_COMMAND_TIMEOUT_MS: '200' };
const FAST_FAILURE_MS = 2_000;

/** GET /health, and what the process wrote meanwhile. */
async function checkHealthCapturingLogs(): Promise<{ response: Awaited<ReturnType<typeof checkHealth>>; logs: string }> {
  const output = captureOutput();
  try {
    const response = await checkHealth();
    return { response, logs: output.text() };
  } finally {
    output.restore();
  }
}

/** Clients connected to `server`, other than the admin client asking. */
async function clientCount(admin: Redis): Promise<number> {
  const list = await admin.client('LIST');
  return String(list).trim().split('\n').length - 1;
}

function adminFor(server: RedisServer, password?: string): Redis {
  return new Redis({ port: server.port, host: '127.0.0.1', password, lazyConnect: false });
}

/**
 * Writes 30 keys through the container's client and reads them back: what was written, what was
 * read, and how many of the cluster's nodes hold some (read from each one directly).
 */
async function writeAndReadBack(cluster: RedisCluster, label: string): Promise<{ written: string[]; read: Array<string | null>; nodesHoldingKeys: number }> {
  const written = Array.from({ length: 30 }, (_, i) => `tc:test:${label}:${i}`);
  await withRedis(async (client: RedisClient) => {
    for (const key of written) await client.set(key, key);
  });
  const read = await withRedis((client) => Promise.all(written.map((key) => client.get(key))));
  const tls = cluster.tlsMaterial === undefined ? {} : { tls: { ca: readFileSync(cluster.tlsMaterial.ca) } };
  const sizes = await Promise.all(
    cluster.nodes.map(async (node) => {
      const direct = new Redis({ port: node.port, host: '127.0.0.1', ...tls });
      try {
        return await direct.dbsize();
      } finally {
        direct.disconnect();
      }
    }),
  );
  return { written, read, nodesHoldingKeys: sizes.filter((size) => size > 0).length };
}

describe('the Redis connection of a container', () => {
  const redis = useStandaloneRedis({ lazyConnect: false });

  it('is not created when the handler module is imported', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    // A fresh copy of the handler and of every module it imports, evaluated as a cold start does
    // (the static import above evaluated them before the environment named this Redis).
    vi.resetModules();

    await import('../../functions/health.ts');
    await new Promise((resolve) => setTimeout(resolve, 200)); // a connection made at import would be open by then

    expect(await clientCount(redis.admin)).toBe(0);
  });

  it('is created on the first invocation and reused by the next 100', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });

    const statuses = [];
    for (let i = 0; i < 101; i += 1) statuses.push((await checkHealth()).statusCode);

    expect(new Set(statuses)).toEqual(new Set([200]));
    expect(await clientCount(redis.admin)).toBe(1);
  });

  it('fails with a 503 within its time-outs when nothing listens', async () => {
    await useEnvironment({ REDIS_URL: 'redis://127.0.0.1:1', ...SHORT_REDIS_TIMEOUTS });
    const started = Date.now();

    const response = await checkHealth();

    expect(response.statusCode).toBe(503);
    expect(Date.now() - started).toBeLessThan(FAST_FAILURE_MS);
  });

  describe('against a server that accepts connections and never answers', () => {
    let silent: SilentServer;
    beforeAll(async () => {
      silent = await startSilentServer();
    });
    afterAll(() => silent.close());

    it('fails with a 503 within its time-outs instead of hanging', async () => {
      await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${silent.port}`, ...SHORT_REDIS_TIMEOUTS });
      const started = Date.now();

      const response = await checkHealth();

      expect(response.statusCode).toBe(503);
      expect(Date.now() - started).toBeLessThan(FAST_FAILURE_MS);
    });
  });

  it('refuses a database the server does not have, writing nothing into database 0', async () => {
    await useEnvironment({ REDIS_URL: `${redis.server.url}/99` });

    const [health, write] = await Promise.all([
      checkHealth(),
      withRedis((client) => client.set('tc:written-where', 'nowhere')).catch((error: unknown) => error),
    ]);

    expect(health.statusCode).toBe(503);
    expect(write).toBeInstanceOf(ConfigError);
    expect((write as Error).message).toBe('the Redis URL names database 99, which the server refused (ERR DB index is out of range)');
    expect(await redis.admin.exists('tc:written-where')).toBe(0);
  });

  it('serves from the database the URL names', async () => {
    await useEnvironment({ REDIS_URL: `${redis.server.url}/5` });

    await withRedis((client) => client.set('tc:in-database-5', 'here'));

    const inFive = new Redis({ port: redis.server.port, host: '127.0.0.1', db: 5 });
    expect(await inFive.get('tc:in-database-5')).toBe('here');
    expect(await redis.admin.exists('tc:in-database-5')).toBe(0);
    inFive.disconnect();
  });

  describe('against a server that is not Redis (an HTTP server on the port)', () => {
    let web: Server;
    beforeAll(async () => {
      web = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'));
      await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    });
    afterAll(() => web.close());

    it('answers a command with the 503 of an unavailable Redis, not a 500', async () => {
      await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${(web.address() as AddressInfo).port}` });

      const outcome = await withRedis((client) => client.get('any key')).catch((error: unknown) => error);

      expect(outcome).toBeInstanceOf(HttpProblem);
      expect((outcome as HttpProblem).status).toBe(503);
    });
  });

  it('recovers after a Redis restart without a new container', async () => {
    const restartable = await startStandaloneRedis();
    await useEnvironment({ REDIS_URL: restartable.url });
    expect((await checkHealth()).statusCode).toBe(200);

    await restartable.kill();
    const whileDown = await checkHealth();
    await restartable.restart();
    await new Promise((resolve) => setTimeout(resolve, 300)); // one reconnect delay
    const afterRestart = await checkHealth();

    expect(whileDown.statusCode).toBe(503);
    expect(afterRestart.statusCode).toBe(200);
    await restartable.stop();
  });

  it("logs the connection's later failures without the id of the request that happened to create it", async () => {
    const restartable = await startStandaloneRedis();
    await useEnvironment({ REDIS_URL: restartable.url, LOG_LEVEL: 'warn' });
    const first = await checkHealth();
    const output = captureOutput();

    try {
      await restartable.kill();
      await new Promise((resolve) => setTimeout(resolve, 300)); // a reconnect attempt fails meanwhile
    } finally {
      output.restore();
      await restartable.stop();
    }

    const failure = output
      .text()
      .split('\n')
      .filter((line) => line.includes('redis connection error'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(first.statusCode).toBe(200);
    expect(failure.length).toBeGreaterThan(0);
    expect(failure.map((line) => line['requestId'])).toEqual(failure.map(() => undefined));
    expect(output.text()).not.toContain(first.headers['x-request-id']);
  });

  describe('behind a socket that goes silent', () => {
    let proxy: TcpProxy;
    beforeAll(async () => {
      proxy = await startTcpProxy(redis.server.port);
    });
    afterAll(() => proxy.close());

    it('answers 503 quickly, then the next invocation succeeds on a fresh socket', async () => {
      await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, ...SHORT_REDIS_TIMEOUTS });
      expect((await checkHealth()).statusCode).toBe(200);
      const connectionsBefore = proxy.connections;

      proxy.freezeExisting();
      const started = Date.now();
      const frozen = await checkHealth();
      const elapsed = Date.now() - started;
      await new Promise((resolve) => setTimeout(resolve, 300));
      const next = await checkHealth();

      expect(frozen.statusCode).toBe(503);
      expect(elapsed).toBeLessThan(FAST_FAILURE_MS);
      expect(next.statusCode).toBe(200);
      expect(proxy.connections).toBeGreaterThan(connectionsBefore);
    });
  });
});

describe('a TLS Redis (rediss://)', () => {
  let tls: TlsRedis;
  let plain: RedisServer;
  beforeAll(async () => {
    [tls, plain] = await Promise.all([startTlsRedis(), startStandaloneRedis()]);
  });
  afterAll(async () => {
    await useEnvironment({});
    await Promise.all([tls.stop(), plain.stop()]);
  });

  it('is reached over TLS when the URL says rediss://', async () => {
    await useEnvironment({ REDIS_URL: tls.url, REDIS_TLS_CA_FILE: tls.tlsMaterial.ca });

    const response = await checkHealth();

    expect(response.statusCode).toBe(200);
  });

  it('is refused when its certificate is not trusted', async () => {
    await useEnvironment({ REDIS_URL: tls.url });

    const response = await checkHealth();

    expect(response.statusCode).toBe(503);
  });

  it('is required in prod: a plain redis:// URL of a listening server is refused unless explicitly allowed', async () => {
    await useEnvironment({ STAGE: 'prod', REDIS_URL: plain.url });
    const refused = await checkHealth();
    await useEnvironment({ STAGE: 'prod', REDIS_URL: plain.url, REDIS_ALLOW_PLAINTEXT: 'true' });

    const allowed = await checkHealth();

    expect([refused.statusCode, allowed.statusCode]).toEqual([503, 200]);
  });
});

describe('a Redis Cluster (REDIS_CLUSTER=true)', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await useEnvironment({});
    await cluster.stop();
  });

  it('refuses a URL naming a database other than 0: a cluster has no other', async () => {
    await useEnvironment({ REDIS_URL: `${cluster.url}/2`, REDIS_CLUSTER: 'true' });

    const outcome = await withRedis((client) => client.get('any key')).catch((error: unknown) => error);

    expect(outcome).toBeInstanceOf(ConfigError);
    expect((outcome as Error).message).toBe('the Redis URL names database 2, but a Redis Cluster has only database 0');
  });

  it('refuses a database reached on a cluster node as a single server, writing nothing into database 0', async () => {
    await useEnvironment({ REDIS_URL: `${cluster.url}/2` });

    const outcome = await withRedis((client) => client.set('tc:{x}:written-where', 'nowhere')).catch((error: unknown) => error);

    expect(outcome).toBeInstanceOf(ConfigError);
    expect((outcome as Error).message).toBe('the Redis URL names database 2, which the server refused (ERR SELECT is not allowed in cluster mode)');
    const inspect = new Cluster([{ port: cluster.nodes[0]!.port, host: '127.0.0.1' }]);
    expect(await inspect.exists('tc:{x}:written-where')).toBe(0);
    inspect.disconnect();
  });

  it('serves keys of every slot through one cluster client', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });

    const { written, read, nodesHoldingKeys } = await writeAndReadBack(cluster, 'cluster');

    expect(read).toEqual(written);
    expect(nodesHoldingKeys).toBe(3);
  });

  it('logs why no node would serve, from the last node\'s error (a refused password), not only "Failed to refresh slots cache"', async () => {
    const admins = cluster.nodes.map((node) => adminFor(node));
    await Promise.all(admins.map((admin) => admin.config('SET', 'requirepass', 'the-right-password')));
    await useEnvironment({ REDIS_URL: `redis://:a-wrong-password@127.0.0.1:${cluster.nodes[0]!.port}`, REDIS_CLUSTER: 'true', LOG_LEVEL: 'warn' });
    let checked;
    try {
      checked = await checkHealthCapturingLogs();
    } finally {
      await Promise.all(admins.map((admin) => admin.config('SET', 'requirepass', '')));
      for (const admin of admins) admin.disconnect();
    }

    expect(checked.response.statusCode).toBe(503);
    expect(checked.logs).toContain('"name":"ClusterAllFailedError","message":"Failed to refresh slots cache.","cause":{"name":"ReplyError","message":"WRONGPASS');
  });

  it('answers GET /health with 200', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });

    expect((await checkHealth()).statusCode).toBe(200);
  });

  it('follows a password rotation read from Secrets Manager: reads the secret again once and reconnects', async () => {
    const secrets = await startSecretsManagerDouble();
    const admins = cluster.nodes.map((node) => adminFor(node));
    try {
      await Promise.all(admins.map((admin) => admin.config('SET', 'requirepass', 'first-password-1234')));
      secrets.setSecret('redis/cluster', `redis://:first-password-1234@127.0.0.1:${cluster.nodes[0]!.port}`);
      await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: 'redis/cluster', REDIS_CLUSTER: 'true' });
      expect((await checkHealth()).statusCode).toBe(200);

      await Promise.all(admins.map((admin) => admin.config('SET', 'requirepass', 'second-password-5678')));
      await Promise.all(admins.map((admin) => admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')));
      secrets.setSecret('redis/cluster', `redis://:second-password-5678@127.0.0.1:${cluster.nodes[0]!.port}`);
      const afterRotation = await checkHealth();

      expect(afterRotation.statusCode).toBe(200);
      expect(secrets.reads('redis/cluster')).toBe(2);
    } finally {
      await Promise.all(admins.map((admin) => admin.config('SET', 'requirepass', '')));
      admins.forEach((admin) => admin.disconnect());
      await secrets.close();
    }
  });

  it('connects to a master that joins the cluster as soon as it learns of it, before any command goes there', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });
    const client = (await withRedis(async (connected) => (await connected.ping(), connected))) as Cluster;
    const added = await addMaster(cluster, 12_345);

    await new Promise<void>((resolve) => client.refreshSlotsCache(() => resolve()));
    const statusOfAdded = () => client.nodes('master').find((node) => node.options.port === added.port)?.status;
    for (let waited = 0; waited < 3000 && statusOfAdded() !== 'ready'; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));

    expect(statusOfAdded()).toBe('ready');
  });

  // Last: it stops the whole cluster.
  it('serves again after an outage long enough for the cluster client to give up for good', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });
    expect((await checkHealth()).statusCode).toBe(200);
    await Promise.all(cluster.nodes.map((node) => node.kill()));
    let ended = false;
    for (let waited = 0; waited < 10_000 && !ended; waited += 100) {
      await checkHealth();
      ended = currentRedisClient()?.status === 'end';
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await Promise.all(cluster.nodes.map((node) => node.restart()));

    let status = 0;
    for (let waited = 0; waited < 15_000 && status !== 200; waited += 250) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      status = (await checkHealth()).statusCode;
    }

    expect(ended).toBe(true);
    expect(status).toBe(200);
  }, 40_000);
});

describe('a TLS Redis Cluster (rediss://, REDIS_CLUSTER=true), as Redis Cloud and ElastiCache serve one', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ tls: true });
  });
  afterAll(async () => {
    await useEnvironment({});
    await cluster.stop();
  });

  it('serves keys of every slot, each master reached over TLS', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true', REDIS_TLS_CA_FILE: cluster.tlsMaterial!.ca });

    const { written, read, nodesHoldingKeys } = await writeAndReadBack(cluster, 'tls-cluster');

    expect(read).toEqual(written);
    expect(nodesHoldingKeys).toBe(3);
  });

  it('is refused when its certificate is not trusted', async () => {
    await useEnvironment({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });

    expect((await checkHealth()).statusCode).toBe(503);
  });
});

describe('the Redis URL from Secrets Manager (REDIS_SECRET_ID)', () => {
  const password = randomUUID();
  let secured: RedisServer;
  let secrets: SecretsManagerDouble;

  beforeAll(async () => {
    secured = await startStandaloneRedis({ password });
    secrets = await startSecretsManagerDouble();
  });
  afterEach(() => {
    secrets.failing = false;
  });
  afterAll(async () => {
    await useEnvironment({});
    await secured.stop();
    await secrets.close();
  });

  const urlOf = (server: RedisServer) => `redis://:${password}@127.0.0.1:${server.port}`;

  /**
   * A container connected through `secretId` to a Redis of its own, then the secret pointed at
   * `secured`: that Redis (to retire) and the health answer while it served.
   */
  async function connectThenMoveTheSecret(secretId: string): Promise<{ retired: RedisServer; before: Awaited<ReturnType<typeof checkHealth>> }> {
    const retired = await startStandaloneRedis({ password });
    secrets.setSecret(secretId, urlOf(retired));
    await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: secretId });
    const before = await checkHealth();
    secrets.setSecret(secretId, urlOf(secured));
    return { retired, before };
  }

  it.each([
    ['a URL string', () => urlOf(secured)],
    ['JSON {"url"}', () => JSON.stringify({ url: urlOf(secured) })],
    ['JSON {"host","port","password","tls"}', () => JSON.stringify({ host: '127.0.0.1', port: secured.port, password, tls: false })],
  ])('is read from %s, once per container', async (form, secretText) => {
    const secretId = `redis/${form}`;
    secrets.setSecret(secretId, secretText());
    await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: secretId });

    const first = await checkHealth();
    const second = await checkHealth();

    expect([first.statusCode, second.statusCode]).toEqual([200, 200]);
    expect(secrets.reads(secretId)).toBe(1);
  });

  it('answers 503 when Secrets Manager is down at cold start, and does not keep the failure', async () => {
    const secretId = 'redis/outage';
    secrets.setSecret(secretId, urlOf(secured));
    await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: secretId });

    secrets.failing = true;
    const started = Date.now();
    const duringOutage = await checkHealth();
    const elapsed = Date.now() - started;
    secrets.failing = false;
    const afterOutage = await checkHealth();

    expect(duringOutage.statusCode).toBe(503);
    // Two refused attempts take about 0.1 s (two silent ones 1.6 s at most): the bound only tells
    // the 503 from a request left waiting for Secrets Manager.
    expect(elapsed).toBeLessThan(8_000);
    expect(afterOutage.statusCode).toBe(200);
  });

  it('follows a password rotation: reads the secret again once and reconnects', async () => {
    const rotating = await startStandaloneRedis({ password: 'first-password-1234' });
    const secretId = 'redis/rotating';
    secrets.setSecret(secretId, `redis://:first-password-1234@127.0.0.1:${rotating.port}`);
    await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: secretId });
    expect((await checkHealth()).statusCode).toBe(200);

    const rotatingAdmin = adminFor(rotating, 'first-password-1234');
    await rotatingAdmin.config('SET', 'requirepass', 'second-password-5678');
    await rotatingAdmin.call('CLIENT', 'KILL', 'TYPE', 'normal');
    rotatingAdmin.disconnect();
    secrets.setSecret(secretId, `redis://:second-password-5678@127.0.0.1:${rotating.port}`);
    const afterRotation = await checkHealth();

    expect(afterRotation.statusCode).toBe(200);
    expect(secrets.reads(secretId)).toBe(2);
    await rotating.stop();
  });

  it('never writes the password to a log line or a response', async () => {
    const secretId = 'redis/wrong-password';
    secrets.setSecret(secretId, `redis://:not-the-password-9876@127.0.0.1:${secured.port}`);
    await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: secretId, LOG_LEVEL: 'debug' });

    const { response, logs } = await checkHealthCapturingLogs();

    expect(response.statusCode).toBe(503);
    expect(logs).toContain('redis connection error');
    expect(logs).not.toContain('not-the-password-9876');
    expect(response.body).not.toContain('not-the-password-9876');
  });

  it('follows the secret to another Redis once the one it named can no longer be reached, without a new container', async () => {
    const secretId = 'redis/moving';
    const { retired, before } = await connectThenMoveTheSecret(secretId);

    await retired.stop();
    const whenItStops = await checkHealth();
    const next = await checkHealth();

    expect(before.statusCode).toBe(200);
    expect(whenItStops.statusCode).toBe(503);
    expect(next.statusCode).toBe(200);
    expect(secrets.reads(secretId)).toBe(2);
  });

  it('answers the outage without waiting for a slow new read of the secret, and still follows it once read', async () => {
    const secretId = 'redis/moving-slowly';
    const { retired, before } = await connectThenMoveTheSecret(secretId);

    const retiredClient = currentRedisClient();
    const release = secrets.hold(); // the new read is answered once the 503 is in
    await retired.stop();
    const whenItStops = await checkHealth();
    const readsWhenAnswered = secrets.reads(secretId);
    release(); // within the read's own time-out (500 ms): the request waited 300 ms at most
    // Until the container, having read that the secret names another Redis, drops its client.
    for (let waited = 0; waited < 5_000 && retiredClient?.status !== 'end'; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    const next = await checkHealth();

    expect(before.statusCode).toBe(200);
    expect(whenItStops.statusCode).toBe(503);
    expect(readsWhenAnswered).toBe(1); // the second read was still held
    expect(next.statusCode).toBe(200);
    expect(secrets.reads(secretId)).toBe(2);
  });

  it('does not read the secret again when the Redis it names answers but refuses (out of memory): that Redis was reached', async () => {
    const full = await startStandaloneRedis({ password });
    const fullAdmin = adminFor(full, password);
    await fullAdmin.config('SET', 'maxmemory-policy', 'noeviction');
    await fullAdmin.config('SET', 'maxmemory', '1');
    const secretId = 'redis/full';
    secrets.setSecret(secretId, urlOf(full));
    await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: secretId });

    const refusals = await Promise.all([1, 2].map(() => withRedis((client) => client.set('a-key', 'a value')).then(() => 'written', (error: unknown) => error)));

    expect(refusals.map((refusal) => (refusal as HttpProblem).status)).toEqual([503, 503]);
    expect(secrets.reads(secretId)).toBe(1);
    fullAdmin.disconnect();
    await full.stop();
  });

  it('reads a secret it could not use again at the next invocation, and serves once it is corrected', async () => {
    const secretId = 'redis/malformed';
    secrets.setSecret(secretId, `{"url": "${urlOf(secured)}"`); // JSON cut short
    await useEnvironment({ ...secrets.env, REDIS_SECRET_ID: secretId });

    const whileMalformed = await checkHealth();
    secrets.setSecret(secretId, urlOf(secured));
    const afterCorrection = await checkHealth();

    expect(whileMalformed.statusCode).toBe(503);
    expect(afterCorrection.statusCode).toBe(200);
    expect(secrets.reads(secretId)).toBe(2);
  });
});
