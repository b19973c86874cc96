// The warm cached chat request, ours beside the peer's (bench/peer/chat.ts), both bundled with the
// settings of serverless.yml and run in processes of their own (bench/warm-path-worker.ts):
//   4. latency of one request at a time (p50, p99) and the Redis round trips of each request,
//      counted by a proxy that sees every byte between the client and Redis; then the same latency
//      with Redis a network away (a proxy holding each answer for NETWORK_DELAY_MS);
//   5. throughput with 50 invocations in flight in one process.
// The answer is in the cache (each side's own key format) before anything is measured; every
// measured response is checked to be a 200 from the cache.

import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { startRedisServer, type RedisServer } from '../infra/local/redis-server.ts';
import { startAnthropicDouble } from '../test/doubles/anthropic.ts';
import { startSecretsManagerDouble } from '../test/doubles/secrets-manager.ts';
import { httpEvent } from '../test/support/lambda.ts';
import { DELAY_PER_ROUND_TRIP_MS, startRoundTripProxy } from '../test/support/round-trip-proxy.ts';
import { startTcpProxy } from '../test/support/tcp-proxy.ts';
import { bundle, root } from './bundle.ts';
import { machineLine, median, percentile, writeSection } from './report.ts';

// `npx node bench/warm-path.bench.ts [runs] [seconds per run]`
const RUNS = Number(process.argv[2] ?? 5);
const SECONDS = Number(process.argv[3] ?? 1.5);
const CONCURRENCY = 50;
const COUNTED_REQUESTS = 100;
/**
 * Added to every Redis round trip for the "over a network" latency: about what a function in a
 * VPC sees to ElastiCache in another availability zone of the region (same zone: a few tenths).
 */
const NETWORK_DELAY_MS = 1;
const OUT = 'warm-path';
const WORKER = `${root}bench/warm-path-worker.ts`;
// A model the Anthropic SDK does not warn about (it prints a deprecation notice for some).
const QUESTION = { model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'What is the difference between a list and a tuple in Python?' }] };

interface Side {
  name: string;
  file: string;
  event: APIGatewayProxyEventV2;
  latencies: number[][];
  /** CPU time of the function's process per request, µs, one figure a run. */
  cpuUs: number[];
  throughput: number[];
  /** Per request: round trips sent, and those its answer waited for. */
  roundTrips: { sent: number; waited: number };
  /** Request durations with NETWORK_DELAY_MS added to each round trip, one list a run. */
  overNetwork: number[][];
}

function startWorker(side: Side, mode: string, env: NodeJS.ProcessEnv): ChildProcess {
  return fork(WORKER, [], {
    // stdout ignored: ours writes its request log line (LOG_LEVEL=info, as deployed) there.
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: {
      ...env,
      BENCH_FILE: side.file,
      BENCH_EVENT: JSON.stringify(side.event),
      BENCH_MODE: mode,
      BENCH_SECONDS: String(SECONDS),
      BENCH_CONCURRENCY: String(CONCURRENCY),
      BENCH_REQUESTS: String(COUNTED_REQUESTS),
    },
  });
}

