// Security checks across the whole service: no secret (Redis password, Anthropic key, embeddings
// key, session tokens, user passwords) in any log line or response, whatever happens; session
// tokens and passwords never at rest in Redis; one user's cached answers never served to another;
// the prod stage never talks plain text to Redis; a deployed bundle never prints ioredis's command
// trace (AUTH with the password), whatever DEBUG says.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { build } from 'esbuild';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as chat } from '../../functions/chat.ts';
import { handler as embeddings } from '../../functions/embeddings.ts';
import { handler as health } from '../../functions/health.ts';
import { handler as session } from '../../functions/auth-session.ts';
import { handler as usage } from '../../functions/usage.ts';
import { lambdaBuildOptions, projectRoot } from '../../infra/bundling/options.ts';
import { startAnthropicDouble, type AnthropicDouble } from '../doubles/anthropic.ts';
import { startOpenAiEmbeddingsDouble, type OpenAiEmbeddingsDouble } from '../doubles/openai-embeddings.ts';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../doubles/secrets-manager.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke, type InvokeResult } from '../support/lambda.ts';
import { captureOutput } from '../support/logs.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { startStandaloneRedis, startTlsRedis, type RedisServer, type TlsRedis } from '../support/redis.ts';
import { bearer, callLogin, callLogout, callRegister, callSession, uniqueEmail } from '../support/session.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { chatBody } from './traffic.ts';

/** A Redis password with characters that URLs, JSON and shells all treat specially. */
const REDIS_PASSWORD = 'r3dis"pa$$:w@rd/\\%é';
const ROTATED_PASSWORD = 'rotated"Pa55:w@rd/\\%ü';
const SECRET_ID = 'tutor/redis-security';
const FAST_AUTH = { PASSWORD_SCRYPT_LOG2N: '14' };

/**
 * Every form a secret could take in a log line or a body: as is, URL-encoded, JSON-escaped,
 * escaped as util.inspect quotes it (console.log, `debug`'s %o), base64.
 */
function formsOf(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  const inspected = inspect(secret).slice(1, -1);
  return [...new Set([secret, encodeURIComponent(secret), json, JSON.stringify(json).slice(1, -1), inspected, Buffer.from(secret).toString('base64')])];
}

function findSecrets(text: string, secrets: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [name, secret] of Object.entries(secrets)) {
    for (const form of formsOf(secret)) if (text.includes(form)) found.push(`${name} (as ${JSON.stringify(form)})`);
  }
  return found;
}

/** The whole response as a client sees it. */
const wire = (answer: InvokeResult) => `${answer.statusCode}\n${JSON.stringify(answer.headers)}\n${answer.body}`;

