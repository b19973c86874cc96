// POST /chat single flight across containers: separate Node processes (chat-worker.ts) ask the
// same question at once over one real Redis, and Claude's stand-in is called once, failures,
// refusals and time-outs included, and again only after an outcome record or a crashed holder's
// lock expires.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { answerChat, chatQuestion } from '../../functions/chat.ts';
import middy from '@middy/core';
import type { AuthenticatedEvent } from '../../shared/auth/middleware.ts';
import { httpBasics, type HttpResult } from '../../shared/http.ts';
import { digest, responseCacheKeys } from '../../shared/keys.ts';
import { startAnthropicDouble, type AnthropicDouble } from '../doubles/anthropic.ts';
import { useEnvironment } from '../support/env.ts';
import { httpEvent, invoke } from '../support/lambda.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';

const WORKER = fileURLToPath(new URL('./chat-worker.ts', import.meta.url));
const core = middy<AuthenticatedEvent, HttpResult>().use(httpBasics()).handler(answerChat);

interface WorkerResult {
  status: number;
  cache: string;
  id: string;
  retryAfter?: string;
}

interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
  result: Promise<WorkerResult[]>;
  go(): void;
}

/** A child process acting as another Lambda container, with its own environment. */
function startWorker(env: Record<string, string>, userId: string, count: number, body: unknown): Worker {
  const child = spawn(process.execPath, [WORKER, userId, String(count), JSON.stringify(body)], {
    env: { ...process.env, ...env, LOG_LEVEL: 'error' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let output = '';
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const result = new Promise<WorkerResult[]>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('READY\n')) markReady();
      const line = output.split('\n').find((text) => text.startsWith('RESULT '));
      if (line) resolve(JSON.parse(line.slice('RESULT '.length)));
    });
    child.on('exit', (code, signal) => reject(new Error(`worker exited (${code ?? signal}) before answering: ${output}`)));
  });
  result.catch(() => {});
  return { child, ready, result, go: () => child.stdin!.write('GO\n') };
}

function ask(userId: string, body: unknown) {
  const event = httpEvent('POST', '/chat', { body }) as AuthenticatedEvent;
  event.user = { id: userId, email: `${userId}@example.test`, name: userId };
  return invoke(core, event);
}