/** Runs a worker to its end and returns its one report. */
async function report<T>(side: Side, mode: string, env: NodeJS.ProcessEnv): Promise<T> {
  const worker = startWorker(side, mode, env);
  const [message] = (await once(worker, 'message')) as [T];
  const [code] = (await once(worker, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${side.name} ${mode} exited with ${code}`);
  return message;
}

/** Round trips per request: the proxy's count between the worker's 'warm' and its 'done'. */
/**
 * Round trips per request: all those the proxy saw between the worker's 'warm' and its 'done',
 * and those the answer waited for, read from the requests' durations (the proxy adds
 * DELAY_PER_ROUND_TRIP_MS to each round trip, far more than the rest of a request takes).
 */
async function countRoundTrips(side: Side, env: NodeJS.ProcessEnv, proxy: { reset(): void; roundTrips(): number }): Promise<Side['roundTrips']> {
  const worker = startWorker(side, 'round-trips', env);
  const exited = once(worker, 'exit');
  await once(worker, 'message'); // warm
  proxy.reset();
  worker.send('go');
  const [done] = (await once(worker, 'message')) as [{ requests: number; durations: number[] }];
  const count = proxy.roundTrips();
  await exited;
  return { sent: count / done.requests, waited: Math.floor(median(done.durations) / DELAY_PER_ROUND_TRIP_MS) };
}

/** A signed-in user of our own, made through our register and login code (source, in this process). */
async function ourToken(redis: RedisServer): Promise<string> {
  const { useEnvironment } = await import('../test/support/env.ts');
  const { signUpAndLogIn } = await import('../test/support/session.ts');
  await useEnvironment({ REDIS_URL: redis.url, PASSWORD_SCRYPT_LOG2N: '14', LOG_LEVEL: 'error' });
  const { token } = await signUpAndLogIn();
  await useEnvironment({});
  return token;
}

/** The peer's session, in its key format. */
async function peerToken(redis: RedisServer): Promise<string> {
  const { Redis } = await import('ioredis');
  const client = new Redis(redis.url);
  const token = randomBytes(32).toString('base64url');
  await client.set(`peer:session:${token}`, JSON.stringify({ id: randomUUID() }), 'EX', 86_400);
  client.disconnect();
  return token;
}

const fixed = (value: number, digits = 2) => value.toFixed(digits);
const range = (values: number[], digits = 2) => `${fixed(Math.min(...values), digits)}–${fixed(Math.max(...values), digits)}`;

function latencyRow(side: Side): string {
  const p50 = side.latencies.map((run) => percentile(run, 50));
  const p99 = side.latencies.map((run) => percentile(run, 99));
  const samples = side.latencies.reduce((sum, run) => sum + run.length, 0);
  return `| ${side.name} | ${fixed(median(p50), 3)} ms (${range(p50, 3)}) | ${fixed(median(p99), 3)} ms (${range(p99, 3)}) | ${Math.round(median(side.cpuUs))} µs (${range(side.cpuUs, 0)}) | ${samples} | ${fixed(side.roundTrips.sent)} | ${side.roundTrips.waited} |`;
}

function throughputRow(side: Side): string {
  return `| ${side.name} | ${Math.round(median(side.throughput))} (${range(side.throughput, 0)}) |`;
}

async function main(): Promise<void> {
  const baseEnv = { ...process.env };
  delete baseEnv['REDIS_URL'];
  const redis = await startRedisServer();
  const proxy = await startRoundTripProxy(redis.port);
  const network = await startTcpProxy(redis.port, { replyDelayMs: NETWORK_DELAY_MS });
  const [secrets, anthropic] = await Promise.all([startSecretsManagerDouble(), startAnthropicDouble()]);
  secrets.setSecret('redis', redis.url);
  secrets.setSecret('redis-counted', `redis://127.0.0.1:${proxy.port}`);
  secrets.setSecret('redis-over-network', `redis://127.0.0.1:${network.port}`);
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    ...secrets.env,
    ...anthropic.env,
    // As deployed: the URL from the secret, no NODE_OPTIONS, a log line per request.
    NODE_OPTIONS: undefined,
    REDIS_SECRET_ID: 'redis',
    LOG_LEVEL: 'info',
    // High limits of the production shape (a burst and a daily policy): every request is admitted.
    RATE_LIMIT_CHAT: '100000000/1m,100000000/1d',
  };
  const counted = { ...env, REDIS_SECRET_ID: 'redis-counted' };
  const overNetwork = { ...env, REDIS_SECRET_ID: 'redis-over-network' };

  rmSync(`${root}bench/.out/${OUT}`, { recursive: true, force: true });
  const [ours, peer] = [
    { name: 'ours', file: await bundle('functions/chat.ts', 'chat', OUT), token: await ourToken(redis) },
    { name: 'peer', file: await bundle('bench/peer/chat.ts', 'peer-chat', OUT, 'peer'), token: await peerToken(redis) },
  ].map(({ name, file, token }): Side => ({
    name,
    file,
    event: httpEvent('POST', '/chat', { body: QUESTION, headers: { authorization: `Bearer ${token}` } }),
    latencies: [],
    cpuUs: [],
    throughput: [],
    roundTrips: { sent: 0, waited: 0 },
    overNetwork: [],
  }));
  const sides = [ours!, peer!];

  // Fill each side's cache: one request, a miss answered by the Anthropic double.
  for (const side of sides) await report(side, 'seed', env);
  const callsAfterSeeding = anthropic.calls;

  for (const side of sides) side.roundTrips = await countRoundTrips(side, counted, proxy);
  for (let run = 0; run < RUNS; run += 1) {
    // Alternating order, so that neither side always runs just after the other.
    const order = run % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const { durations, cpuUs } = await report<{ durations: number[]; cpuUs: number }>(side, 'latency', env);
      side.latencies.push(durations);
      side.cpuUs.push(cpuUs);
    }
    for (const side of order) {
      const { throughput } = await report<{ throughput: { requests: number; seconds: number } }>(side, 'throughput', env);
      side.throughput.push(throughput.requests / throughput.seconds);
    }
    for (const side of order) {
      const { durations } = await report<{ durations: number[] }>(side, 'latency', overNetwork);
      side.overNetwork.push(durations);
    }
  }
  if (anthropic.calls !== callsAfterSeeding) throw new Error('a measured request reached the model instead of the cache');

  const p50Ratio = median(ours!.latencies.map((run) => percentile(run, 50))) / median(peer!.latencies.map((run) => percentile(run, 50)));
  const cpuRatio = median(ours!.cpuUs) / median(peer!.cpuUs);
  const throughputRatio = median(ours!.throughput) / median(peer!.throughput);
  const networkP50 = (side: Side) => median(side.overNetwork.map((run) => percentile(run, 50)));
  const networkRow = (side: Side) => {
    const p50 = side.overNetwork.map((run) => percentile(run, 50));
    const p99 = side.overNetwork.map((run) => percentile(run, 99));
    return `| ${side.name} | ${fixed(median(p50), 3)} ms (${range(p50, 3)}) | ${fixed(median(p99), 3)} ms (${range(p99, 3)}) | ${side.roundTrips.waited} |`;
  };
  const markdown = `## Warm cached chat request

${machineLine()}. The chat handler bundled as deployed (serverless.yml's esbuild settings,
no \`NODE_OPTIONS\`, \`LOG_LEVEL=info\`: ours writes its request log line), invoked in
process with the same question, whose answer is in the cache; the peer (bench/peer/chat.ts:
middy + @middy/secrets-manager, full zod, rate-limiter-flexible, ioredis without auto-pipelining)
the same way. A process of its own per run and side, ${RUNS} runs of ${SECONDS} s each, ours and the
peer alternating, after a warm-up; local redis-server. Medians over the runs (min–max).

### Latency and Redis round trips, one request at a time

CPU per request: user + system time of the function's process over the run, divided by its
requests (Redis's own work not included). Round trips are counted by a TCP proxy between the client
and Redis (what is written at once is one round trip; a command that waits for another's reply is
another), over ${COUNTED_REQUESTS} warm requests with a pause after each, as between a Lambda container's
invocations. *Sent*: every round trip of a request. *Waited for*: those its answer waited for, read from
its duration through the proxy, which delays each round trip by ${DELAY_PER_ROUND_TRIP_MS} ms. Goal: the answer waits for at most 2 (the
session, then the rate limit with the cache read): ${ours!.roundTrips.waited <= 2 ? 'met' : '**not met**'}. Ours also sends the usage
counters' write once the answer is known, before the answer is handed back (so that a GET /usage
right after it sees the count), without waiting for its reply: its write is in the latency.

| | p50 | p99 | CPU per request | requests | round trips sent | round trips waited for |
| --- | --- | --- | --- | --- | --- | --- |
${latencyRow(ours!)}
${latencyRow(peer!)}

Ours / peer: p50 **${fixed(p50Ratio)}×**, CPU per request **${fixed(cpuRatio)}×**.

On loopback a round trip costs a few tens of µs, so the table above weighs CPU. Ours does more
per request than the peer (a sliding session expiry, a limit of two policies checked and spent
at once, usage counters, a log line); the peer waits for one more round trip.

### Latency with Redis a network away

The same, through a proxy that holds each answer from Redis for ${NETWORK_DELAY_MS} ms (a function in a
VPC to ElastiCache in another availability zone; in the same zone a few tenths of a ms): what
a deployed function's callers see, where round trips waited for outweigh CPU.

| | p50 | p99 | round trips waited for |
| --- | --- | --- | --- |
${networkRow(ours!)}
${networkRow(peer!)}

Ours / peer: p50 **${fixed(networkP50(ours!) / networkP50(peer!))}×**.

### Throughput, ${CONCURRENCY} invocations in flight

| | requests/s |
| --- | --- |
${throughputRow(ours!)}
${throughputRow(peer!)}

Ours / peer: **${fixed(throughputRatio)}×**.

A Lambda container serves one invocation at a time; this figure is for a process that serves many
(\`npm run dev\`, a container-based deployment), where CPU per request decides. Ours sends five
Redis commands a request (session, cache read, rate limit, two usage counters) in four socket
writes (the two usage scripts leave in one, \`inOneWrite\` in shared/redis.ts) against the peer's
three; a write is a system call, the largest single cost of a warm request here. With many
requests in flight, the usage counters of the requests answered in one event-loop turn share
their two scripts (shared/usage/counters.ts), and a request's cache read, when other commands
are awaiting replies, waits for the end of the turn to leave in one write with the other
requests' reads and the turn's rate-limit run (\`withRedisSharingWrites\` in shared/redis.ts;
alone on the connection it leaves at once). ioredis's auto-pipelining would batch every command
further, but costs the one-at-a-time case of a Lambda about a fifth of its time (shared/redis.ts).

Reproduce: \`npx node bench/warm-path.bench.ts [runs] [seconds per run]\`.
`;
  writeSection('warm-path', markdown);
  console.log(markdown);
  await Promise.all([secrets.close(), anthropic.close(), proxy.close(), network.close()]);
  await redis.stop();
}

await main();
