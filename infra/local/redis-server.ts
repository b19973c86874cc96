// Starts real `redis-server` processes on free loopback ports: the one `npm run dev` uses, and the
// standalone, TLS and cluster servers the tests run against.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';

export interface RedisServer {
  port: number;
  url: string;
  process: ChildProcess;
  /** SIGTERM and wait for exit (data saved when persistence is on). */
  stop(): Promise<void>;
  /** SIGKILL and wait: a crash. */
  kill(): Promise<void>;
  /** Starts the same server again on the same port and data folder. */
  restart(): Promise<void>;
}

export interface RedisServerOptions {
  port?: number;
  /** Data folder; omitted: nothing persisted. */
  dir?: string;
  password?: string;
  tls?: { cert: string; key: string; ca: string };
  extraArgs?: string[];
}

/** Where `tool` is on the PATH, or undefined. */
function pathOf(tool: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path !== '' ? path : undefined;
}

const NOT_INSTALLED =
  'redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis), ' +
  'or point the service at a running Redis with REDIS_URL=redis://host:port';

/**
 * Makes sure `redis-server` and `redis-cli` exist: installs Debian's packages when running as root
 * with apt-get, otherwise throws an error that says how to get them.
 */
export function ensureRedisInstalled(): void {
  const installed = () => pathOf('redis-server') !== undefined && pathOf('redis-cli') !== undefined;
  if (installed()) return;
  if (process.getuid?.() === 0 && pathOf('apt-get') !== undefined) {
    console.log("redis-server is missing; installing Debian's redis-server package…");
    spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools'], {
      stdio: 'inherit',
    });
    if (installed()) return;
  }
  throw new Error(NOT_INSTALLED);
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/**
 * `count` distinct free ports: all held open at once, then released, so that none of them is
 * handed out twice (ports taken one after another can repeat once released).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = createServer();
      server.unref();
      return new Promise<Server>((resolve, reject) => {
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server));
      });
    }),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${output()}`);
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`redis-server did not listen on ${port} within 10 s: ${output()}`);
}

function serverArgs(port: number, options: RedisServerOptions): string[] {
  const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'];
  if (options.dir !== undefined) {
    mkdirSync(options.dir, { recursive: true });
    args.push('--dir', options.dir, '--appendonly', 'yes', '--appendfsync', 'everysec');
  }
  if (options.password !== undefined) args.push('--requirepass', options.password);
  if (options.tls !== undefined) {
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', options.tls.cert);
    args.push('--tls-key-file', options.tls.key, '--tls-ca-cert-file', options.tls.ca, '--tls-auth-clients', 'no');
  } else {
    args.push('--port', String(port));
  }
  return [...args, ...(options.extraArgs ?? [])];
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = pathOf('redis-server');
  if (binary === undefined) throw new Error(NOT_INSTALLED);
  let port = options.port ?? (await freePort());
  let child!: ChildProcess;

  const launch = async (): Promise<void> => {
    let output = '';
    child = spawn(binary, serverArgs(port, options), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitForPort(port, child, () => output);
  };
  const terminate = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    });

  for (let attempt = 1; ; attempt += 1) {
    try {
      await launch();
      break;
    } catch (error) {
      // A port found free can be taken by another process before redis-server binds it.
      const taken = error instanceof Error && error.message.includes('Address already in use');
      if (options.port !== undefined || !taken || attempt >= 3) throw error;
      port = await freePort();
    }
  }
  const auth = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`;
  const server: RedisServer = {
    port,
    url: `${options.tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    get process() {
      return child;
    },
    stop: () => terminate('SIGTERM'),
    kill: () => terminate('SIGKILL'),
    restart: async () => {
      await terminate('SIGTERM');
      await launch();
    },
  };
  return server;
}