describe('secrets never leave the service', () => {
  let redis: RedisServer;
  let secretsManager: SecretsManagerDouble;
  let claude: AnthropicDouble;
  let provider: OpenAiEmbeddingsDouble;
  const answers: Array<{ label: string; answer: InvokeResult; allowedToken?: string }> = [];
  const secrets: Record<string, string> = {};
  let output = '';
  let admin: Redis;
  let dataDir: string;

  const redisUrl = (password: string) => `redis://:${encodeURIComponent(password)}@127.0.0.1:${redis.port}`;
  const environment = () => ({
    REDIS_URL: undefined,
    REDIS_SECRET_ID: SECRET_ID,
    ...secretsManager.env,
    ...claude.env,
    ...provider.env(32),
    CHAT_PROVIDER: 'anthropic',
    CHAT_TIMEOUT_MS: '1000',
    EMBEDDINGS_TIMEOUT_MS: '500',
    LOG_LEVEL: 'debug',
    RATE_LIMIT_CHAT: '100000/1m',
    ...FAST_AUTH,
  });
  const record = (label: string, answer: InvokeResult, allowedToken?: string) => {
    answers.push({ label, answer, ...(allowedToken === undefined ? {} : { allowedToken }) });
    return answer;
  };
  const ask = (token: string, content: string) => invoke(chat, httpEvent('POST', '/chat', { headers: bearer(token), body: chatBody(content) }));
  const embed = (token: string, input: string[]) => invoke(embeddings, httpEvent('POST', '/embeddings', { headers: bearer(token), body: { input } }));

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tc-security-'));
    redis = await startStandaloneRedis({ password: REDIS_PASSWORD, dir: dataDir });
    admin = new Redis({ port: redis.port, host: '127.0.0.1', password: REDIS_PASSWORD, maxRetriesPerRequest: null });
    admin.on('error', () => {});
    [secretsManager, claude, provider] = await Promise.all([startSecretsManagerDouble(), startAnthropicDouble(), startOpenAiEmbeddingsDouble()]);
    secretsManager.setSecret(SECRET_ID, redisUrl(REDIS_PASSWORD));
    Object.assign(secrets, {
      'Redis password': REDIS_PASSWORD,
      'rotated Redis password': ROTATED_PASSWORD,
      'Anthropic API key': claude.apiKey,
      'embeddings API key': provider.apiKey,
    });
    await useEnvironment(environment());

    const captured = captureOutput();
    try {
      await runEverything();
    } finally {
      captured.restore();
      output = captured.text();
    }
    // The checks below look for secrets in what was captured: on too little, they would pass on nothing.
    const gaps = gapsInCapture();
    if (gaps.length > 0) throw new Error(`the capture is too small for the checks to mean anything: ${gaps.join('; ')}`);
  }, 60_000);

  afterAll(async () => {
    await useEnvironment({});
    admin.disconnect();
    await Promise.all([secretsManager.close(), claude.close(), provider.close()]);
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Normal use, bad input, upstream failures, a Redis crash, a password rotation, a configuration error. */
  async function runEverything(): Promise<void> {
    const users = [];
    for (let i = 0; i < 3; i += 1) {
      const email = uniqueEmail();
      const password = `user ${i} password "with" quotes \\ and ${Date.now()}`;
      secrets[`password of user ${i}`] = password;
      record('register', await callRegister({ email, password, name: `User ${i}` }));
      const login = await callLogin({ email, password });
      record('login', login, login.json?.token);
      secrets[`token of user ${i}`] = login.json.token;
      users.push({ email, password, token: login.json.token as string });
    }
    const [ana, ben, cleo] = users as [(typeof users)[0], (typeof users)[0], (typeof users)[0]];

    // Bad input carrying secrets: wrong passwords, a password in malformed JSON, a token in a bad header.
    record('wrong password', await callLogin({ email: ana.email, password: `${ana.password}x` }));
    const malformed = { headers: { ...bearer(ana.token), 'content-type': 'application/json' }, body: `{"password": "${ana.password}"` };
    record('password in malformed JSON', await invoke(chat, httpEvent('POST', '/chat', malformed)));
    record('token in a malformed header', await callSessionWith(`Bearer ${ana.token}!!`));
    record('token with another scheme', await callSessionWith(`Basic ${ana.token}`));
    record('register with an invalid email', await callRegister({ email: 'not an email', password: ana.password }));
    record('duplicate registration', await callRegister({ email: ana.email, password: ana.password }));

    // Normal use.
    record('session', await callSession(ana.token));
    record('chat', await ask(ana.token, 'What is a fraction?'));
    record('chat hit', await ask(ana.token, 'What is a fraction?'));
    record('embeddings', await embed(ana.token, ['alpha', 'beta']));
    record('usage', await invoke(usage, httpEvent('GET', '/usage', { headers: bearer(ana.token) })));
    record('health', await invoke(health, httpEvent('GET', '/health')));

    // Upstream failures whose messages echo the credentials we sent.
    claude.script(
      { status: 500, message: 'internal error for key {key}' },
      { status: 500, message: 'internal error for key {key}' },
      { status: 429, retryAfter: 3, message: 'rate limited: {key}' },
      { status: 401, message: 'invalid x-api-key {key}' },
      { drop: true },
      { drop: true },
    );
    for (let i = 1; i <= 4; i += 1) record(`Claude failing (${i})`, await ask(ben.token, `Claude fails ${i}`));
    provider.failure = { status: 401, body: JSON.stringify({ error: { message: `Incorrect API key provided: ${provider.apiKey}` } }) };
    record('embeddings 401', await embed(ben.token, ['gamma']));
    provider.failure = { status: 500, body: `upstream exploded; Authorization: Bearer ${provider.apiKey}` };
    record('embeddings 500', await embed(ben.token, ['delta']));
    provider.failure = undefined;
    provider.delayMs = 2_000;
    record('embeddings time-out', await embed(ben.token, ['epsilon']));
    provider.delayMs = 0;

    // Redis crashes and comes back (its data kept in an append-only file); then its password is rotated.
    await redis.kill();
    record('session while Redis is down', await callSession(cleo.token));
    record('login while Redis is down', await callLogin({ email: cleo.email, password: cleo.password }));
    await redis.restart();
    await new Promise((resolve) => setTimeout(resolve, 300));
    record('session after the restart', await callSession(cleo.token));
    await admin.config('SET', 'requirepass', ROTATED_PASSWORD);
    secretsManager.setSecret(SECRET_ID, redisUrl(ROTATED_PASSWORD));
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    record('session after the rotation', await callSession(cleo.token));
    record('chat after the rotation', await ask(cleo.token, 'What is a ratio?'));

    // Logging out; a token used after logout.
    record('logout', await callLogout(cleo.token));
    record('session after logout', await callSession(cleo.token));

    // A configuration mistake that names the Redis URL (prod refuses plain text).
    await useEnvironment({ ...environment(), STAGE: 'prod' });
    record('prod with a plain-text Redis', await callSession(ana.token));
    await useEnvironment({ ...environment(), REDIS_SECRET_ID: undefined, REDIS_URL: redisUrl(ROTATED_PASSWORD), STAGE: 'prod' });
    record('prod with a plain-text REDIS_URL', await callSession(ana.token));
    await useEnvironment(environment());
  }

  function callSessionWith(authorization: string): Promise<InvokeResult> {
    return invoke(session, httpEvent('GET', '/auth/session', { headers: { authorization } }));
  }

  /** What the run should have logged and answered at debug level, and did not. */
  function gapsInCapture(): string[] {
    const gaps: string[] = [];
    const logLines = output.split('\n').filter((line) => line.startsWith('{')).length;
    if (logLines <= 40) gaps.push(`${logLines} log lines`);
    if (!output.includes('WRONGPASS')) gaps.push('the password rotation was not logged');
    // Upstream errors echoing our keys were logged, scrubbed: secrets did reach the logger.
    if (!/internal error for key \*\*\*/.test(output)) gaps.push("Claude's error echoing the key was not logged");
    if (!/Incorrect API key provided: \*\*\*/.test(output)) gaps.push("the embeddings provider's error echoing the key was not logged");
    const statuses = new Set(answers.map((entry) => entry.answer.statusCode));
    const missing = [200, 201, 204, 400, 401, 409, 429, 500, 502, 503].filter((status) => !statuses.has(status));
    if (missing.length > 0) gaps.push(`no answer with status ${missing.join(', ')}`);
    return gaps;
  }

  it('no log line holds a secret in any form', () => {
    expect(findSecrets(output, secrets)).toEqual([]);
  });

  it('no response holds a secret, except each login answer its own new token', () => {
    const leaks = answers.flatMap(({ label, answer, allowedToken }) => {
      const visible = allowedToken === undefined ? wire(answer) : wire(answer).replace(allowedToken, '<own token>');
      return findSecrets(visible, secrets).map((leak) => `${label}: ${leak}`);
    });
    expect(leaks).toEqual([]);
  });

  it('Redis holds no session token and no password, only their hashes', async () => {
    const everything = await everythingIn(admin);
    const atRest = Object.fromEntries(Object.entries(secrets).filter(([name]) => name.startsWith('token') || name.startsWith('password')));

    expect(Object.keys(atRest)).toHaveLength(6);
    expect(findSecrets(everything, atRest)).toEqual([]);
  });
});

