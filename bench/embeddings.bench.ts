// The embedding cache: Redis memory per cached vector (MEMORY USAGE) in this project's binary
// float32 format against the JSON array LangChain's CacheBackedEmbeddings stores, for 768 and
// 1536 dimensions; then round trips, commands and latency of a 256-input batch through the cache
// (all hits, half hits, all misses; local provider), with a JSON-format batch read as the peer.
// Writes the `embeddings` section of BENCHMARKS.md.
//
//   npx node bench/embeddings.bench.ts [runs]

import { Redis } from 'ioredis';
import { startRedisServer } from '../infra/local/redis-server.ts';
import { writeVectors } from '#shared/embeddings/cache.ts';
import { embeddingsProvider } from '#shared/embeddings/configured-provider.ts';
import type { EmbeddingsProvider } from '#shared/embeddings/provider.ts';
import { embedWithCache, lookUpCached } from '#shared/embeddings/service.ts';
import { embeddingKey, type EmbeddingOwner } from '#shared/keys.ts';
import { resetConfig } from '#shared/config.ts';
import { closeRedis, getRedis } from '#shared/redis.ts';
import { startRoundTripProxy } from '../test/support/round-trip-proxy.ts';
import { machineLine, median, writeSection } from './report.ts';

const RUNS = Number(process.argv[2] ?? 40);
/** Runs through the counting proxy; the latency runs go straight to Redis. */
const COUNTING_RUNS = 5;
const BATCH = 256;
const MEMORY_SAMPLES = 200;
const LATENCY_DIMENSIONS = 1536;
const TTL_SECONDS = 3600;
/** Whose vectors: a user's, as the default scope (EMBEDDINGS_CACHE_SCOPE=user) keeps them. */
const OWNER: EmbeddingOwner = { userId: 'bench-user-0000-0000-0000-000000000000' };

/** A dense unit vector like a real model's (Gaussian components), deterministic per seed. */
function denseVector(dimensions: number, seed: number): Float32Array {
  let state = seed * 2654435761 + 1;
  const uniform = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state + 1) / 2 ** 32;
  };
  const vector = new Float32Array(dimensions);
  for (let i = 0; i < dimensions; i += 1) vector[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const norm = Math.hypot(...vector);
  return vector.map((value) => value / norm);
}

const VOCABULARY =
  'fraction numerator denominator equation variable derivative integral triangle angle photosynthesis cell energy atom molecule verb noun essay paragraph revolution empire trade climate river map'.split(
    ' ',
  );

/** A tutoring-sized passage (about 300 characters), distinct per label and index. */
function passage(label: string, index: number): string {
  const words = Array.from({ length: 40 }, (_, i) => VOCABULARY[(index * 7 + i * 13 + label.length) % VOCABULARY.length]);
  return `${label} ${index}: ${words.join(' ')}`;
}

const server = await startRedisServer();
const proxy = await startRoundTripProxy(server.port);
const admin = new Redis({ port: server.port, host: '127.0.0.1' });
Object.assign(process.env, {
  REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
  LOG_LEVEL: 'error',
  EMBEDDINGS_PROVIDER: 'local',
  EMBEDDINGS_MODEL: `local-hash-${LATENCY_DIMENSIONS}`,
  EMBEDDINGS_DIMENSIONS: String(LATENCY_DIMENSIONS),
});
let client = await getRedis();

// ── Memory per cached vector ──────────────────────────────────────────────────────────────────

interface MemoryRow {
  dimensions: number;
  format: string;
  valueBytes: number;
  usage: number[];
}

async function memoryOf(keys: string[]): Promise<number[]> {
  return Promise.all(keys.map(async (key) => Number(await admin.memory('USAGE', key, 'SAMPLES', 0))));
}

