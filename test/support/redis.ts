// Real Redis servers for tests: standalone, TLS (certificates made at test time) and a 3-master
// cluster, each on free loopback ports, each torn down by the returned `stop`.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePorts, startRedisServer, type RedisServer, type RedisServerOptions } from '../../infra/local/redis-server.ts';

export type { RedisServer };

export function startStandaloneRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  return startRedisServer(options);
}

export interface TlsMaterial {
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

/** A throw-away CA and a server certificate for 127.0.0.1 / localhost. */
export function makeTlsMaterial(): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), 'tc-tls-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=tc-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1,DNS:localhost" > san.ext'], { cwd: dir });
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.crt');
  return { dir, ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

export interface TlsRedis extends RedisServer {
  tlsMaterial: TlsMaterial;
}

/** A TLS-only Redis. Clients trust it through NODE_EXTRA_CA_CERTS-free `ca` or by setting the env below. */
export async function startTlsRedis(options: RedisServerOptions = {}): Promise<TlsRedis> {
  const tlsMaterial = makeTlsMaterial();
  const server = await startRedisServer({ ...options, tls: tlsMaterial });
  return Object.assign(server, { tlsMaterial });
}

export interface RedisCluster {
  nodes: RedisServer[];
  /** A `redis://` URL of one node (the seed); `rediss://` for a TLS cluster. */
  url: string;
  /** The certificates of a TLS cluster (clients and the cluster bus speak TLS only). */
  tlsMaterial?: TlsMaterial;
  /** Where the nodes keep their cluster configuration files (removed with the cluster). */
  configDir: string;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** TLS only, as Redis Cloud and ElastiCache with in-transit encryption serve a cluster. */
  tls?: boolean;
}

/** Three masters, no replicas, all 16384 slots assigned, state ok. */
export async function startRedisCluster({ tls = false }: RedisClusterOptions = {}): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tc-cluster-'));
  const tlsMaterial = tls ? makeTlsMaterial() : undefined;
  // A bus port of its own for each node: the default, port + 10000, is past 65535 for any port
  // above 55535 (a quarter of the ephemeral range, where free ports come from), and Redis then
  // refuses to start. All six taken together, so that none is handed out twice.
  const allPorts = await freePorts(6);
  const ports = allPorts.slice(0, 3);
  const busPorts = allPorts.slice(3);
  const nodes = await Promise.all(
    ports.map((port, index) =>
      startRedisServer({
        port,
        ...(tlsMaterial === undefined ? {} : { tls: tlsMaterial }),
        extraArgs: [
          ...['--cluster-enabled', 'yes', '--cluster-port', String(busPorts[index])],
          ...['--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000'],
          ...(tls ? ['--tls-cluster', 'yes'] : []),
        ],
      }),
    ),
  );
  const tlsArgs = tlsMaterial === undefined ? [] : ['--tls', '--cacert', tlsMaterial.ca];
  execFileSync('redis-cli', [...tlsArgs, '--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], {
    stdio: 'ignore',
  });
  await waitForClusterOk(ports, tlsMaterial);
  return {
    nodes,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${ports[0]}`,
    configDir: dir,
    ...(tlsMaterial === undefined ? {} : { tlsMaterial }),
    stop: async () => {
      await Promise.all(nodes.map((node) => node.kill()));
      rmSync(dir, { recursive: true, force: true });
      if (tlsMaterial !== undefined) rmSync(tlsMaterial.dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts one more node (plain cluster only), joins it to `cluster` and hands it `slot`, which must
 * hold no key, as a resharding would; resolves once every node says so. It is stopped with the
 * cluster.
 */
export async function addMaster(cluster: RedisCluster, slot: number): Promise<RedisServer> {
  const [port, busPort] = await freePorts(2);
  const node = await startRedisServer({
    port,
    extraArgs: [
      ...['--cluster-enabled', 'yes', '--cluster-port', String(busPort)],
      ...['--cluster-config-file', join(cluster.configDir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000'],
    ],
  });
  cluster.nodes.push(node);
  const clients = cluster.nodes.map((each) => new Redis(each.port, '127.0.0.1'));
  const fresh = clients.at(-1)!;
  try {
    // The new node's bus port is not port + 10000: the introduction names it.
    await clients[0]!.cluster('MEET', '127.0.0.1', port!, busPort!);
    const id = (await fresh.cluster('MYID')) as string;
    const knowsIt = async (client: Redis) => String(await client.cluster('NODES')).includes(id);
    await until(async () => (await Promise.all(clients.map(knowsIt))).every(Boolean), 'every node knew the new one');
    for (const client of clients) await client.cluster('SETSLOT', slot, 'NODE', id);
    const servesSlot = async (client: Redis) => (await client.cluster('SLOTS')).some(([from, to, master]) => from <= slot && slot <= to && master![1] === port);
    await until(async () => (await Promise.all(clients.map(servesSlot))).every(Boolean), `every node gave slot ${slot} to the new one`);
    return node;
  } finally {
    for (const client of clients) client.disconnect();
  }
}

/** A slot halfway through a resharding: its keys are moving from one master to another. */
export interface SlotMove {
  from: RedisServer;
  to: RedisServer;
  /** Moves `keys` (of the slot, held by `from`) to `to`, as the resharding tool does a batch at a time. */
  moveKeys(keys: string[]): Promise<void>;
  /** Ends the move: `to` serves the slot, as every node says. */
  finish(): Promise<void>;
}

/**
 * Opens the move of `slot` from the master that serves it to another master (MIGRATING on one,
 * IMPORTING on the other): until `finish`, the old master answers ASK for the slot's keys it no
 * longer holds, and the new one serves them only to clients that send ASKING first.
 */
export async function startSlotMove(cluster: RedisCluster, slot: number): Promise<SlotMove> {
  const clients = cluster.nodes.map((node) => new Redis(node.port, '127.0.0.1'));
  const ranges = await clients[0]!.cluster('SLOTS');
  const fromPort = ranges.find(([first, last]) => first <= slot && slot <= last)![2]![1];
  const fromIndex = cluster.nodes.findIndex((node) => node.port === fromPort);
  const toIndex = (fromIndex + 1) % cluster.nodes.length;
  const [fromClient, toClient] = [clients[fromIndex]!, clients[toIndex]!];
  const [fromId, toId] = (await Promise.all([fromClient.cluster('MYID'), toClient.cluster('MYID')])) as string[];
  await toClient.cluster('SETSLOT', slot, 'IMPORTING', fromId!);
  await fromClient.cluster('SETSLOT', slot, 'MIGRATING', toId!);
  const to = cluster.nodes[toIndex]!;
  return {
    from: cluster.nodes[fromIndex]!,
    to,
    moveKeys: async (keys) => {
      await fromClient.migrate('127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys);
    },
    finish: async () => {
      try {
        // The order the resharding tool uses: the new owner first, so that no node points back at the old one.
        for (const client of [toClient, fromClient, ...clients.filter((client) => client !== toClient && client !== fromClient)]) {
          await client.cluster('SETSLOT', slot, 'NODE', toId!);
        }
        const servesSlot = async (client: Redis) => (await client.cluster('SLOTS')).some(([first, last, master]) => first <= slot && slot <= last && master![1] === to.port);
        await until(async () => (await Promise.all(clients.map(servesSlot))).every(Boolean), `every node gave slot ${slot} to ${to.port}`);
      } finally {
        for (const client of clients) client.disconnect();
      }
    },
  };
}

/** Polls `condition` every 100 ms; fails after 15 s with `what` did not happen. */
async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within 15 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The master of `cluster` that serves the slot of `key`. */
export async function nodeServing(cluster: RedisCluster, key: string): Promise<RedisServer> {
  const client = new Redis(cluster.nodes[0]!.port, '127.0.0.1');
  try {
    const slot = (await client.cluster('KEYSLOT', key)) as number;
    const ranges = await client.cluster('SLOTS');
    const port = ranges.find(([from, to]) => slot >= from && slot <= to)![2]![1];
    return cluster.nodes.find((node) => node.port === port)!;
  } finally {
    client.disconnect();
  }
}

/** Runs `act` with `node` frozen (SIGSTOP: it keeps its connections and answers nothing), then thaws it. */
export async function whileFrozen<T>(node: RedisServer, act: () => Promise<T>): Promise<T> {
  node.process.kill('SIGSTOP');
  try {
    return await act();
  } finally {
    node.process.kill('SIGCONT');
  }
}

/**
 * Has each node of `cluster` announce `ports[i]` (a proxy in front of it) instead of its own, as
 * nodes behind a NAT do, and waits until every node's CLUSTER SLOTS says so: clients then reach
 * every master through its proxy.
 */
export async function announceClusterPorts(cluster: RedisCluster, ports: number[]): Promise<void> {
  const setting = cluster.tlsMaterial === undefined ? 'cluster-announce-port' : 'cluster-announce-tls-port';
  const tls = cluster.tlsMaterial === undefined ? {} : { tls: { ca: readFileSync(cluster.tlsMaterial.ca) } };
  const clients = cluster.nodes.map((node) => new Redis({ port: node.port, host: '127.0.0.1', ...tls }));
  try {
    await Promise.all(clients.map((client, index) => client.config('SET', setting, String(ports[index]))));
    const announced = async (client: Redis) => (await client.cluster('SLOTS')).every(([, , master]) => ports.includes(master![1]));
    await until(async () => (await Promise.all(clients.map(announced))).every(Boolean), 'every node announced the new ports');
  } finally {
    for (const client of clients) client.disconnect();
  }
}

async function waitForClusterOk(ports: number[], tlsMaterial: TlsMaterial | undefined): Promise<void> {
  for (const port of ports) {
    const tls = tlsMaterial === undefined ? {} : { tls: { ca: readFileSync(tlsMaterial.ca) } };
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, ...tls });
    await client.connect();
    try {
      await until(async () => (await client.cluster('INFO')).includes('cluster_state:ok'), `node ${port} reported cluster_state:ok`);
    } finally {
      client.disconnect();
    }
  }
}

/** Waits until the cluster node on `port` reports `state` (polled every 100 ms, at most 10 s). */
export async function untilClusterState(port: number, state: string): Promise<void> {
  const node = new Redis({ port, host: '127.0.0.1' });
  try {
    for (let waited = 0; waited < 10_000; waited += 100) {
      if (String(await node.cluster('INFO')).includes(`cluster_state:${state}`)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the cluster node on ${port} never reported cluster_state:${state}`);
  } finally {
    node.disconnect();
  }
}
