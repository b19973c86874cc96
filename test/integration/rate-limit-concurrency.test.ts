// Several processes (several "containers") spending one quota at the same time: the script is
// atomic, so together they admit exactly the limit, on standalone Redis and on a cluster.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RateLimitRequest } from '../../shared/rate-limit/limiter.ts';
import { startRedisCluster, startStandaloneRedis } from '../support/redis.ts';

const run = promisify(execFile);
const HAMMER = fileURLToPath(new URL('../support/rate-limit-hammer.ts', import.meta.url));

/** Starts `processes` hammers at once and returns what each admitted. */
async function hammer(env: Record<string, string>, request: RateLimitRequest, processes: number, checksEach: number): Promise<number[]> {
  const outputs = await Promise.all(
    Array.from({ length: processes }, () =>
      run(process.execPath, [HAMMER, JSON.stringify(request), String(checksEach), '25'], {
        env: { ...process.env, ...env, LOG_LEVEL: 'error' },
        timeout: 30_000,
      }),
    ),
  );
  return outputs.map(({ stdout }) => Number(stdout.trim()));
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

const targets: Array<[string, () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>]> = [
  ['standalone', async () => {
    const server = await startStandaloneRedis();
    return { env: { REDIS_URL: server.url }, stop: () => server.stop() };
  }],
  ['cluster', async () => {
    const cluster = await startRedisCluster();
    return { env: { REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' }, stop: () => cluster.stop() };
  }],
];

describe.each(targets)('concurrent checks from three processes on %s Redis', (_name, start) => {
  let target: { env: Record<string, string>; stop(): Promise<void> };
  beforeAll(async () => {
    target = await start();
  });
  afterAll(async () => {
    await target.stop();
  });

  it('admit exactly the limit between them', async () => {
    const request: RateLimitRequest = {
      bucket: 'concurrency',
      identity: randomUUID(),
      policies: [{ name: '300-per-1h', limit: 300, windowMs: 3_600_000 }],
    };

    const admitted = await hammer(target.env, request, 3, 400);

    expect(sum(admitted)).toBe(300);
  });

  it('admit exactly what the tighter of two policies allows, at a cost of 2 each', async () => {
    const request: RateLimitRequest = {
      bucket: 'concurrency',
      identity: randomUUID(),
      policies: [
        { name: '500-per-1h', limit: 500, windowMs: 3_600_000 },
        { name: '400-per-1d', limit: 400, windowMs: 86_400_000 },
      ],
      cost: 2,
    };

    const admitted = await hammer(target.env, request, 3, 200);

    expect(sum(admitted)).toBe(200);
  });
});
