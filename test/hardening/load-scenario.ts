// A bounded load test through `npm run dev` (serverless-offline, loopback only): autocannon sends
// a fixed number of requests per scenario over a fixed number of connections, so every run stops
// by itself. Scenarios: login, chat hits, chat misses (Claude's stand-in answering in a few ms),
// embeddings, then all of them mixed while the Redis behind the server is stopped and restarted.
// Redis's connected clients are sampled throughout. Shared by test/hardening/load.test.ts (small,
// in CI) and bench/load.bench.ts (bigger, written to BENCHMARKS.md).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { startAnthropicDouble } from '../doubles/anthropic.ts';
import { startDevServer } from '../support/dev-server.ts';
import { startStandaloneRedis } from '../support/redis.ts';
import { auditCaches, type CacheAudit } from './cache-integrity.ts';

export interface LoadOptions {
  connections: number;
  /** Requests per scenario. */
  amounts: { login: number; chatHit: number; chatMiss: number; embeddings: number; mixed: number };
  /** In the mixed scenario, Redis is stopped after a third of the requests and restarted once this many more were answered. */
  answeredDuringOutage: number;
  users: number;
}

export interface ScenarioReport {
  name: string;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
  /** Status codes counted by kind of request, e.g. `{ 'POST /chat (hit)': { 200: 950, 503: 50 } }`. */
  statuses: Record<string, Record<string, number>>;
  /** Requests sent but never answered, by kind (counted by the scenario, not by autocannon). */
  unanswered: Record<string, number>;
  /** Connection errors and time-outs seen by autocannon (a hung or dropped request). */
  errors: number;
  timeouts: number;
  /** Answers that broke the contract: a 5xx other than a 503 problem, or an error without a problem body. */
  offContract: string[];
}

export interface LoadReport {
  scenarios: ScenarioReport[];
  /** connected_clients of the Redis (the sampling client excluded): before, at most during, just before the outage, after. */
  redisClients: { before: number; maxDuring: number; beforeOutage: number; after: number };
  /** Milliseconds Redis was down during the mixed scenario, and the requests answered meanwhile. */
  outage: { ms: number; stoppedAfter: number; restartedAfter: number };
  /** After the mixed scenario: every user's session still valid, and a fresh burst all 2xx. */
  sessionsValidAfter: number;
  recoveryBurst: Record<string, number>;
  cache: CacheAudit;
  /** Secrets found in the dev server's output (must be empty). */
  secretsInOutput: string[];
  /** Function invocations as serverless-offline timed them: how many took over a second, the slowest. */
  invocations: { overOneSecond: number; slowestMs: number };
  /** Unhandled errors logged by the functions and Lambda time-outs reported by serverless-offline (first few). */
  unhandled: string[];
}

/** Mixed requests sent once Redis is back, to see the service recover. */
export const RECOVERY_BURST = 70;

interface Kind {
  name: string;
  request: () => autocannon.Request;
}

const json = { 'content-type': 'application/json' };
let sequence = 0;

function scenarioRequests(
  kinds: Kind[],
  statuses: ScenarioReport['statuses'],
  offContract: string[],
  unanswered: Record<string, number>,
): autocannon.Request[] {
  return kinds.map((kind) => ({
    ...kind.request(),
    setupRequest: (request: autocannon.Request) => {
      unanswered[kind.name] = (unanswered[kind.name] ?? 0) + 1;
      return { ...request, ...kind.request() };
    },
    onResponse: (status: number, body: string, _context: object, headers?: Record<string, unknown>) => {
      unanswered[kind.name] = (unanswered[kind.name] ?? 0) - 1;
      const byStatus = (statuses[kind.name] ??= {});
      byStatus[status] = (byStatus[status] ?? 0) + 1;
      const contentType = String(headers?.['content-type'] ?? headers?.['Content-Type'] ?? '');
      const offending = (status >= 500 && status !== 503) || (status >= 400 && !contentType.startsWith('application/problem+json'));
      if (offending && offContract.length < 20) offContract.push(`${kind.name}: ${status} ${body.slice(0, 200)}`);
    },
  }));
}