/** Every key and every value in Redis, as text (type by type) and as DUMP bytes. */
async function everythingIn(admin: Redis): Promise<string> {
  const parts: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await admin.type(key);
      parts.push(key);
      if (type === 'string') parts.push((await admin.getBuffer(key))?.toString('latin1') ?? '');
      if (type === 'hash') parts.push(JSON.stringify(await admin.hgetall(key)));
      if (type === 'zset') parts.push(JSON.stringify(await admin.zrange(key, '0', '-1', 'WITHSCORES')));
      if (type === 'set') parts.push(JSON.stringify(await admin.smembers(key)));
      if (type === 'list') parts.push(JSON.stringify(await admin.lrange(key, 0, -1)));
      parts.push((await admin.dumpBuffer(key))?.toString('latin1') ?? '');
    }
  } while (cursor !== '0');
  return parts.join('\n');
}

describe('cached answers are scoped to their user', () => {
  const redis = useStandaloneRedis();
  let claude: AnthropicDouble;
  beforeAll(async () => {
    claude = await startAnthropicDouble();
  });
  afterAll(() => claude.close());

  it('serves each user only the answers it was given, in any order of asking, and never merges two users\' concurrent misses', async () => {
    await useEnvironment({ REDIS_URL: redis.server.url, ...claude.env, CHAT_PROVIDER: 'anthropic', CHAT_CACHE_SCOPE: 'user', ...FAST_AUTH });
    const users = [];
    for (let i = 0; i < 3; i += 1) {
      const email = uniqueEmail();
      await callRegister({ email, password: 'a long enough password' });
      users.push((await callLogin({ email, password: 'a long enough password' })).json.token as string);
    }
    const questions = ['What is a prime?', 'Why does ice float?', 'What is a verb?'].map((text) => `${text} ${Date.now()}`);
    const ask = (token: string, question: string) => invoke(chat, httpEvent('POST', '/chat', { headers: bearer(token), body: chatBody(question) }));

    // Every user asks every question at the same time: one call per (user, question), none shared.
    const first = await Promise.all(users.flatMap((token) => questions.map((question) => ask(token, question))));
    // Then again, in reverse order: each user gets back exactly its own answer.
    const again = await Promise.all([...users].reverse().flatMap((token) => [...questions].reverse().map((question) => ask(token, question))));

    expect(first.map((answer) => answer.headers['x-cache'])).toEqual(Array(9).fill('MISS'));
    expect(claude.calls).toBe(9);
    expect(new Set(first.map((answer) => answer.json.id)).size).toBe(9);
    const firstIds = first.map((answer) => answer.json.id as string);
    const againIds = [...again].reverse().map((answer) => answer.json.id as string);
    expect(again.map((answer) => answer.headers['x-cache'])).toEqual(Array(9).fill('HIT'));
    expect(againIds).toEqual(firstIds);
  });
});

