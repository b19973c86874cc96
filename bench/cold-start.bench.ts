// Cold start, beside the peer composition (bench/peer/) measured in the same run, both built with
// the esbuild settings of serverless.yml:
//   1. bundle size of every function;
//   2. init: process start to handler imported;
//   3. cold first request: process start to the first response of a fresh process, which reads
//      the Redis URL from Secrets Manager (a local double), connects to Redis and answers (login,
//      a cached chat answer, cached embeddings).
// Each measured process is fresh, spawned asynchronously (the doubles live in this process and
// must keep answering), and reports its own `process.uptime()` (the time since it started). Not
// `performance.now()`: the first read of the `performance` global loads perf_hooks, half a
// millisecond that the measurement would add to whichever side does not load it by itself.

import { spawn } from 'node:child_process';
import { randomBytes, randomUUID, scryptSync } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, rmSync, statSync } from 'node:fs';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { startRedisServer, type RedisServer } from '../infra/local/redis-server.ts';
import { startAnthropicDouble } from '../test/doubles/anthropic.ts';
import { startOpenAiEmbeddingsDouble } from '../test/doubles/openai-embeddings.ts';
import { startSecretsManagerDouble } from '../test/doubles/secrets-manager.ts';
import { httpEvent } from '../test/support/lambda.ts';
import { bundle, root } from './bundle.ts';
import { machineLine, median, writeSection } from './report.ts';

// `npx node bench/cold-start.bench.ts [init runs] [request runs]`
const INIT_RUNS = Number(process.argv[2] ?? 15);
const REQUEST_RUNS = Number(process.argv[3] ?? 10);
const OUT = 'cold-start';

// ---------------------------------------------------------------------------------------------
// Measured processes

/** A fresh process imports FILE (nothing else when FILE is empty) and prints its age in ms. */
const IMPORT_SCRIPT = `
if (process.env.BENCH_FILE) await import(process.env.BENCH_FILE);
console.log(process.uptime() * 1000);
process.exit(0);
`;

/** A fresh process imports FILE, invokes its handler once with EVENT and prints what it got. */
const REQUEST_SCRIPT = `
const { handler } = await import(process.env.BENCH_FILE);
const context = {
  callbackWaitsForEmptyEventLoop: true, functionName: 'bench', functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:bench', memoryLimitInMB: '512',
  awsRequestId: 'cold-start-bench', logGroupName: 'bench', logStreamName: 'bench',
  getRemainingTimeInMillis: () => 10000,
};
const result = await handler(JSON.parse(process.env.BENCH_EVENT), context);
const ms = process.uptime() * 1000;
const cpu = process.cpuUsage();
const headers = Object.fromEntries(Object.entries(result.headers ?? {}).map(([name, value]) => [name.toLowerCase(), String(value)]));
console.log(JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, status: result.statusCode, headers, body: result.statusCode === 200 ? '' : result.body }));
process.exit(0);
`;

/**
 * A fresh process times one scrypt derivation of cost 2^BENCH_SCRYPT_LOG2N (r = 8, p = 1, as both
 * logins use): the part of a login that is the password hash. A fresh process, because a login's
 * derivation is its process's first: the thread pool starts and the memory is mapped for it, which
 * makes a first derivation 1.5 ms (N=2^14) to 7 ms (N=2^17) slower than the next.
 */
const HASH_SCRIPT = `
const { scrypt } = await import('node:crypto');
const N = 2 ** Number(process.env.BENCH_SCRYPT_LOG2N);
const started = performance.now();
await new Promise((resolve, reject) => scrypt('a bench password', 'a bench salt', 64, { N, r: 8, p: 1, maxmem: 256 * N * 8 }, (error) => (error ? reject(error) : resolve())));
console.log(performance.now() - started);
process.exit(0);
`;