async function run(
  name: string,
  baseUrl: string,
  kinds: Kind[],
  amount: number,
  connections: number,
  onProgress?: (answered: number) => void,
): Promise<ScenarioReport> {
  const statuses: ScenarioReport['statuses'] = {};
  const offContract: string[] = [];
  const unanswered: Record<string, number> = {};
  const requests = scenarioRequests(kinds, statuses, offContract, unanswered);
  let answered = 0;
  if (onProgress) {
    for (const request of requests) {
      const inner = request.onResponse as (...args: unknown[]) => void;
      request.onResponse = (...args: unknown[]) => {
        inner(...args);
        answered += 1;
        onProgress(answered);
      };
    }
  }
  const started = performance.now();
  const result = await autocannon({ url: baseUrl, connections, amount, timeout: 10, requests });
  const seconds = (performance.now() - started) / 1000;
  return {
    name,
    requests: result.requests.total,
    seconds: Math.round(seconds * 10) / 10,
    requestsPerSecond: Math.round(result.requests.total / seconds),
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
    statuses,
    unanswered: Object.fromEntries(Object.entries(unanswered).filter(([, count]) => count > 0)),
    errors: result.errors,
    timeouts: result.timeouts,
    offContract,
  };
}

async function post(baseUrl: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const response = await fetch(`${baseUrl}${path}`, { method: 'POST', headers: { ...json, ...headers }, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, json: text === '' ? undefined : JSON.parse(text) };
}

async function connectedClients(admin: Redis): Promise<number> {
  const info = await admin.info('clients');
  return Number(/connected_clients:(\d+)/.exec(info)?.[1] ?? 0) - 1; // not counting the sampler
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tc-load-'));
  const redis = await startStandaloneRedis({ dir: dataDir });
  const admin = new Redis({ port: redis.port, host: '127.0.0.1', maxRetriesPerRequest: null });
  admin.on('error', () => {}); // reconnects by itself after the restart
  const claude = await startAnthropicDouble();
  claude.defaultDelayMs = 5; // a miss costs a round trip to "Claude"
  const dev = await startDevServer({
    REDIS_URL: redis.url,
    ...claude.env,
    CHAT_PROVIDER: 'anthropic',
    PASSWORD_SCRYPT_LOG2N: '14',
    RATE_LIMIT_CHAT: '1000000/1m',
    RATE_LIMIT_EMBEDDINGS: '10000000/1m',
    RATE_LIMIT_LOGIN: '1000000/1m',
    RATE_LIMIT_LOGIN_ACCOUNT: '1000000/1m',
    LOG_LEVEL: 'warn',
  });
  let sampling = true;
  let maxDuring = 0;
  const sampler = (async () => {
    while (sampling) {
      maxDuring = Math.max(maxDuring, await connectedClients(admin).catch(() => 0));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();

  try {
    const before = await connectedClients(admin);
    const users: Array<{ email: string; password: string; token: string; question: string }> = [];
    for (let i = 0; i < options.users; i += 1) {
      const credentials = { email: `load-${i}-${Date.now()}@example.test`, password: `load password number ${i}` };
      if ((await post(dev.baseUrl, '/auth/register', credentials)).status !== 201) throw new Error('registration failed');
      const login = await post(dev.baseUrl, '/auth/login', credentials);
      const question = `What is a derivative? (user ${i})`;
      const asked = await post(dev.baseUrl, '/chat', { messages: [{ role: 'user', content: question }] }, { authorization: `Bearer ${login.json.token}` });
      if (asked.status !== 200) throw new Error(`warm-up chat failed: ${asked.status}`);
      users.push({ ...credentials, token: login.json.token, question });
    }
    const someone = () => users[(sequence += 1) % users.length]!;
    const auth = (token: string) => ({ ...json, authorization: `Bearer ${token}` });
    const kinds: Record<string, Kind> = {
      login: {
        name: 'POST /auth/login',
        request: () => {
          const { email, password } = someone();
          return { method: 'POST', path: '/auth/login', headers: json, body: JSON.stringify({ email, password }) };
        },
      },
      chatHit: {
        name: 'POST /chat (hit)',
        request: () => {
          const user = someone();
          return { method: 'POST', path: '/chat', headers: auth(user.token), body: JSON.stringify({ messages: [{ role: 'user', content: user.question }] }) };
        },
      },
      chatMiss: {
        name: 'POST /chat (miss)',
        request: () => {
          const user = someone();
          const content = `Question ${(sequence += 1)} at ${Date.now()}: why?`;
          return { method: 'POST', path: '/chat', headers: auth(user.token), body: JSON.stringify({ messages: [{ role: 'user', content }] }) };
        },
      },
      embeddings: {
        name: 'POST /embeddings',
        request: () => {
          const user = someone();
          // Half the texts repeat (hits), half are new (misses).
          const input = [`shared text ${sequence % 50}`, `new text ${(sequence += 1)} ${Date.now()}`];
          return { method: 'POST', path: '/embeddings', headers: auth(user.token), body: JSON.stringify({ input }) };
        },
      },
    };

    const { connections, amounts } = options;
    const scenarios = [
      await run('login', dev.baseUrl, [kinds.login!], amounts.login, connections),
      await run('chat hits', dev.baseUrl, [kinds.chatHit!], amounts.chatHit, connections),
      await run('chat misses', dev.baseUrl, [kinds.chatMiss!], amounts.chatMiss, connections),
      await run('embeddings', dev.baseUrl, [kinds.embeddings!], amounts.embeddings, connections),
    ];

    // Mixed, with Redis stopped after a third of the requests and started again a little later.
    const mixedKinds = [kinds.chatHit!, kinds.chatHit!, kinds.chatHit!, kinds.chatMiss!, kinds.embeddings!, kinds.embeddings!, kinds.login!];
    const outage = { ms: 0, stoppedAfter: 0, restartedAfter: 0 };
    const beforeOutage = await connectedClients(admin);
    let stopped: Promise<number> | undefined; // resolves with the instant Redis was down
    let restarted: Promise<void> | undefined;
    const restart = (answered: number) => {
      outage.restartedAfter = answered;
      restarted = stopped!.then(async (downSince) => {
        await redis.restart();
        outage.ms = Math.round(performance.now() - downSince);
      });
    };
    const mixed = await run('mixed, Redis restarted midway', dev.baseUrl, mixedKinds, amounts.mixed, connections, (answered) => {
      if (stopped === undefined && answered >= amounts.mixed / 3) {
        outage.stoppedAfter = answered;
        stopped = redis.stop().then(() => performance.now());
      } else if (stopped !== undefined && restarted === undefined && answered >= outage.stoppedAfter + options.answeredDuringOutage) {
        restart(answered);
      }
    });
    scenarios.push(mixed);
    if (stopped === undefined) throw new Error('the mixed scenario ended before Redis was stopped');
    if (restarted === undefined) restart(amounts.mixed); // the run ended first (very fast 503s)
    await restarted;

    await new Promise((resolve) => setTimeout(resolve, 300));
    const recovery = await run('recovery burst', dev.baseUrl, mixedKinds, RECOVERY_BURST, connections);
    const recoveryBurst: Record<string, number> = {};
    for (const byStatus of Object.values(recovery.statuses)) {
      for (const [status, count] of Object.entries(byStatus)) recoveryBurst[status] = (recoveryBurst[status] ?? 0) + count;
    }
    let sessionsValidAfter = 0;
    for (const user of users) {
      const response = await fetch(`${dev.baseUrl}/auth/session`, { headers: { authorization: `Bearer ${user.token}` } });
      if (response.status === 200) sessionsValidAfter += 1;
    }
    const cache = await auditCaches(admin, 384);
    sampling = false;
    await sampler;
    const after = await connectedClients(admin);

    const output = dev.output();
    const secretsInOutput = [
      ...users.flatMap((user) => [user.token, user.password]).filter((secret) => output.includes(secret)).map(() => 'a user token or password'),
      ...(output.includes(claude.apiKey) ? ['the Anthropic API key'] : []),
    ];
    const durations = [...output.matchAll(/Duration: ([\d.]+) ms/g)].map((match) => Number(match[1]));
    const invocations = { overOneSecond: durations.filter((ms) => ms > 1000).length, slowestMs: Math.round(Math.max(0, ...durations)) };
    const unhandled = output
      .split('\n')
      .filter((line) => line.includes('"message":"unhandled error"') || line.includes('Lambda timeout'))
      .slice(0, 10)
      .map((line) => line.slice(0, 400));
    return {
      scenarios,
      redisClients: { before, maxDuring, beforeOutage, after },
      outage,
      sessionsValidAfter,
      recoveryBurst,
      cache,
      secretsInOutput,
      invocations,
      unhandled,
    };
  } finally {
    sampling = false;
    await sampler;
    await dev.stop();
    await claude.close();
    admin.disconnect();
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The report as a Markdown table (for BENCHMARKS.md and RELIABILITY.md). */
export function loadTable(report: LoadReport): string {
  const rows = report.scenarios.map((scenario) => {
    const statuses = Object.entries(scenario.statuses)
      .map(([kind, byStatus]) => `${kind}: ${Object.entries(byStatus).map(([status, count]) => `${status}×${count}`).join(' ')}`)
      .join('<br>');
    return `| ${scenario.name} | ${scenario.requests} | ${scenario.requestsPerSecond} | ${scenario.latencyMs.p50} | ${scenario.latencyMs.p99} | ${scenario.errors + scenario.timeouts} | ${statuses} |`;
  });
  return [
    '| scenario | requests | req/s | p50 ms | p99 ms | connection errors | status codes by kind |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows,
  ].join('\n');
}