/** The answer, lock and outcome keys of a question, as the route names them. */
function keysOf(userId: string, body: unknown) {
  const question = chatQuestion({ ...httpEvent('POST', '/chat', { body }), jsonBody: body });
  return responseCacheKeys('chat', digest(JSON.stringify([userId, question])));
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('POST /chat single flight across containers', () => {
  const redis = useStandaloneRedis();
  let double: AnthropicDouble;
  const workers: Worker[] = [];
  const sharedEnv = () => ({ REDIS_URL: redis.server.url, ...double.env });

  beforeAll(async () => {
    double = await startAnthropicDouble();
  });
  beforeEach(() => double.reset());
  afterEach(() => {
    for (const worker of workers.splice(0)) worker.child.kill('SIGKILL');
  });
  afterAll(() => double.close());

  /** Two processes (two containers) send `perProcess` identical requests each, all at once. */
  async function askFromTwoProcesses(body: unknown, perProcess: number): Promise<WorkerResult[]> {
    const pair = [startWorker(sharedEnv(), 'ana', perProcess, body), startWorker(sharedEnv(), 'ana', perProcess, body)];
    workers.push(...pair);
    await Promise.all(pair.map((worker) => worker.ready));
    for (const worker of pair) worker.go();
    return (await Promise.all(pair.map((worker) => worker.result))).flat();
  }

  it('calls Claude exactly once for 20 identical concurrent requests from two processes', async () => {
    double.defaultDelayMs = 400; // long enough for every request of both processes to arrive meanwhile
    const body = { messages: [{ role: 'user', content: `Explain photosynthesis step by step (${Date.now()})` }] };

    const results = await askFromTwoProcesses(body, 10);

    expect(results).toHaveLength(20);
    expect(results.every((result) => result.status === 200)).toBe(true);
    expect(new Set(results.map((result) => result.id)).size).toBe(1);
    expect(results.filter((result) => result.cache === 'MISS')).toHaveLength(1);
    expect(double.calls).toBe(1);
  });

  it('calls Claude once for identical concurrent requests from two processes when Claude answers 429, and passes its Retry-After to each', async () => {
    double.script({ status: 429, retryAfter: 30, delayMs: 400 }); // a second call would be answered 200
    const body = { messages: [{ role: 'user', content: `What is an integral? (${Date.now()})` }] };

    const results = await askFromTwoProcesses(body, 3);

    expect(double.calls).toBe(1);
    expect(results.map((result) => [result.status, result.retryAfter])).toEqual(Array.from({ length: 6 }, () => [429, '30']));
    expect(await redis.admin.exists(keysOf('ana', body).answer)).toBe(0);
  });

  it('costs Claude no more calls for identical concurrent requests from two processes than for one alone when Claude answers 500', async () => {
    const failing = () => Array.from({ length: 12 }, () => ({ status: 500, delayMs: 400 }));
    await useEnvironment(sharedEnv());
    double.script(...failing());
    const alone = await ask('ana', { messages: [{ role: 'user', content: `What is a matrix? (${Date.now()})` }] });
    const callsAlone = double.calls; // the provider's own retry included
    double.reset();
    double.script(...failing());
    const body = { messages: [{ role: 'user', content: `What is a vector? (${Date.now()})` }] };

    const results = await askFromTwoProcesses(body, 3);

    expect(alone.statusCode).toBe(502);
    expect(double.calls).toBe(callsAlone);
    expect(results.map((result) => result.status)).toEqual([502, 502, 502, 502, 502, 502]);
  });

  it('calls Claude once for identical concurrent requests from two processes when Claude refuses, and serves the refusal to each without caching it', async () => {
    double.script({ stopReason: 'refusal', delayMs: 400 }); // a second call would be answered end_turn
    const body = { messages: [{ role: 'user', content: `Do my homework for me (${Date.now()})` }] };

    const results = await askFromTwoProcesses(body, 3);

    expect(double.calls).toBe(1);
    expect(results.map((result) => result.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(new Set(results.map((result) => result.id)).size).toBe(1);
    expect(await redis.admin.exists(keysOf('ana', body).answer)).toBe(0);
  });

  it('calls Claude once for identical concurrent requests from two processes when the conversation is too long for the model', async () => {
    double.script({ status: 400, errorType: 'invalid_request_error', message: 'prompt is too long: 210000 tokens > 200000 maximum', delayMs: 400 });
    const body = { messages: [{ role: 'user', content: `Summarise this whole book (${Date.now()})` }] };

    const results = await askFromTwoProcesses(body, 3);

    expect(double.calls).toBe(1);
    expect(results.map((result) => result.status)).toEqual([422, 422, 422, 422, 422, 422]);
  });

  it('calls Claude once for identical concurrent requests from two processes when Claude does not answer before the deadline', async () => {
    double.script({ delayMs: 8_000 });
    const body = { messages: [{ role: 'user', content: `What is a limit? (${Date.now()})` }] };
    const env = { ...sharedEnv(), CHAT_TIMEOUT_MS: '1000' };
    const pair = [startWorker(env, 'ana', 2, body), startWorker(env, 'ana', 2, body)];
    workers.push(...pair);
    await Promise.all(pair.map((worker) => worker.ready));
    for (const worker of pair) worker.go();

    const results = (await Promise.all(pair.map((worker) => worker.result))).flat();

    expect(double.calls).toBe(1);
    expect(results.map((result) => [result.status, result.retryAfter])).toEqual(Array.from({ length: 4 }, () => [502, '5']));
  });

  it('calls Claude again for an identical request once the failure has expired, and serves its answer MISS then HIT', async () => {
    double.script({ status: 429, retryAfter: 1, delayMs: 400 });
    const body = { messages: [{ role: 'user', content: `What is a prime number? (${Date.now()})` }] };
    const failed = await askFromTwoProcesses(body, 2);
    await until(async () => (await redis.admin.exists(keysOf('ana', body).outcome)) === 0, 3_000);
    await useEnvironment(sharedEnv());

    const first = await ask('ana', body);
    const second = await ask('ana', body);

    expect(failed.map((result) => result.status)).toEqual([429, 429, 429, 429]);
    expect([first.statusCode, first.headers['x-cache']]).toEqual([200, 'MISS']);
    expect([second.statusCode, second.headers['x-cache']]).toEqual([200, 'HIT']);
    expect(double.calls).toBe(2);
  });

  it('takes over from a holder that crashed once its lock expires, and calls Claude itself', async () => {
    const body = { messages: [{ role: 'user', content: `What is a fraction? (${Date.now()})` }] };
    double.script({ delayMs: 8_000 }); // the holder's call never comes back before it dies
    // The holder's budget is 1.5 s: its lock lives 2.5 s. This container waits up to 4 s.
    const holder = startWorker({ ...sharedEnv(), CHAT_TIMEOUT_MS: '1500' }, 'ana', 1, body);
    workers.push(holder);
    await holder.ready;
    holder.go();
    await until(() => double.calls === 1);
    holder.child.kill('SIGKILL');
    await useEnvironment({ ...sharedEnv(), CHAT_TIMEOUT_MS: '4000' });
    expect(await redis.admin.exists(keysOf('ana', body).lock)).toBe(1);

    const response = await ask('ana', body);

    expect(response.statusCode).toBe(200);
    expect(response.headers['x-cache']).toBe('MISS');
    expect(double.calls).toBe(2);
    expect(await redis.admin.exists(keysOf('ana', body).lock)).toBe(0); // it took the expired lock, then released it
  });

  it('calls Claude itself after waiting as long as its own lock would live, for a holder whose lock outlives the wait', async () => {
    const body = { messages: [{ role: 'user', content: `What is a verb? (${Date.now()})` }] };
    double.script({ delayMs: 8_000 });
    // The holder's budget is 60 s: its lock outlives this container's wait (1 s budget + 1 s margin).
    const holder = startWorker({ ...sharedEnv(), CHAT_TIMEOUT_MS: '60000' }, 'ana', 1, body);
    workers.push(holder);
    await holder.ready;
    holder.go();
    await until(() => double.calls === 1);
    holder.child.kill('SIGKILL');
    await useEnvironment({ ...sharedEnv(), CHAT_TIMEOUT_MS: '1000' });

    const response = await ask('ana', body);

    expect(response.statusCode).toBe(200);
    expect(response.headers['x-cache']).toBe('MISS');
    expect(double.calls).toBe(2);
    expect(await redis.admin.pttl(keysOf('ana', body).lock)).toBeGreaterThan(50_000); // the stuck lock was left alone
  });
});