async function runChild(script: string, env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env, cwd: root });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${env['BENCH_FILE'] ?? 'bare node'} exited with ${code}: ${output}`);
  return output.trim().split('\n').pop() ?? '';
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: bundle size and init

interface Bundled {
  name: string;
  file: string;
  kilobytes: number;
  initMs: number[];
}

function formatInitRow(ours: Bundled, peer: Bundled | undefined, bare: number): string {
  const init = median(ours.initMs) - bare;
  const range = `${(Math.min(...ours.initMs) - bare).toFixed(0)}–${(Math.max(...ours.initMs) - bare).toFixed(0)}`;
  const peerCells = peer
    ? `${peer.kilobytes.toFixed(0)} KB | ${(median(peer.initMs) - bare).toFixed(0)} ms | ${(ours.kilobytes / peer.kilobytes).toFixed(2)}× | ${(init / (median(peer.initMs) - bare)).toFixed(2)}×`
    : '— | — | — | —';
  return `| ${ours.name} | ${ours.kilobytes.toFixed(0)} KB | ${init.toFixed(0)} ms (${range}) | ${peerCells} |`;
}

async function measureInit(targets: Bundled[], env: NodeJS.ProcessEnv): Promise<number> {
  const bareRuns: number[] = [];
  // Interleaved rounds: a noisy moment hits every target alike.
  for (let round = 0; round < INIT_RUNS; round += 1) {
    bareRuns.push(Number(await runChild(IMPORT_SCRIPT, env)));
    for (const target of targets) target.initMs.push(Number(await runChild(IMPORT_SCRIPT, { ...env, BENCH_FILE: target.file })));
  }
  return median(bareRuns);
}

// ---------------------------------------------------------------------------------------------
// 3: cold first request

interface Side {
  file: string;
  event: APIGatewayProxyEventV2;
  env: NodeJS.ProcessEnv;
  /** Throws unless the response is the path being measured (e.g. a cache hit). */
  check: (response: ChildResponse) => void;
  ms: number[];
  cpuMs: number[];
  /** Login only: one scrypt derivation's time in a fresh process, timed right after each request. */
  hashMs: number[];
}

interface Scenario {
  name: string;
  ours: Side;
  peer: Side;
}

interface ChildResponse {
  ms: number;
  cpuMs: number;
  status: number;
  headers: Record<string, string>;
  body: string;
}

async function coldRequest(side: Side): Promise<ChildResponse> {
  const response = JSON.parse(
    await runChild(REQUEST_SCRIPT, { ...side.env, BENCH_FILE: side.file, BENCH_EVENT: JSON.stringify(side.event) }),
  ) as ChildResponse;
  side.check(response);
  return response;
}

function expectStatus(status: number, what: string): (response: ChildResponse) => void {
  return (response) => {
    if (response.status !== status) throw new Error(`${what}: expected ${status}, got ${response.status} ${response.body}`);
  };
}

function expectHeader(name: string, value: string, what: string): (response: ChildResponse) => void {
  return (response) => {
    expectStatus(200, what)(response);
    if (response.headers[name] !== value) throw new Error(`${what}: expected ${name}: ${value}, got ${response.headers[name]}`);
  };
}

const PASSWORD = 'correct horse battery staple';
// A model the Anthropic SDK does not warn about (it prints a deprecation notice for some).
const CHAT_BODY = { model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'Explain recursion to a beginner with one short example.' }] };
const EMBEDDING_INPUTS = ['photosynthesis', 'the Pythagorean theorem', 'mitosis and meiosis', 'supply and demand'];

/** A user and a session of our own, made through our register and login code (source, in this process). */
async function prepareOurs(redis: RedisServer, log2N: number): Promise<{ email: string; token: string }> {
  const { useEnvironment } = await import('../test/support/env.ts');
  const { callRegister, callLogin } = await import('../test/support/session.ts');
  await useEnvironment({ REDIS_URL: redis.url, PASSWORD_SCRYPT_LOG2N: String(log2N), LOG_LEVEL: 'error' });
  const email = `bench-${randomUUID()}@example.test`;
  const registered = await callRegister({ email, password: PASSWORD });
  if (registered.statusCode !== 201) throw new Error(`register: ${registered.statusCode} ${registered.body}`);
  const loggedIn = await callLogin({ email, password: PASSWORD });
  if (loggedIn.statusCode !== 200) throw new Error(`login: ${loggedIn.statusCode} ${loggedIn.body}`);
  await useEnvironment({});
  return { email, token: loggedIn.json.token as string };
}

/** The same for the peer, in its own key format. */
async function preparePeer(redis: RedisServer, log2N: number): Promise<{ email: string; token: string }> {
  const { Redis } = await import('ioredis');
  const client = new Redis(redis.url);
  const id = randomUUID();
  const email = `peer-${id}@example.test`;
  const salt = randomBytes(16);
  const N = 2 ** log2N;
  const hash = scryptSync(PASSWORD, salt, 64, { N, r: 8, p: 1, maxmem: 256 * N * 8 });
  const token = randomBytes(32).toString('base64url');
  await client.set(`peer:user:${email}`, JSON.stringify({ id, salt: salt.toString('base64'), hash: hash.toString('base64'), log2N }));
  await client.set(`peer:session:${token}`, JSON.stringify({ id }), 'EX', 86_400);
  client.disconnect();
  return { email, token };
}

/** One line of the table: a request's times, ours and the peer's, run by run. */
interface MeasuredRow {
  name: string;
  ours: number[];
  peer: number[];
  /** The last column. */
  cpu: string;
}

/** A scenario's rows: its requests, and for a login the same less its password hash. */
function measuredRows(scenario: Scenario): MeasuredRow[] {
  const { ours, peer } = scenario;
  const cpuRatio = median(ours.cpuMs) / median(peer.cpuMs);
  const rows = [{ name: scenario.name, ours: ours.ms, peer: peer.ms, cpu: `${median(ours.cpuMs).toFixed(0)} / ${median(peer.cpuMs).toFixed(0)} ms = ${cpuRatio.toFixed(2)}×` }];
  if (ours.hashMs.length === ours.ms.length && peer.hashMs.length === peer.ms.length) {
    const withoutHash = (side: Side) => side.ms.map((ms, index) => ms - side.hashMs[index]!);
    const cpu = `hash ${median(ours.hashMs).toFixed(0)} / ${median(peer.hashMs).toFixed(0)} ms`;
    rows.push({ name: `${scenario.name}, less one scrypt derivation`, ours: withoutHash(ours), peer: withoutHash(peer), cpu });
  }
  return rows;
}

const ratioOf = (row: MeasuredRow) => median(row.ours) / median(row.peer);

function formatRow(row: MeasuredRow): string {
  const cell = (values: number[]) => `${median(values).toFixed(0)} ms (${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)})`;
  // Per-round ratios show whether the median ratio is stable or an artefact of a noisy moment.
  const perRound = row.ours.map((ms, index) => ms / row.peer[index]!);
  return `| ${row.name} | ${cell(row.ours)} | ${cell(row.peer)} | **${ratioOf(row).toFixed(2)}×** (${Math.min(...perRound).toFixed(2)}–${Math.max(...perRound).toFixed(2)}) | ${row.cpu} |`;
}

const GOAL_RATIO = 0.4;

function goalSummary(rows: MeasuredRow[]): string {
  return rows.map((row) => `${row.name}: ${ratioOf(row).toFixed(2)}× (${ratioOf(row) <= GOAL_RATIO ? 'met' : '**not met**'})`).join('; ');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const baseEnv = { ...process.env };
  delete baseEnv['REDIS_URL'];
  const redis = await startRedisServer();
  const [secrets, anthropic, openai] = await Promise.all([startSecretsManagerDouble(), startAnthropicDouble(), startOpenAiEmbeddingsDouble()]);
  secrets.setSecret('redis', redis.url);
  // Every measured process reads the Redis URL from the secret, as in AWS. The peer's secrets
  // middleware fetches at init (its prefetch), so the secret must be readable for init too.
  const childEnv: NodeJS.ProcessEnv = {
    ...baseEnv,
    ...secrets.env,
    ...anthropic.env,
    ...openai.env(1536),
    // As deployed (serverless.yml's provider.environment, which sets no NODE_OPTIONS).
    NODE_OPTIONS: undefined,
    REDIS_SECRET_ID: 'redis',
    LOG_LEVEL: process.env['BENCH_LOG_LEVEL'] ?? 'error',
    // High limits of the production shape (a burst and a daily policy): every run is admitted.
    RATE_LIMIT_CHAT: '1000000/1m,1000000/1d',
    RATE_LIMIT_EMBEDDINGS: '1000000/1m',
  };

  rmSync(`${root}bench/.out/${OUT}`, { recursive: true, force: true });
  const functions = readdirSync(`${root}functions`).filter((file) => file.endsWith('.ts')).map((file) => file.slice(0, -3));
  const peers = readdirSync(`${root}bench/peer`).filter((file) => file.endsWith('.ts') && file !== 'common.ts').map((file) => file.slice(0, -3));
  const targets: Bundled[] = [];
  for (const name of functions) targets.push({ name, file: await bundle(`functions/${name}.ts`, name, OUT), kilobytes: 0, initMs: [] });
  for (const name of peers) targets.push({ name: `peer-${name}`, file: await bundle(`bench/peer/${name}.ts`, `peer-${name}`, OUT, 'peer'), kilobytes: 0, initMs: [] });
  for (const target of targets) target.kilobytes = statSync(target.file).size / 1024;
  const byName = new Map(targets.map((target) => [target.name, target]));

  // 1 and 2
  const bare = await measureInit(targets, childEnv);
  const peerFor: Record<string, string> = { chat: 'peer-chat', embeddings: 'peer-embeddings', 'auth-login': 'peer-login' };
  const initRows = functions.map((name) => formatInitRow(byName.get(name)!, byName.get(peerFor[name] ?? ''), bare));

  // 3
  // One after the other: preparing ours switches this process's environment.
  const ours14 = await prepareOurs(redis, 14);
  const ours17 = await prepareOurs(redis, 17);
  const oursUser = await prepareOurs(redis, 14);
  const [peer14, peer17, peerUser] = await Promise.all([preparePeer(redis, 14), preparePeer(redis, 17), preparePeer(redis, 14)]);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const side = (name: string, event: APIGatewayProxyEventV2, check: Side['check'], env: NodeJS.ProcessEnv = {}): Side => ({
    file: byName.get(name)!.file,
    event,
    env: { ...childEnv, ...env },
    check,
    ms: [],
    cpuMs: [],
    hashMs: [],
  });
  const login = (email: string) => httpEvent('POST', '/auth/login', { body: { email, password: PASSWORD }, sourceIp: '198.18.0.1' });
  const scenarios: Scenario[] = [
    {
      name: 'login, scrypt N=2^17 (production)',
      ours: side('auth-login', login(ours17.email), expectStatus(200, 'login'), { PASSWORD_SCRYPT_LOG2N: '17', BENCH_SCRYPT_LOG2N: '17' }),
      peer: side('peer-login', login(peer17.email), expectStatus(200, 'peer login'), { BENCH_SCRYPT_LOG2N: '17' }),
    },
    {
      name: 'login, scrypt N=2^14',
      ours: side('auth-login', login(ours14.email), expectStatus(200, 'login'), { PASSWORD_SCRYPT_LOG2N: '14', BENCH_SCRYPT_LOG2N: '14' }),
      peer: side('peer-login', login(peer14.email), expectStatus(200, 'peer login'), { BENCH_SCRYPT_LOG2N: '14' }),
    },
    {
      name: 'chat, cached answer',
      ours: side('chat', httpEvent('POST', '/chat', { body: CHAT_BODY, headers: bearer(oursUser.token) }), expectHeader('x-cache', 'HIT', 'chat')),
      peer: side('peer-chat', httpEvent('POST', '/chat', { body: CHAT_BODY, headers: bearer(peerUser.token) }), expectHeader('x-cache', 'HIT', 'peer chat')),
    },
    {
      name: `embeddings, ${EMBEDDING_INPUTS.length} cached inputs`,
      ours: side(
        'embeddings',
        httpEvent('POST', '/embeddings', { body: { input: EMBEDDING_INPUTS, model: 'text-embedding-3-small' }, headers: bearer(oursUser.token) }),
        expectHeader('x-cache-hits', `${EMBEDDING_INPUTS.length}/${EMBEDDING_INPUTS.length}`, 'embeddings'),
      ),
      peer: side(
        'peer-embeddings',
        httpEvent('POST', '/embeddings', { body: { input: EMBEDDING_INPUTS, model: 'text-embedding-3-small' }, headers: bearer(peerUser.token) }),
        expectHeader('x-cache-hits', `${EMBEDDING_INPUTS.length}/${EMBEDDING_INPUTS.length}`, 'peer embeddings'),
      ),
    },
  ];
  // One unmeasured process per side fills the caches (each in its own key format) and the OS file cache.
  for (const scenario of scenarios) {
    for (const warming of [scenario.ours, scenario.peer]) {
      await coldRequest({ ...warming, check: expectStatus(200, `warm-up of ${scenario.name}`) });
    }
  }
  const upstreamCalls = () => anthropic.calls + openai.requests.length;
  const callsBefore = upstreamCalls();
  for (let round = 0; round < REQUEST_RUNS; round += 1) {
    for (const scenario of scenarios) {
      // Alternate who goes first, so neither always runs right after the other's disk and CPU work.
      const order = round % 2 === 0 ? [scenario.ours, scenario.peer] : [scenario.peer, scenario.ours];
      for (const measured of order) {
        const { ms, cpuMs } = await coldRequest(measured);
        measured.ms.push(ms);
        measured.cpuMs.push(cpuMs);
        const log2N = measured.env['BENCH_SCRYPT_LOG2N'];
        if (log2N !== undefined) measured.hashMs.push(Number(await runChild(HASH_SCRIPT, { ...measured.env, BENCH_SCRYPT_LOG2N: log2N })));
      }
    }
  }
  if (upstreamCalls() !== callsBefore) throw new Error('a measured request was not served from the cache');

  const rows = scenarios.flatMap(measuredRows);
  const markdown = `## Cold start: bundle size, init time, first request

