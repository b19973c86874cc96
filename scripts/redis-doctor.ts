// `npm run redis:doctor`: connects to Redis exactly the way the functions do (REDIS_URL, else the
// secret named by REDIS_SECRET_ID; REDIS_CLUSTER, REDIS_TLS_CA_FILE and the time-outs of the
// functions) and prints a short report, or one sentence saying what to fix and exits non-zero.
//
//   npm run redis:doctor [-- [--cluster] [--pings 200]]

import { parseArgs } from 'node:util';
import type { RedisClient } from '#shared/redis.ts';
import { connectTo } from './ops/connection.ts';
import { clusterExpected, explainFailure } from './ops/diagnosis.ts';
import { describeEndpoint, functionsEndpoint, type OperatorEndpoint } from './ops/endpoint.ts';
import { healthReport } from './ops/health-report.ts';
import { complain, runTool, say } from './ops/output.ts';
import { serverInfo } from './ops/server-info.ts';

const USAGE = `Usage: npm run redis:doctor [-- [--cluster] [--pings N]]

Reads REDIS_URL (or REDIS_SECRET_ID), REDIS_CLUSTER, REDIS_TLS_CA_FILE and the time-outs the way
the functions do, and reports on the Redis it reaches.
  --cluster   connect as a Redis Cluster client even if REDIS_CLUSTER is not set
  --pings N   number of PINGs for the latency figures (default 100)`;

async function measurePings(client: RedisClient, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const started = process.hrtime.bigint();
    await client.ping();
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return samples;
}

async function examine(endpoint: OperatorEndpoint, pings: number): Promise<number> {
  say(`Redis doctor: ${describeEndpoint(endpoint)} (from ${endpoint.origin})`);
  const client = await connectTo(endpoint);
  try {
    const nodes = await serverInfo(client);
    if (!endpoint.cluster && nodes.some((node) => node.info.get('cluster_enabled') === '1')) {
      complain(`✗ ${clusterExpected(endpoint)}`);
      return 1;
    }
    const report = healthReport({ endpoint, nodes, pingMs: await measurePings(client, pings) });
    for (const [label, text] of report.lines) say(`  ${label.padEnd(12)} ${text}`);
    if (report.failure !== undefined) {
      complain(`✗ ${report.failure}`);
      return 1;
    }
    for (const warning of report.warnings) say(`  ! ${warning}`);
    say(report.warnings.length === 0 ? '✓ healthy' : `✓ reachable, with ${report.warnings.length} warning${report.warnings.length === 1 ? '' : 's'}`);
    return 0;
  } finally {
    client.disconnect();
  }
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: { cluster: { type: 'boolean' }, pings: { type: 'string', default: '100' }, help: { type: 'boolean' } },
    }));
  } catch (error) {
    complain(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    say(USAGE);
    return 0;
  }
  const pings = Number(values.pings);
  if (!Number.isInteger(pings) || pings < 1 || pings > 100_000) {
    complain('--pings: expected a whole number from 1 to 100000');
    return 2;
  }
  try {
    const endpoint = await functionsEndpoint(values.cluster ? { cluster: true } : {});
    return await examine(endpoint, pings);
  } catch (error) {
    complain(`✗ ${await explainFailure(error)}`);
    return 1;
  }
}

runTool(main);
