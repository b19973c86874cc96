// The doctor's report: what the server is and how it is set up, in a few lines, and warnings for
// the settings that hurt this product (accounts are stored without a TTL, so an allkeys-*
// eviction policy can silently delete them).

import { config } from '#shared/config.ts';
import { databaseOf } from '#shared/redis-url.ts';
import { clusterStateFailure } from './connection.ts';
import type { OperatorEndpoint } from './endpoint.ts';
import { describeMovingSlots, infoRefusal, keyCounts, movingSlots, type NodeInfo } from './server-info.ts';

export interface HealthReport {
  lines: Array<[label: string, text: string]>;
  warnings: string[];
  /** A finding that makes the endpoint unusable as configured (cluster state not ok). */
  failure: string | undefined;
}

export interface Observations {
  endpoint: OperatorEndpoint;
  nodes: NodeInfo[];
  pingMs: number[];
}

function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let amount = value;
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return `${amount.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function distinct(nodes: NodeInfo[], field: string): string[] {
  return [...new Set(nodes.map((node) => node.info.get(field) ?? 'unknown'))];
}

function transport(endpoint: OperatorEndpoint): string {
  if (!endpoint.url.startsWith('rediss:')) return 'plain TCP (not encrypted)';
  const caFile = config().redis.tlsCaFile;
  return caFile === undefined ? 'TLS, certificate checked against the system CAs' : 'TLS, certificate checked against REDIS_TLS_CA_FILE';
}

function mode(observations: Observations): string {
  const { endpoint, nodes } = observations;
  if (!endpoint.cluster) return 'standalone';
  const state = distinct(nodes, 'cluster_state').join('/');
  const moving = movingSlots(nodes);
  const resharding = moving.length === 0 ? '' : `; resharding: ${describeMovingSlots(moving)}`;
  return `cluster, ${nodes.length} master${nodes.length === 1 ? '' : 's'}${state === 'unknown' ? '' : ` (cluster_state ${state})`}${resharding}`;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function latency(pingMs: number[]): string {
  if (pingMs.length === 0) return 'not measured';
  const ms = (value: number) => `${value < 10 ? value.toFixed(2) : value.toFixed(0)} ms`;
  return `PING p50 ${ms(percentile(pingMs, 50))}, p99 ${ms(percentile(pingMs, 99))} over ${pingMs.length} pings`;
}

function memory(nodes: NodeInfo[], warnings: string[]): string {
  const used = nodes.reduce((sum, node) => sum + Number(node.info.get('used_memory') ?? 0), 0);
  const limits = nodes.map((node) => Number(node.info.get('maxmemory') ?? 0));
  const policies = distinct(nodes, 'maxmemory_policy');
  const limit = limits.every((value) => value > 0) ? limits.reduce((sum, value) => sum + value, 0) : 0;

  for (const policy of policies) {
    if (policy.startsWith('allkeys-')) {
      warnings.push(
        `maxmemory-policy ${policy} can evict accounts, which have no TTL: set maxmemory-policy volatile-lru, so only keys with a TTL (caches first, the least recently used) are evicted.`,
      );
    } else if (policy === 'noeviction' && limit > 0) {
      warnings.push(
        'maxmemory-policy noeviction makes every write fail once memory is full (logins included): set maxmemory-policy volatile-lru, so cache entries are evicted first.',
      );
    }
  }
  if (limit === 0) {
    warnings.push('maxmemory is not set: Redis can grow until the machine runs out of memory; set maxmemory with maxmemory-policy volatile-lru.');
  }
  const limitText = limit > 0 ? `maxmemory ${bytes(limit)} (${Math.round((100 * used) / limit)}% used)` : 'maxmemory not set (no limit)';
  return `${bytes(used)} used, ${limitText}, policy ${policies.join('/')}`;
}

function persistence(nodes: NodeInfo[], warnings: string[]): string {
  const aof = nodes.every((node) => node.info.get('aof_enabled') === '1');
  const saves = [...new Set(nodes.map((node) => node.save))];
  const save = saves.length === 1 ? saves[0] : saves.join(' / ');
  const rdb = save === undefined ? 'RDB settings unknown (CONFIG GET not allowed)' : save.trim() === '' ? 'no RDB snapshots' : `RDB snapshots (save ${save})`;
  const failedSave = nodes.some((node) => node.info.get('rdb_last_bgsave_status') === 'err');
  if (failedSave) warnings.push('The last RDB snapshot failed (rdb_last_bgsave_status:err): check the server log and its disk.');
  if (!aof && save !== undefined && save.trim() === '') {
    warnings.push('Neither AOF nor RDB is on: a Redis restart loses every user and session; enable AOF (appendonly yes).');
  }
  return `${aof ? 'AOF on' : 'AOF off'}, ${rdb}`;
}

function clients(nodes: NodeInfo[], warnings: string[]): string {
  const parts = nodes.map((node) => {
    const connected = Number(node.info.get('connected_clients') ?? 0);
    const max = Number(node.info.get('maxclients') ?? 0);
    if (max > 0 && connected > 0.8 * max) {
      warnings.push(`${node.address} holds ${connected} of its ${max} client connections: lower the functions' reserved concurrency or raise maxclients.`);
    }
    return max > 0 ? `${connected} of maxclients ${max}` : `${connected} (maxclients unknown)`;
  });
  return nodes.length === 1 ? `${parts[0]} connected` : `per master: ${parts.join('; ')}`;
}

