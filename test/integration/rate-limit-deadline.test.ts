// The rate-limit check's 200 ms deadline measures Redis's answer: not a cold container's connection
// to a distant TLS Redis (standalone or cluster), not a reply left unread while the process was
// busy. A Redis that does not answer is still a 503.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CHECKS_PER_RUN, setMaxChecksPerRun } from '../../shared/rate-limit/batch.ts';
import { checkRateLimit } from '../../shared/rate-limit/limiter.ts';
import { HttpProblem } from '../../shared/problem.ts';
import { useEnvironment } from '../support/env.ts';
import { announceClusterPorts, startRedisCluster, startStandaloneRedis, startTlsRedis, type RedisCluster, type RedisServer, type TlsRedis } from '../support/redis.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const policies = [{ name: '100-per-1m', limit: 100, windowMs: 60_000 }];
let identities = 0;
const check = () => checkRateLimit({ bucket: 'deadline', identity: `someone-${identities++}`, policies });

/** Keeps the thread busy, as a password hash on every core does to the event loop. */
function busyFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

describe('the rate-limit check deadline', () => {
  let redis: RedisServer;
  let tls: TlsRedis;
  let distant: TcpProxy;
  let frozen: TcpProxy;
  beforeAll(async () => {
    [redis, tls] = await Promise.all([startStandaloneRedis(), startTlsRedis()]);
    // Every answer of the TLS Redis, handshake included, arrives 120 ms late: a Redis a long way off.
    [distant, frozen] = await Promise.all([startTcpProxy(tls.port, { replyDelayMs: 120 }), startTcpProxy(redis.port)]);
  });
  afterAll(async () => {
    await useEnvironment({});
    await Promise.all([distant.close(), frozen.close()]);
    await Promise.all([redis.stop(), tls.stop()]);
  });

  it('does not count the connection of a cold container: a distant TLS Redis admits the first check', async () => {
    const tlsEnvironment = { REDIS_TLS_CA_FILE: tls.tlsMaterial.ca };
    await useEnvironment({ ...tlsEnvironment, REDIS_URL: tls.url });
    await check(); // the script is known to the server, as it is to any Redis the functions have used
    await useEnvironment({ ...tlsEnvironment, REDIS_URL: `rediss://127.0.0.1:${distant.port}` });

    const decision = await check();

    expect(decision.allowed).toBe(true);
  });

  it('lets any number of checks wait for a connection without one listener each', async () => {
    await useEnvironment({ REDIS_URL: redis.url });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    setMaxChecksPerRun(1); // each check its own script run, with its own deadline

    const decisions = await Promise.all(Array.from({ length: 50 }, (_, i) => checkRateLimit({ bucket: 'deadline', identity: `crowd-${i}`, policies })));
    await new Promise((resolve) => setImmediate(resolve));

    setMaxChecksPerRun(MAX_CHECKS_PER_RUN);
    process.off('warning', onWarning);
    expect(decisions.every((decision) => decision.allowed)).toBe(true);
    expect(warnings.map((warning) => warning.name)).not.toContain('MaxListenersExceededWarning');
  });

  it('takes a reply that arrived while the process was busy past the deadline', async () => {
    await useEnvironment({ REDIS_URL: redis.url });
    await check(); // warm: connected, script loaded
    const pending = check();
    await new Promise((resolve) => setImmediate(resolve)); // the check's script is on its way

    busyFor(400);
    const decision = await pending;

    expect(decision.allowed).toBe(true);
  });

  it('still gives up on a Redis that does not answer: 503', async () => {
    await useEnvironment({ REDIS_URL: `redis://127.0.0.1:${frozen.port}` });
    await check();
    frozen.freeze();

    const outcome = await check().catch((error: unknown) => error);

    frozen.thaw();
    expect(outcome).toBeInstanceOf(HttpProblem);
    expect((outcome as HttpProblem).status).toBe(503);
  });
});

describe('the rate-limit check deadline on a TLS Redis Cluster', () => {
  let cluster: RedisCluster;
  let distant: TcpProxy[];
  beforeAll(async () => {
    cluster = await startRedisCluster({ tls: true });
    // Every answer of every master, TLS handshakes included, arrives 120 ms late.
    distant = await Promise.all(cluster.nodes.map((node) => startTcpProxy(node.port, { replyDelayMs: 120 })));
    await announceClusterPorts(cluster, distant.map((proxy) => proxy.port));
  });
  afterAll(async () => {
    await useEnvironment({});
    await Promise.all(distant.map((proxy) => proxy.close()));
    await cluster.stop();
  });

  it('does not count the connections a cold client opens to the masters: a distant cluster admits the first check', async () => {
    await useEnvironment({ REDIS_URL: `rediss://127.0.0.1:${distant[0]!.port}`, REDIS_CLUSTER: 'true', REDIS_TLS_CA_FILE: cluster.tlsMaterial!.ca });

    const decision = await check();

    expect(decision.allowed).toBe(true);
  });
});