async function measureMemory(dimensions: number): Promise<MemoryRow[]> {
  const vectors = Array.from({ length: MEMORY_SAMPLES }, (_, i) => denseVector(dimensions, i + dimensions));
  // The same key for both formats, so the difference is the value alone.
  const keys = vectors.map((_, i) => embeddingKey(`text-embedding-3-small:${dimensions}`, passage('memory', i), OWNER));
  await writeVectors(client, keys.map((key, i) => ({ key, vector: vectors[i]! })), TTL_SECONDS);
  const binary: MemoryRow = { dimensions, format: 'binary float32 (this project)', valueBytes: await admin.strlen(keys[0]!), usage: await memoryOf(keys) };
  // LangChain's CacheBackedEmbeddings: JSON.stringify of the number[] the OpenAI client returns.
  const pipeline = admin.pipeline();
  for (const [i, key] of keys.entries()) pipeline.set(key, JSON.stringify(Array.from(vectors[i]!)), 'EX', TTL_SECONDS);
  await pipeline.exec();
  const json: MemoryRow = { dimensions, format: 'JSON array (LangChain CacheBackedEmbeddings)', valueBytes: await admin.strlen(keys[0]!), usage: await memoryOf(keys) };
  await admin.del(...keys);
  return [binary, json];
}

const memoryRows = [...(await measureMemory(768)), ...(await measureMemory(1536))];

// ── Round trips and latency of a 256-input batch ─────────────────────────────────────────────

interface Scenario {
  name: string;
  /** Texts for run `run`; fresh ones are never cached before. */
  texts: (run: number) => string[];
}

const localProvider = embeddingsProvider();
let providerMs = 0;
/** The configured provider, timed: how much of a batch's latency is the provider's. */
const provider: EmbeddingsProvider = {
  model: localProvider.model,
  dimensions: localProvider.dimensions,
  cacheNamespace: localProvider.cacheNamespace,
  embed: async (texts, options) => {
    const started = performance.now();
    try {
      return await localProvider.embed(texts, options);
    } finally {
      providerMs += performance.now() - started;
    }
  },
};
const cachedTexts = Array.from({ length: BATCH }, (_, i) => passage('cached', i));
const fresh = (run: number, count: number, label: string) => Array.from({ length: count }, (_, i) => passage(`${label}-${run}`, i));
const scenarios: Scenario[] = [
  { name: 'all hits', texts: () => cachedTexts },
  { name: 'half hits', texts: (run) => [...cachedTexts.slice(0, BATCH / 2), ...fresh(run, BATCH / 2, 'half')] },
  { name: 'all misses', texts: (run) => fresh(run, BATCH, 'miss') },
];