${machineLine()}. Bundles built as deployed (serverless.yml: esbuild, minified, ESM, external
source maps, AWS SDK left to the runtime, \`debug\` replaced by an always-off stub, \`assert\` loaded on
first use, the plugins of infra/bundling/plugins.cjs) and run as deployed (no \`NODE_OPTIONS\`). The peer is the same handler assembled from
popular parts (bench/peer/: middy with @middy/secrets-manager, full zod, rate-limiter-flexible,
the full Anthropic and OpenAI SDKs, eager imports), built the same way but with the real \`debug\`
and \`assert\` and without the plugins, as a team would build it, run the same way, measured in the
same run, interleaved with ours.

### Bundle size and init

Init = \`process.uptime()\` (time since process start; \`performance.now()\` would load perf_hooks
and add its half millisecond to the side that does not) once \`await import(bundle)\` has resolved,
minus the same in a bare \`node -e\` (median ${bare.toFixed(0)} ms); median of ${INIT_RUNS} interleaved runs (min–max).
Goals: every function under 250 KB, chat under 300 KB, init under 45 ms above bare Node.

| function | bundle | init | peer bundle | peer init | bundle ratio | init ratio |
| --- | --- | --- | --- | --- | --- | --- |
${initRows.join('\n')}

### Cold first request

A fresh process per run imports the bundle and invokes its handler once with an API Gateway (HTTP
API 2.0) event; the time is the child's \`process.uptime()\` when the response is in, from its
own start: Node's start, init, the Redis URL read from Secrets Manager (a local double speaking
its wire protocol; \`REDIS_SECRET_ID\`), the connection to a local redis-server, and the answer.
Chat and embeddings are answered from the cache (filled beforehand by one unmeasured process per
side, each in its own key format; no provider is called during the measured runs). Median of
${REQUEST_RUNS} runs (min–max), ours and the peer alternating; the ratio is of the medians, with the range
of the per-run ratios. CPU: user + system time of the process up to the response, which a busy
machine disturbs less than the wall clock. Bare \`node -e\` in the same run: ${bare.toFixed(0)} ms.
Goal: at most ${GOAL_RATIO}× the peer.

| request | ours | peer | ours / peer | CPU ours / peer |
| --- | --- | --- | --- | --- |
${rows.map(formatRow).join('\n')}

Login runs one scrypt derivation by design, of the same cost for both (r = 8, p = 1, N as the row
says; N=2^17 is OWASP's minimum for scrypt), and no cold-start work can shorten it: with the
peer's other work brought to nothing, a production login would still be about two thirds of the
peer's. The goal can only apply to what is not the hash: the rows "less one scrypt derivation"
subtract, run by run, one derivation of the row's cost timed right after the request, in a fresh
process of its own (a login's derivation is its process's first, which is slower than the next:
the thread pool starts, the memory is mapped). With N=2^17 the derivation is five sixths of the
time, so that row's spread is wide; the N=2^14 row is the steadier measure of the same code.
In AWS the derivation runs at one core's speed too: register and login have 1,769 MB, one full
vCPU (serverless.yml); at the 512 MB of the other functions it would take about 3.5 times as long.

Against the goal, in this run: ${goalSummary(rows)}.

Reproduce: \`npx node bench/cold-start.bench.ts [init runs] [request runs]\`.
`;
  writeSection('cold-start', markdown);
  console.log(markdown);
  await Promise.all([secrets.close(), anthropic.close(), openai.close()]);
  await redis.stop();
}

await main();
