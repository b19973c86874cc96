// Keys per second of `npm run redis:migrate`'s copy (SCAN, PTTL+DUMP pipelined, RESTORE REPLACE
// pipelined) against Redis's own server-side `MIGRATE ... COPY REPLACE KEYS` in batches, on two
// local redis-servers, 100k small keys, measured side by side in one run, alternating the order.
//
//   npx node bench/migrate.bench.ts [--runs 5] [--keys 100000]

import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServer } from '../infra/local/redis-server.ts';
import { connectTo } from '../scripts/ops/connection.ts';
import { urlEndpoint } from '../scripts/ops/endpoint.ts';
import { scanKeys } from '../scripts/ops/keyspace.ts';
import { copyKeys } from '../scripts/ops/migration.ts';
import { machineLine, median, writeSection } from './report.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, keys: { type: 'string', default: '100000' } } });
const RUNS = Number(values.runs);
const KEYS = Number(values.keys);
const BATCH = 1000;

async function fill(client: Redis): Promise<void> {
  let pipeline = client.pipeline();
  for (let i = 0; i < KEYS; i += 1) {
    // Small values; one key in ten with a TTL, as cache entries and counters have.
    if (i % 10 === 0) pipeline.set(`bench:${i}`, `value-${i}-${'x'.repeat(16)}`, 'EX', 3600);
    else pipeline.set(`bench:${i}`, `value-${i}-${'x'.repeat(16)}`);
    if (i % 10_000 === 9_999) {
      await pipeline.exec();
      pipeline = client.pipeline();
    }
  }
  await pipeline.exec();
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Redis's own server-side copy: the source connects to the target and streams RESTOREs. */
async function serverSideMigrate(source: Redis, targetPort: number): Promise<void> {
  for await (const keys of scanKeys(source, '*', BATCH)) {
    await source.call('MIGRATE', '127.0.0.1', targetPort, '', 0, 10_000, 'COPY', 'REPLACE', 'KEYS', ...keys);
  }
}

async function main(): Promise<void> {
  const servers: RedisServer[] = await Promise.all([startRedisServer(), startRedisServer()]);
  const [sourceServer, targetServer] = servers as [RedisServer, RedisServer];
  const admin = { source: new Redis(sourceServer.port), target: new Redis(targetServer.port) };
  const ours = {
    source: await connectTo(urlEndpoint(sourceServer.url, '--from', false), { commandTimeoutMs: 30_000 }),
    target: await connectTo(urlEndpoint(targetServer.url, '--to', false), { commandTimeoutMs: 30_000 }),
  };
  try {
    await fill(admin.source);
    const rates = { ours: [] as number[], migrate: [] as number[] };
    const load = loadavg()[0]!;
    const contenders = {
      ours: () =>
        copyKeys(ours.source, ours.target, { match: '*', batchSize: BATCH, window: 4, method: 'restore', fallbackToTypes: false }),
      migrate: () => serverSideMigrate(admin.source, targetServer.port),
    };
    for (let run = 0; run < RUNS; run += 1) {
      const order = run % 2 === 0 ? (['ours', 'migrate'] as const) : (['migrate', 'ours'] as const);
      for (const name of order) {
        await admin.target.flushall();
        const seconds = await timed(contenders[name]);
        const copied = await admin.target.dbsize();
        if (copied !== KEYS) throw new Error(`${name} copied ${copied} of ${KEYS} keys`);
        rates[name].push(KEYS / seconds);
      }
      console.log(`run ${run + 1}: ours ${Math.round(rates.ours.at(-1)!)} keys/s, MIGRATE ${Math.round(rates.migrate.at(-1)!)} keys/s`);
    }
    const row = (label: string, samples: number[]) =>
      `| ${label} | ${Math.round(median(samples))} | ${Math.round(Math.min(...samples))} | ${Math.round(Math.max(...samples))} |`;
    const ratio = median(rates.ours) / median(rates.migrate);
    const pairedRatio = median(rates.ours.map((rate, run) => rate / rates.migrate[run]!));
    const markdown = `## Migration (\`npm run redis:migrate\`)

${machineLine()}; load average ${load.toFixed(1)} when the run started. ${KEYS / 1000}k small string
keys (one in ten with a TTL) between two local redis-servers over loopback, batches of ${BATCH} keys,
${RUNS} runs, the two copies alternating. \`redis:migrate\`: SCAN, then per batch one script call
for PTTL+DUMP on the source and one for RESTORE ... REPLACE on the target, 4 batches in flight.
\`MIGRATE\`: SCAN, then \`MIGRATE host port "" 0 10000 COPY REPLACE KEYS ...\` per batch (server side).

| copy | keys/s median | min | max |
| --- | ---: | ---: | ---: |
${row('redis:migrate', rates.ours)}
${row('MIGRATE ... KEYS (server side)', rates.migrate)}

Ratio redis:migrate / MIGRATE: **${ratio.toFixed(2)}x** of the medians, ${pairedRatio.toFixed(2)}x as the median of
the per-run ratios (goal: at least 0.5x). The two local servers and the client share two cores, so
MIGRATE (no client process) is favoured here; over a real network both wait on round trips.`;
    writeSection('migrate', markdown);
    console.log(`\nmedian: ours ${Math.round(median(rates.ours))} keys/s, MIGRATE ${Math.round(median(rates.migrate))} keys/s, ratio ${ratio.toFixed(2)}x`);
  } finally {
    admin.source.disconnect();
    admin.target.disconnect();
    ours.source.disconnect();
    ours.target.disconnect();
    await Promise.all(servers.map((server) => server.stop()));
  }
}

await main();