describe('the prod stage and plain-text Redis', () => {
  let redis: RedisServer;
  let tls: TlsRedis;
  let secretsManager: SecretsManagerDouble;
  beforeAll(async () => {
    [redis, tls, secretsManager] = await Promise.all([startStandaloneRedis(), startTlsRedis(), startSecretsManagerDouble()]);
  });
  afterAll(async () => {
    await useEnvironment({});
    await Promise.all([redis.stop(), tls.stop(), secretsManager.close()]);
  });

  const everyRoute = async () => [
    await callRegister({ email: uniqueEmail(), password: 'a long enough password' }),
    await callLogin({ email: uniqueEmail(), password: 'a long enough password' }),
    await callSession('A'.repeat(43)),
    await invoke(chat, httpEvent('POST', '/chat', { headers: bearer('A'.repeat(43)), body: chatBody('hi') })),
    await invoke(health, httpEvent('GET', '/health')),
  ];

  it('refuses a plain-text Redis from REDIS_URL or from the secret: a 5xx on every route, and not one byte sent to Redis', async () => {
    const proxy = await startTcpProxy(redis.port);
    const plainUrl = `redis://127.0.0.1:${proxy.port}`;
    secretsManager.setSecret('tutor/plain', plainUrl);
    const capture = captureOutput();
    let answers: InvokeResult[];
    try {
      await useEnvironment({ STAGE: 'prod', REDIS_URL: plainUrl, ...FAST_AUTH });
      answers = await everyRoute();
      await useEnvironment({ STAGE: 'prod', REDIS_URL: undefined, REDIS_SECRET_ID: 'tutor/plain', ...secretsManager.env, ...FAST_AUTH });
      answers.push(...(await everyRoute()));
    } finally {
      capture.restore();
    }

    for (const answer of answers) expect(answer.statusCode, answer.body).toBeGreaterThanOrEqual(500);
    expect(proxy.connections).toBe(0);
    expect(capture.text()).toContain('rediss://');
    await proxy.close();
  });

  it('talks to Redis over TLS in prod, and to plain text only when REDIS_ALLOW_PLAINTEXT says so', async () => {
    await useEnvironment({ STAGE: 'prod', REDIS_URL: tls.url, REDIS_TLS_CA_FILE: tls.tlsMaterial.ca, ...FAST_AUTH });
    const overTls = await invoke(health, httpEvent('GET', '/health'));
    await useEnvironment({ STAGE: 'prod', REDIS_URL: redis.url, REDIS_ALLOW_PLAINTEXT: 'true', ...FAST_AUTH });
    const allowed = await invoke(health, httpEvent('GET', '/health'));

    expect(overTls.statusCode).toBe(200);
    expect(allowed.statusCode).toBe(200);
  });
});

