// `npm run dev`: every route on http://127.0.0.1:$PORT through serverless-offline. Without
// REDIS_URL it starts a redis-server of its own (data in .redis-data/, kept across restarts)
// and stops it on exit.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureRedisInstalled, freePort, startRedisServer, type RedisServer } from '../infra/local/redis-server.ts';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));
const DEV_REDIS_PORT = 6390;

async function main(): Promise<void> {
  let redis: RedisServer | undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, STAGE: process.env['STAGE'] ?? 'dev' };
  // serverless-offline's internal Lambda port: a free one, so that two `npm run dev` can run side by side.
  env['OFFLINE_LAMBDA_PORT'] ||= String(await freePort());
  if (env['REDIS_URL'] === undefined || env['REDIS_URL'] === '') {
    try {
      ensureRedisInstalled();
    } catch (error) {
      console.error((error as Error).message);
      process.exit(1);
    }
    const port = Number(process.env['DEV_REDIS_PORT'] ?? DEV_REDIS_PORT);
    // A Redis on another port keeps its data apart: two servers must not write one dump file.
    const dataDir = port === DEV_REDIS_PORT ? '.redis-data' : `.redis-data/${port}`;
    redis = await startRedisServer({ port, dir: `${projectRoot}${dataDir}` });
    env['REDIS_URL'] = redis.url;
    console.log(`local redis-server on ${redis.url} (data in ${dataDir}/)`);
  }

  const offline = spawn('npx', ['sls', 'offline', 'start', '--stage', env['STAGE'] ?? 'dev'], {
    cwd: projectRoot,
    env,
    stdio: 'inherit',
    detached: true,
  });

  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (offline.exitCode === null && offline.pid !== undefined) {
      try {
        process.kill(-offline.pid, 'SIGTERM'); // the whole group: npx, sls and its workers
      } catch {
        // already gone
      }
    }
    await redis?.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  offline.on('exit', (code) => void stop(code ?? 0));
}

await main();
