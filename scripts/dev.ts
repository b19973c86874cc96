// `npm run dev`: every route on http://127.0.0.1:$PORT, through the local gateway (what API
// Gateway does in front of the functions, infra/local/gateway.ts) to serverless-offline on a port
// of its own. Without REDIS_URL it starts a redis-server of its own (data in .redis-data/, kept
// across restarts) and stops it on exit.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { startGateway, type CorsSettings, type Gateway } from '../infra/local/gateway.ts';
import { ensureRedisInstalled, freePort, startRedisServer, type RedisServer } from '../infra/local/redis-server.ts';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));
const DEV_REDIS_PORT = 6390;
const DEFAULT_PORT = 3000;

/** The stage's CORS settings, from the file serverless.yml gives API Gateway. */
function corsSettingsOf(stage: string): CorsSettings | undefined {
  const byStage = parseYaml(readFileSync(`${projectRoot}infra/cors.yml`, 'utf8')) as Record<string, CorsSettings | undefined>;
  return byStage[stage];
}

async function main(): Promise<void> {
  let redis: RedisServer | undefined;
  const stage = process.env['STAGE'] ?? 'dev';
  const env: NodeJS.ProcessEnv = { ...process.env, STAGE: stage };
  const port = Number(env['PORT'] || DEFAULT_PORT);
  // serverless-offline's internal ports: free ones, so that two `npm run dev` can run side by side.
  env['OFFLINE_LAMBDA_PORT'] ||= String(await freePort());
  const offlinePort = await freePort();
  env['OFFLINE_HTTP_PORT'] = String(offlinePort);
  if (env['REDIS_URL'] === undefined || env['REDIS_URL'] === '') {
    try {
      ensureRedisInstalled();
    } catch (error) {
      console.error((error as Error).message);
      process.exit(1);
    }
    const redisPort = Number(process.env['DEV_REDIS_PORT'] ?? DEV_REDIS_PORT);
    // A Redis on another port keeps its data apart: two servers must not write one dump file.
    const dataDir = redisPort === DEV_REDIS_PORT ? '.redis-data' : `.redis-data/${redisPort}`;
    redis = await startRedisServer({ port: redisPort, dir: `${projectRoot}${dataDir}` });
    env['REDIS_URL'] = redis.url;
    console.log(`local redis-server on ${redis.url} (data in ${dataDir}/)`);
  }

  let gateway: Gateway;
  try {
    // serverless-offline names a function for its Lambda port as AWS does: service-stage-key.
    const catchAll = { lambdaPort: Number(env['OFFLINE_LAMBDA_PORT']), functionName: `tutor-copiloto-${stage}-notFound` };
    gateway = await startGateway({ port, upstreamPort: offlinePort, catchAll, cors: corsSettingsOf(stage) });
  } catch (error) {
    console.error(`cannot listen on 127.0.0.1:${port}: ${(error as Error).message}`);
    await redis?.stop();
    process.exit(1);
  }

  const offline = spawn('npx', ['sls', 'offline', 'start', '--stage', stage], {
    cwd: projectRoot,
    env,
    stdio: ['inherit', 'pipe', 'pipe'],
    detached: true,
  });
  // Its route list and "Server ready" name its own port; clients are served on the gateway's. The
  // list's invocation URLs are served on its Lambda port only.
  const internalAddress = `127.0.0.1:${offlinePort}`;
  const publicLine = (line: string) =>
    line
      .replaceAll(`${internalAddress}/2015-03-31/`, `127.0.0.1:${env['OFFLINE_LAMBDA_PORT']}/2015-03-31/`)
      .replaceAll(internalAddress, `127.0.0.1:${port}`);
  const relayLines = (from: Readable, to: (line: string) => void) => createInterface({ input: from }).on('line', (line) => to(publicLine(line)));
  relayLines(offline.stdout!, (line) => console.log(line));
  relayLines(offline.stderr!, (line) => console.error(line));

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
    await Promise.all([gateway.close(), redis?.stop()]);
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  offline.on('exit', (code) => void stop(code ?? 0));
}

await main();
