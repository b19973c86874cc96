// Rate-limit checks per second on ONE ioredis connection to a local redis-server, 50 concurrent
// callers, side by side in one run: this project's check, rate-limiter-flexible's
// RateLimiterRedis (its own Lua script, ioredis client) and a bare PING (the floor: one round
// trip that does nothing). Contenders alternate within each run so that drift in the machine's
// speed hits all of them alike. Writes the `rate-limit` section of BENCHMARKS.md.
//
//   npx node bench/rate-limit.bench.ts [runs] [checks per contender per run]

import { RateLimiterRedis } from 'rate-limiter-flexible';
import { startRedisServer } from '../infra/local/redis-server.ts';
import type { RateLimitPolicy } from '../shared/config.ts';
import { checkRateLimit } from '../shared/rate-limit/limiter.ts';
import { closeRedis, getRedis } from '../shared/redis.ts';
import { machineLine, median, writeSection } from './report.ts';

const RUNS = Number(process.argv[2] ?? 7);
const CHECKS = Number(process.argv[3] ?? 100_000);
const CALLERS = 50;
const IDENTITIES = 1000;
// High enough that every check is admitted: the common path, and the same work for every contender.
const ONE_POLICY: RateLimitPolicy[] = [{ name: '1000000-per-1h', limit: 1_000_000, windowMs: 3_600_000 }];
const TWO_POLICIES: RateLimitPolicy[] = [...ONE_POLICY, { name: '10000000-per-1d', limit: 10_000_000, windowMs: 86_400_000 }];

type Operation = (index: number) => Promise<unknown>;

/** `CHECKS` operations by `CALLERS` concurrent loops; checks per second. */
async function measure(operation: Operation, count = CHECKS): Promise<number> {
  let next = 0;
  const caller = async () => {
    while (next < count) {
      const index = next;
      next += 1;
      await operation(index);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CALLERS }, caller));
  return count / ((performance.now() - started) / 1000);
}

const server = await startRedisServer();
process.env['REDIS_URL'] = server.url;
process.env['LOG_LEVEL'] = 'error';
// The container's own client: the connection every check of a function uses, one socket.
const client = await getRedis();
const identities = Array.from({ length: IDENTITIES }, (_, i) => `bench-user-${i}`);
const flexible = new RateLimiterRedis({
  storeClient: client,
  useRedisPackage: false,
  keyPrefix: 'bench-rlf',
  points: 1_000_000,
  duration: 3600,
});

const contenders: Array<[string, Operation]> = [
  ['PING (floor)', () => client.ping()],
  ['this check, 1 policy', (i) => checkRateLimit({ bucket: 'bench', identity: identities[i % IDENTITIES]!, policies: ONE_POLICY })],
  ['rate-limiter-flexible', (i) => flexible.consume(identities[i % IDENTITIES]!)],
  ['this check, 2 policies', (i) => checkRateLimit({ bucket: 'bench2', identity: identities[i % IDENTITIES]!, policies: TWO_POLICIES })],
];

// Warm-up: scripts loaded, JIT compiled, keys created.
for (const [, operation] of contenders) await measure(operation, 20_000);

const results = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
for (let run = 0; run < RUNS; run += 1) {
  // Rotate the order each run so that no contender always goes first or last.
  for (let k = 0; k < contenders.length; k += 1) {
    const [name, operation] = contenders[(run + k) % contenders.length]!;
    results.get(name)!.push(await measure(operation));
  }
  process.stdout.write(`run ${run + 1}/${RUNS} done\n`);
}

await closeRedis();
await server.stop();

const medians = new Map([...results].map(([name, values]) => [name, median(values)]));
const ping = medians.get('PING (floor)')!;
const rlf = medians.get('rate-limiter-flexible')!;
const k = (value: number) => `${(value / 1000).toFixed(1)}k`;
const rows = [...results].map(([name, values]) => {
  const m = medians.get(name)!;
  return `| ${name} | ${k(m)} | ${k(Math.min(...values))} – ${k(Math.max(...values))} | ${((m / ping) * 100).toFixed(0)}% | ${(m / rlf).toFixed(2)}× |`;
});
const ours = medians.get('this check, 1 policy')!;
const verdict = (ok: boolean) => (ok ? 'met' : 'not met');

const markdown = `## Rate-limit check throughput

Checks per second on one ioredis connection (the functions' own client: auto-pipelining on) to a
local redis-server, ${CALLERS} concurrent callers, ${CHECKS.toLocaleString('en')} checks per contender per run,
${RUNS} runs with the contenders in rotating order; ${IDENTITIES} identities, every check admitted.
Measured ${machineLine()}.

| contender | median checks/s | min – max | of PING | vs rate-limiter-flexible |
| --- | --- | --- | --- | --- |
${rows.join('\n')}

Goal: at least 90% of PING (${verdict(ours >= 0.9 * ping)}: ${((ours / ping) * 100).toFixed(0)}%) and at least 1.15× rate-limiter-flexible
(${verdict(ours >= 1.15 * rlf)}: ${(ours / rlf).toFixed(2)}×), for the one-policy check, which does the same job as
rate-limiter-flexible's fixed window with a smooth GCRA instead. The two-policy row is the chat route's shape
(a burst and a daily limit, checked and spent atomically), which rate-limiter-flexible cannot do in one round trip.

Reproduce: \`npx node bench/rate-limit.bench.ts [runs] [checks]\`.
`;
writeSection('rate-limit', markdown);
process.stdout.write(markdown);
