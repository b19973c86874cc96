// Rate-limit checks per second on ONE ioredis connection to a local redis-server, 50 concurrent
// callers, side by side in one run: this project's check, rate-limiter-flexible's
// RateLimiterRedis (its own Lua script, same ioredis client) and a bare PING (the floor: a round
// trip that does nothing). Contenders alternate within each run so that drift in the machine's
// speed hits all of them alike. Writes the `rate-limit` section of BENCHMARKS.md.
//
// Two shapes of traffic, every check admitted in both:
// - busy identities: 1000 identities checked over and over (their keys stay in Redis);
// - fresh identities: every check is the first of its identity (every check creates its key).
//
//   npx node bench/rate-limit.bench.ts [runs] [checks per contender per run]

import { loadavg } from 'node:os';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { startRedisServer } from '../infra/local/redis-server.ts';
import type { RateLimitPolicy } from '#shared/config.ts';
import { MAX_CHECKS_PER_RUN, setMaxChecksPerRun } from '#shared/rate-limit/batch.ts';
import { checkRateLimit } from '#shared/rate-limit/limiter.ts';
import { closeRedis, getRedis } from '#shared/redis.ts';
import { machineLine, median, writeSection } from './report.ts';

const RUNS = Number(process.argv[2] ?? 7);
const CHECKS = Number(process.argv[3] ?? 100_000);
const CALLERS = 50;
const BUSY_IDENTITIES = 1000;
// High enough that every check is admitted: the same work for every contender.
const DAILY: RateLimitPolicy[] = [{ name: '10000000-per-1d', limit: 10_000_000, windowMs: 86_400_000 }];
const BURST_AND_DAILY: RateLimitPolicy[] = [{ name: '1000000-per-1m', limit: 1_000_000, windowMs: 60_000 }, ...DAILY];

type Operation = (index: number) => Promise<unknown>;

/** `count` operations by `CALLERS` concurrent loops; operations per second. */
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

const loadAtStart = loadavg()[0]!.toFixed(1);
const server = await startRedisServer();
process.env['REDIS_URL'] = server.url;
process.env['LOG_LEVEL'] = 'error';
// The container's own client: the one connection every check of a function uses.
const client = await getRedis();
const flexible = new RateLimiterRedis({
  storeClient: client,
  useRedisPackage: false,
  keyPrefix: 'bench-rlf',
  points: 10_000_000,
  duration: 86_400,
});

const busy = Array.from({ length: BUSY_IDENTITIES }, (_, i) => `busy-${i}`);
let generation = 0; // fresh identities never repeat, across runs and warm-up
const fresh = (index: number) => `fresh-${generation}-${index}`;

const PING = 'PING (floor)';
const OURS_BUSY = 'this check, busy identities';
const RLF_BUSY = 'rate-limiter-flexible, busy identities';
const OURS_FRESH = 'this check, fresh identities';
const RLF_FRESH = 'rate-limiter-flexible, fresh identities';
const OURS_TWO = 'this check, 2 policies, busy identities';
const OURS_ALONE = 'this check, one script run per check, busy identities';

/** The same check with every check sent as its own run: what the script alone costs. */
const alone = (operation: Operation): Operation => async (i) => {
  setMaxChecksPerRun(1);
  try {
    return await operation(i);
  } finally {
    setMaxChecksPerRun(MAX_CHECKS_PER_RUN);
  }
};

const contenders: Array<[string, Operation]> = [
  [PING, () => client.ping()],
  [OURS_BUSY, (i) => checkRateLimit({ bucket: 'bench', identity: busy[i % BUSY_IDENTITIES]!, policies: DAILY })],
  [RLF_BUSY, (i) => flexible.consume(busy[i % BUSY_IDENTITIES]!)],
  [OURS_FRESH, (i) => checkRateLimit({ bucket: 'bench', identity: fresh(i), policies: DAILY })],
  [RLF_FRESH, (i) => flexible.consume(fresh(i))],
  [OURS_TWO, (i) => checkRateLimit({ bucket: 'bench2', identity: busy[i % BUSY_IDENTITIES]!, policies: BURST_AND_DAILY })],
  [OURS_ALONE, alone((i) => checkRateLimit({ bucket: 'bench', identity: busy[i % BUSY_IDENTITIES]!, policies: DAILY }))],
];

async function measureFreshly(operation: Operation, count?: number): Promise<number> {
  generation += 1;
  return measure(operation, count);
}

