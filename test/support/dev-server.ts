// Runs `npm run dev` (scripts/dev.ts: serverless-offline, and its own redis-server unless
// REDIS_URL is given) on free ports, for end-to-end tests over real HTTP.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../infra/local/redis-server.ts';

export interface DevServer {
  baseUrl: string;
  output(): string;
  stop(): Promise<void>;
}

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

export async function startDevServer(env: Record<string, string> = {}): Promise<DevServer> {
  const port = await freePort();
  const redisPort = await freePort();
  let output = '';
  const child: ChildProcess = spawn(process.execPath, ['scripts/dev.ts'], {
    cwd: projectRoot,
    env: {
      ...process.env,
      PORT: String(port),
      OFFLINE_LAMBDA_PORT: String(await freePort()),
      DEV_REDIS_PORT: String(redisPort),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const baseUrl = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + 60_000;
  while (!output.includes('Server ready')) {
    if (child.exitCode !== null) throw new Error(`npm run dev exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`npm run dev did not start within 60 s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    baseUrl,
    output: () => output,
    stop: async () => {
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
      // The data of the redis-server it may have started (scripts/dev.ts: one folder per port).
      rmSync(`${projectRoot}.redis-data/${redisPort}`, { recursive: true, force: true });
    },
  };
}

/**
 * Registers a new user through the server's own POST /auth/register and logs it in with POST
 * /auth/login, as a client over HTTP would; the bearer token of the session.
 */
export async function signUpOverHttp(baseUrl: string): Promise<string> {
  const credentials = { email: `e2e-${randomUUID()}@example.test`, password: 'a long enough password' };
  const post = (path: string) =>
    fetch(`${baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(credentials) });
  const registered = await post('/auth/register');
  if (registered.status !== 201) throw new Error(`registration failed: ${registered.status} ${await registered.text()}`);
  const loggedIn = await post('/auth/login');
  if (loggedIn.status !== 200) throw new Error(`login failed: ${loggedIn.status} ${await loggedIn.text()}`);
  return ((await loggedIn.json()) as { token: string }).token;
}