function hitRate(nodes: NodeInfo[]): string {
  const hits = nodes.reduce((sum, node) => sum + Number(node.info.get('keyspace_hits') ?? 0), 0);
  const misses = nodes.reduce((sum, node) => sum + Number(node.info.get('keyspace_misses') ?? 0), 0);
  if (hits + misses === 0) return 'no key lookups yet';
  return `hit rate ${((100 * hits) / (hits + misses)).toFixed(1)}% (${hits} hits, ${misses} misses since the server started)`;
}

/** The keys of the database the functions use (the URL's), not of the whole server. */
function keys(nodes: NodeInfo[], database: number): string {
  const total = keyCounts(nodes, database);
  const where = database === 0 ? '' : ` in database ${database}`;
  return `${total.keys} keys${where}, ${total.expires} of them with a TTL`;
}

/**
 * The report of a user that may not run INFO: without it every other figure would read as zero or
 * "not set", so it says what it could not check and warns of nothing that is not known.
 */
function reportWithoutInfo(observations: Observations, refusal: string): HealthReport {
  return {
    lines: [
      ['transport', transport(observations.endpoint)],
      ['mode', mode(observations)],
      ['server', 'unknown (INFO not allowed)'],
      ['latency', latency(observations.pingMs)],
    ],
    warnings: [
      `This user may not run INFO (${refusal}): memory, eviction policy, persistence, clients and keyspace were not checked; run the doctor as a user allowed INFO (ACL +info).`,
    ],
    failure: undefined,
  };
}

export function healthReport(observations: Observations): HealthReport {
  const { endpoint, nodes, pingMs } = observations;
  const refusal = infoRefusal(nodes);
  if (refusal !== undefined) return reportWithoutInfo(observations, refusal);
  const warnings: string[] = [];
  const versions = distinct(nodes, 'redis_version');
  const lines: HealthReport['lines'] = [
    ['transport', transport(endpoint)],
    ['mode', mode(observations)],
    ['server', `Redis ${versions.join('/')}`],
    ['latency', latency(pingMs)],
    ['memory', memory(nodes, warnings)],
    ['persistence', persistence(nodes, warnings)],
    ['clients', clients(nodes, warnings)],
    ['keyspace', `${keys(nodes, databaseOf(new URL(endpoint.url)))}; ${hitRate(nodes)}`],
  ];
  const badState = endpoint.cluster ? nodes.find((node) => (node.info.get('cluster_state') ?? 'ok') !== 'ok') : undefined;
  const failure =
    badState === undefined
      ? undefined
      : `The ${clusterStateFailure(badState.address, badState.info.get('cluster_state')!)} before sending traffic.`;
  return { lines, warnings, failure };
}