describe('ioredis\'s command trace (DEBUG=ioredis:*) in a deployed function', () => {
  let redis: RedisServer;
  let buildDir: string;
  const bundle = () => pathToFileURL(join(buildDir, 'health.mjs')).href;
  const source = pathToFileURL(join(projectRoot, 'functions/health.ts')).href;
  const traced = () => ({ DEBUG: 'ioredis:*', REDIS_URL: redis.url, LOG_LEVEL: 'debug' });

  beforeAll(async () => {
    buildDir = mkdtempSync(join(tmpdir(), 'tc-bundle-'));
    redis = await startStandaloneRedis({ password: REDIS_PASSWORD });
    await build({ ...lambdaBuildOptions(), entryPoints: [join(projectRoot, 'functions/health.ts')], outfile: join(buildDir, 'health.mjs') });
  }, 30_000);
  afterAll(async () => {
    await redis?.stop();
    rmSync(buildDir, { recursive: true, force: true });
  });

  it('prints no Redis password from the Lambda bundle, whose `debug` is always off, while the function authenticates to Redis', async () => {
    const run = await healthInFreshProcess(bundle(), traced());

    expect(run.statusCode, run.stderr).toBe(200);
    expect(findSecrets(`${run.stdout}\n${run.stderr}`, { 'Redis password': REDIS_PASSWORD })).toEqual([]);
  });

  it('prints AUTH with the password from the source, where `debug` is the real package (the check above is not vacuous)', async () => {
    const run = await healthInFreshProcess(source, traced());

    expect(run.statusCode, run.stderr).toBe(200);
    expect(run.stderr).toContain('auth(');
    expect(findSecrets(run.stderr, { 'Redis password': REDIS_PASSWORD })).not.toEqual([]);
  });
});

/** GET /health through the handler of `moduleUrl`, in a fresh process (as a Lambda container) with `env` added. */
function healthInFreshProcess(moduleUrl: string, env: Record<string, string>): Promise<{ statusCode: number; stdout: string; stderr: string }> {
  const script = `
const { handler } = await import(${JSON.stringify(moduleUrl)});
const answer = await handler(${JSON.stringify(httpEvent('GET', '/health'))}, { awsRequestId: 'trace', getRemainingTimeInMillis: () => 10_000 });
process.stdout.write('\\n' + JSON.stringify({ statusCode: answer.statusCode }) + '\\n');
process.exit(0); // the open Redis connection would keep the process alive`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}: ${stderr}`));
      else resolve({ statusCode: JSON.parse(stdout.trimEnd().split('\n').at(-1) ?? '{}').statusCode, stdout, stderr });
    });
  });
}
