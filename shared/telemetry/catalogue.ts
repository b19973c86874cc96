// The metrics recorded on the request path (the scheduled flush's own are in flush-catalogue.ts,
// so that the other functions do not carry them): the recording functions create their series
// from these descriptors, and the Grafana dashboard test checks its queries against them, so a
// renamed metric cannot silently empty a panel. Names, units and attributes follow the
// OpenTelemetry semantic conventions where one exists (database client, GenAI client); the rest
// are ours, under `tutor.`.

export type InstrumentKind =
  /** Monotonic sum (Prometheus: counter, `_total`). */
  | 'counter'
  /** Non-monotonic sum (Prometheus: gauge). */
  | 'updowncounter'
  /** Last value (Prometheus: gauge). */
  | 'gauge'
  /** Explicit-bucket histogram (Prometheus: `_bucket`, `_sum`, `_count`). */
  | 'histogram';

export interface MetricDescriptor {
  name: string;
  kind: InstrumentKind;
  /** UCUM unit; `{...}` annotations are counts of things. */
  unit: string;
  description: string;
  /** The attribute names its points may carry (the dashboard test checks its labels against them). */
  attributes: readonly string[];
  /** Histogram bucket upper bounds. */
  boundaries?: readonly number[];
}

/**
 * The semantic conventions advise [0.001 … 10] s for db.client.operation.duration; Redis answers
 * within a millisecond, so finer buckets are added below 1 ms or p50 would be a guess.
 */
const REDIS_DURATION_BOUNDARIES = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** As advised by the GenAI semantic conventions for gen_ai.client.token.usage. */
const TOKEN_BOUNDARIES = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

export const METRICS = {
  redisOperationDuration: {
    name: 'db.client.operation.duration',
    kind: 'histogram',
    unit: 's',
    description: 'Duration of Redis commands as this client saw them, from write to reply.',
    attributes: ['db.system.name', 'db.operation.name', 'server.address', 'server.port', 'error.type', 'db.response.status_code'],
    boundaries: REDIS_DURATION_BOUNDARIES,
  },
  redisConnections: {
    name: 'db.client.connection.count',
    kind: 'updowncounter',
    unit: '{connection}',
    description: 'Redis connections this container holds open (one per node).',
    attributes: ['db.client.connection.pool.name', 'db.client.connection.state'],
  },
  cacheRequests: {
    name: 'tutor.cache.requests',
    kind: 'counter',
    unit: '{request}',
    description: 'Cache lookups by cache and outcome.',
    attributes: ['cache', 'outcome'],
  },
  rateLimitDecisions: {
    name: 'tutor.rate_limit.decisions',
    kind: 'counter',
    unit: '{decision}',
    description: 'Rate-limit checks by route and outcome.',
    attributes: ['route', 'outcome'],
  },
  tokenUsage: {
    name: 'gen_ai.client.token.usage',
    kind: 'histogram',
    unit: '{token}',
    description: 'Tokens per model call (Claude, embeddings provider).',
    attributes: ['gen_ai.operation.name', 'gen_ai.provider.name', 'gen_ai.request.model', 'gen_ai.token.type'],
    boundaries: TOKEN_BOUNDARIES,
  },
} as const satisfies Record<string, MetricDescriptor>;