/** Script runs (EVALSHA) and checks so far, to report how many checks a run carried. */
async function scriptRuns(): Promise<number> {
  const stats = await client.info('commandstats');
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

// Warm-up: scripts loaded, JIT compiled, busy keys created.
for (const [, operation] of contenders) await measureFreshly(operation, 20_000);

const results = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
let ourRuns = 0;
let ourChecks = 0;
for (let run = 0; run < RUNS; run += 1) {
  // Rotate the order each run so that no contender always goes first or last.
  for (let k = 0; k < contenders.length; k += 1) {
    const [name, operation] = contenders[(run + k) % contenders.length]!;
    const runsBefore = await scriptRuns();
    results.get(name)!.push(await measureFreshly(operation));
    if (name === OURS_BUSY) {
      ourRuns += (await scriptRuns()) - runsBefore;
      ourChecks += CHECKS;
    }
  }
  process.stdout.write(`run ${run + 1}/${RUNS} done\n`);
}

await closeRedis();
await server.stop();

const medians = new Map([...results].map(([name, values]) => [name, median(values)]));
const m = (name: string) => medians.get(name)!;
const k = (value: number) => `${(value / 1000).toFixed(1)}k`;
const peerOf: Record<string, string> = { [OURS_BUSY]: RLF_BUSY, [OURS_FRESH]: RLF_FRESH, [OURS_TWO]: RLF_BUSY, [OURS_ALONE]: RLF_BUSY };
const rows = [...results].map(([name, values]) => {
  const peer = peerOf[name];
  const vsPeer = peer === undefined ? '' : `${(m(name) / m(peer)).toFixed(2)}×`;
  return `| ${name} | ${k(m(name))} | ${k(Math.min(...values))} – ${k(Math.max(...values))} | ${((m(name) / m(PING)) * 100).toFixed(0)}% | ${vsPeer} |`;
});
const ofPing = m(OURS_BUSY) / m(PING);
const vsFlexible = m(OURS_BUSY) / m(RLF_BUSY);
const verdict = (ok: boolean) => (ok ? 'met' : 'not met');

const markdown = `## Rate-limit check throughput

Checks per second on one ioredis connection (the functions' own client) to a local redis-server,
${CALLERS} concurrent callers, ${CHECKS.toLocaleString('en')} checks per contender per run, ${RUNS} runs with the
contenders in rotating order; every check admitted. *Busy identities*: ${BUSY_IDENTITIES} identities checked over
and over (their keys stay in Redis). *Fresh identities*: every check is the first of its identity, so
every check creates its key, in both limiters. Measured ${machineLine()}; load average
${loadAtStart} when the run started (other work shared the machine: compare within a run, not across runs).

| contender | median checks/s | min – max | of PING | vs rate-limiter-flexible, same traffic |
| --- | --- | --- | --- | --- |
${rows.join('\n')}

Goal, for one policy on busy identities: at least 90% of PING (${verdict(ofPing >= 0.9)}: ${(ofPing * 100).toFixed(0)}%) and at
least 1.15× rate-limiter-flexible (${verdict(vsFlexible >= 1.15)}: ${vsFlexible.toFixed(2)}×), counting the checks that share a
script run. One script run per check, the shape of a Lambda container's traffic, is ${(m(OURS_ALONE) / m(PING) * 100).toFixed(0)}% of PING and
${(m(OURS_ALONE) / m(RLF_BUSY)).toFixed(2)}× rate-limiter-flexible: ${verdict(m(OURS_ALONE) / m(PING) >= 0.9 && m(OURS_ALONE) / m(RLF_BUSY) >= 1.15)} by that reading.

PING is one command per call, as is every command of the functions' client (it does not
auto-pipeline), which is how shared script runs carry more checks per second than PINGs.

Why it is faster although its script does more (GCRA with the server's clock instead of a fixed
window): checks issued in the same event-loop turn share one script run (here ${(ourChecks / Math.max(1, ourRuns)).toFixed(0)} checks a
run on average, busy identities), so the per-command cost of ioredis and Redis is paid once per
turn rather than once per check, and runs are sent without waiting for the previous one, so Redis
works while this process prepares the next run. The "one script run per check" row switches the
sharing off: that is the script alone, and the shape of a Lambda container's traffic (one request
at a time, so runs of one), where what counts is one round trip per check, not checks per second.
The two-policy row is the chat route's shape (a burst and a daily limit, checked and spent
atomically), which rate-limiter-flexible cannot do in one round trip (its union of limiters is not
atomic).

Reproduce: \`npx node bench/rate-limit.bench.ts [runs] [checks]\`.
`;
writeSection('rate-limit', markdown);
process.stdout.write(markdown);