async function commandCalls(): Promise<Map<string, number>> {
  const info = await admin.info('commandstats');
  return new Map([...info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((match) => [match[1]!, Number(match[2])]));
}

interface BatchRow {
  name: string;
  roundTrips: number[];
  latencyMs: number[];
  providerMs: number[];
  commands: string;
  hits: number;
}

async function runBatch(scenario: Scenario, run: number): Promise<{ roundTrips: number; latencyMs: number; providerMs: number; hits: number }> {
  const texts = scenario.texts(run);
  proxy.reset();
  providerMs = 0;
  const started = performance.now();
  const outcome = await embedWithCache(lookUpCached(texts, provider, OWNER), { ttlSeconds: TTL_SECONDS });
  const latencyMs = performance.now() - started;
  return { roundTrips: proxy.roundTrips(), latencyMs, providerMs, hits: outcome.hits };
}

async function describeCommands(scenario: Scenario, run: number): Promise<string> {
  const before = await commandCalls();
  await runBatch(scenario, run);
  const after = await commandCalls();
  const deltas = [...after]
    .map(([name, calls]) => [name, calls - (before.get(name) ?? 0)] as const)
    .filter(([name, delta]) => delta > 0 && name !== 'info');
  return deltas.map(([name, delta]) => `${delta} ${name.toUpperCase()}`).join(' + ');
}

/** The peer: the same 256 hits stored as LangChain's JSON strings, read with one MGET and parsed. */
async function jsonPeerBatch(keys: string[]): Promise<{ roundTrips: number; latencyMs: number }> {
  proxy.reset();
  const started = performance.now();
  const values = await client.mget(keys);
  const vectors = values.map((value) => (value === null ? undefined : (JSON.parse(value) as number[])));
  const latencyMs = performance.now() - started;
  if (vectors.some((vector) => vector?.length !== LATENCY_DIMENSIONS)) throw new Error('JSON peer: a vector is missing');
  return { roundTrips: proxy.roundTrips(), latencyMs };
}

// The hits of later runs hold dense vectors, as a remote model's would (the local provider's are
// sparser); the JSON peer stores the very same vectors.
const cachedVectors = cachedTexts.map((_, i) => denseVector(LATENCY_DIMENSIONS, 10_000 + i));
await writeVectors(client, cachedTexts.map((text, i) => ({ key: embeddingKey(provider.cacheNamespace, text, OWNER), vector: cachedVectors[i]! })), TTL_SECONDS);
const jsonKeys = cachedTexts.map((text) => `bench:json:${embeddingKey(provider.cacheNamespace, text, OWNER)}`);
const jsonValues = cachedVectors.map((vector) => JSON.stringify(Array.from(vector)));
await admin.mset(...jsonKeys.flatMap((key, i) => [key, jsonValues[i]!]));
const jsonBytes = jsonValues.reduce((sum, value) => sum + value.length, 0);
const binaryBytes = BATCH * LATENCY_DIMENSIONS * 4;

// Warm-up: JIT, connection, allocator.
for (let run = 0; run < 5; run += 1) {
  for (const scenario of scenarios) await runBatch(scenario, -1 - run);
  await jsonPeerBatch(jsonKeys);
}

const batchRows: BatchRow[] = [];
for (const scenario of scenarios) {
  batchRows.push({ name: scenario.name, roundTrips: [], latencyMs: [], providerMs: [], commands: await describeCommands(scenario, 10_000), hits: 0 });
}
const peer = { roundTrips: [] as number[], latencyMs: [] as number[] };

/** Every scenario and the peer once per run, in rotated order: drift in the machine's speed hits them alike. */
async function runAll(runs: number, firstRun: number, record: (row: BatchRow | undefined, result: { roundTrips: number; latencyMs: number; providerMs?: number }) => void) {
  for (let run = firstRun; run < firstRun + runs; run += 1) {
    for (let k = 0; k <= scenarios.length; k += 1) {
      const index = (run + k) % (scenarios.length + 1);
      if (index === scenarios.length) {
        record(undefined, await jsonPeerBatch(jsonKeys));
        continue;
      }
      const result = await runBatch(scenarios[index]!, run);
      batchRows[index]!.hits = result.hits;
      record(batchRows[index], result);
    }
  }
}

await runAll(COUNTING_RUNS, 0, (row, result) => (row ?? peer).roundTrips.push(result.roundTrips));

// Latency without the proxy's extra hop: the container's client reconnects straight to Redis.
await closeRedis();
resetConfig();
process.env['REDIS_URL'] = server.url;
client = await getRedis();
for (let run = 0; run < 3; run += 1) await runAll(1, 1000 + run, () => {}); // warm the new connection
await runAll(RUNS, COUNTING_RUNS, (row, result) => {
  (row ?? peer).latencyMs.push(result.latencyMs);
  if (row) row.providerMs.push(result.providerMs ?? 0);
});

admin.disconnect();
await closeRedis();
await proxy.close();
await server.stop();

// ── Report ───────────────────────────────────────────────────────────────────────────────────

const kb = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;
const memoryTable = memoryRows.map((row, i) => {
  const m = median(row.usage);
  // Rows come in pairs: binary, then JSON, for each dimension.
  const ratio = i % 2 === 0 ? `${(median(memoryRows[i + 1]!.usage) / m).toFixed(1)}× less than JSON` : '';
  return `| ${row.dimensions} | ${row.format} | ${row.valueBytes.toLocaleString('en')} B | ${kb(m)} (${m.toLocaleString('en')} B) | ${(m / row.dimensions).toFixed(2)} | ${(m - 4 * row.dimensions).toLocaleString('en')} B | ${ratio} |`;
});
const binary768 = median(memoryRows[0]!.usage);
const binary1536 = median(memoryRows[2]!.usage);
const marginal = (binary1536 - binary768) / 768;
const overheads = [binary768 - 4.1 * 768, binary1536 - 4.1 * 1536];

const ms = (value: number) => value.toFixed(2);
const peerMedian = median(peer.latencyMs);
const batchTable = batchRows.map(
  (row) =>
    `| ${row.name} | ${row.hits}/${BATCH} | ${median(row.roundTrips)} (max ${Math.max(...row.roundTrips)}) | ${row.commands} | ${ms(median(row.latencyMs))} | ${ms(Math.min(...row.latencyMs))} – ${ms(Math.max(...row.latencyMs))} | ${ms(median(row.providerMs))} |`,
);
const allHits = batchRows[0]!;
const oneRoundTrip = allHits.roundTrips.every((trips) => trips === 1);
const misses = batchRows[2]!;

const markdown = `## Embedding cache

Measured ${machineLine()}; local redis-server.

### Redis memory per cached vector

\`MEMORY USAGE <key> SAMPLES 0\`, median over ${MEMORY_SAMPLES} dense unit vectors (Gaussian components, like a real
model's), same key names for both formats (\`tc:{eu:<sha256>}:<model>:<dims>\`, a user's vector as the default scope keeps it, ${embeddingKey('text-embedding-3-small:768', 'x', OWNER).length} characters) with a TTL.
The peer is the value LangChain's CacheBackedEmbeddings stores: \`JSON.stringify\` of the number array the OpenAI client returns.

| dims | format | value (STRLEN) | memory per vector | bytes / dim | beyond 4 B / dim | |
| --- | --- | --- | --- | --- | --- | --- |
${memoryTable.join('\n')}

The value itself is exactly 4 bytes a dimension. What comes on top is the key, Redis's object and dictionary
entry, and jemalloc's size classes: a 3,072- or 6,144-byte value plus its 6-byte header lands in the next class
(3,584 and 7,168 bytes), so power-of-two dimensions pay up to one class step. Marginal cost from 768 to 1,536
dimensions: ${marginal.toFixed(2)} bytes a dimension. Goal, at most 4.1 bytes a dimension plus a small constant. What a
vector costs beyond 4.1 bytes a dimension is ${Math.round(overheads[0]!)} B at 768 and ${Math.round(overheads[1]!)} B at 1,536 dimensions: the key, object
and dictionary entry (about ${Math.round(binary768 - 3584)} B) and the allocator's rounding, which is not quite a constant (it grows with
the size class, hence the marginal cost above 4.1). ${overheads.every((overhead) => overhead <= 1024) ? 'Met if an overhead under 1 KiB a vector counts as that small constant' : 'Not met: the overhead exceeds 1 KiB a vector'}; JSON's is ${Math.round(median(memoryRows[1]!.usage) - 4.1 * 768).toLocaleString('en')} B and
${Math.round(median(memoryRows[3]!.usage) - 4.1 * 1536).toLocaleString('en')} B.

### A batch of ${BATCH} inputs through the cache

\`lookUpCached\` and \`embedWithCache\` (lookup, local provider for the misses, write-back) with ${LATENCY_DIMENSIONS} dimensions, ${RUNS} runs in rotating
order after a warm-up, the functions' own Redis client connected straight to Redis. Round trips counted in ${COUNTING_RUNS}
further runs through a counting TCP proxy; commands from \`INFO commandstats\` for one batch. The peer reads the same ${BATCH} vectors stored as LangChain's JSON with one MGET and parses them.

| batch | hits | round trips | commands | median ms | min – max ms | of which provider, median ms |
| --- | --- | --- | --- | --- | --- | --- |
${batchTable.join('\n')}
| peer: JSON, all hits | ${BATCH}/${BATCH} | ${median(peer.roundTrips)} | 1 MGET | ${ms(peerMedian)} | ${ms(Math.min(...peer.latencyMs))} – ${ms(Math.max(...peer.latencyMs))} | 0 |

All hits: ${oneRoundTrip ? 'one round trip in every run (goal met)' : 'more than one round trip in some run (goal not met)'}, ${(peerMedian / median(allHits.latencyMs)).toFixed(1)}× faster than the
JSON peer (its single MGET moves ${(jsonBytes / binaryBytes).toFixed(1)}× the bytes, then parses them). Misses add the provider's time and one
pipelined write: ${median(misses.roundTrips)} round trips for the whole batch, whatever the number of misses. On this shared
two-core machine the maxima are scheduling noise; the medians are the figures to compare. On a Redis Cluster the lookup and the write are one round trip
per node, all nodes at once (test \`embeddings-cache.test.ts\`).

Reproduce: \`npx node bench/embeddings.bench.ts [runs]\`.
`;
writeSection('embeddings', markdown);
process.stdout.write(markdown);
