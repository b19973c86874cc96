// One measured process of bench/warm-path.bench.ts: imports a handler bundle (ours or the
// peer's), warms it up with the same cached chat request, then measures one thing and reports it
// to the parent over IPC. A process of its own per run keeps ours and the peer from sharing a
// heap, a JIT or an event loop.
//
//   BENCH_FILE      the bundle
//   BENCH_EVENT     the API Gateway event (JSON), invoked again and again
//   BENCH_MODE      latency      sequential invocations for BENCH_SECONDS: each one's duration
//                   throughput   BENCH_CONCURRENCY invocations in flight for BENCH_SECONDS: requests/s
//                   seed         one invocation, which may miss the cache (and fill it)
//                   round-trips  tells the parent when warm ('warm'), waits for 'go', then
//                                BENCH_REQUESTS sequential invocations, each followed by a pause
//                                (as between a Lambda container's invocations), and reports their
//                                durations ('done'): the parent counts the round trips

import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<{ statusCode?: number; headers?: Record<string, unknown>; body?: string }>;

const WARM_UP_REQUESTS = 300;

const env = process.env;
const template = env['BENCH_EVENT']!;
const seconds = Number(env['BENCH_SECONDS'] ?? 1.5);
const context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'bench',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:bench',
  memoryLimitInMB: '512',
  awsRequestId: 'warm-path-bench',
  logGroupName: 'bench',
  logStreamName: 'bench',
  getRemainingTimeInMillis: () => 10_000,
} as unknown as Context;

const { handler } = (await import(env['BENCH_FILE']!)) as { handler: Handler };

/** One cached chat request; anything but a 200 from the cache stops the benchmark. */
async function ask(event: APIGatewayProxyEventV2, expected = ['HIT']): Promise<void> {
  const response = await handler(event, context);
  const cache = response.headers?.['X-Cache'] ?? response.headers?.['x-cache'];
  if (response.statusCode !== 200 || !expected.includes(String(cache))) {
    throw new Error(`expected a 200 from the cache, got ${response.statusCode} (X-Cache: ${String(cache)}): ${response.body}`);
  }
}

/** A fresh event each time (middy and the handlers annotate the one they get), made before the clock starts. */
const freshEvent = () => JSON.parse(template) as APIGatewayProxyEventV2;

function send(message: unknown): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, (error: Error | null) => (error ? reject(error) : resolve())));
}

function nextMessage(): Promise<unknown> {
  return new Promise((resolve) => process.once('message', resolve));
}

async function sequential(count: number): Promise<void> {
  for (let i = 0; i < count; i += 1) await ask(freshEvent());
}

/** Each request's duration, and the CPU time this process spent on all of them (µs a request). */
async function latency(): Promise<{ durations: number[]; cpuUs: number }> {
  const durations: number[] = [];
  const end = performance.now() + seconds * 1000;
  const cpu = process.cpuUsage();
  while (performance.now() < end) {
    const event = freshEvent();
    const started = performance.now();
    await ask(event);
    durations.push(performance.now() - started);
  }
  const spent = process.cpuUsage(cpu);
  return { durations, cpuUs: (spent.user + spent.system) / durations.length };
}

async function throughput(concurrency: number): Promise<{ requests: number; seconds: number }> {
  let requests = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  const user = async () => {
    while (performance.now() < end) {
      await ask(freshEvent());
      requests += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, user));
  return { requests, seconds: (performance.now() - started) / 1000 };
}

const mode = env['BENCH_MODE'];
const concurrency = Number(env['BENCH_CONCURRENCY'] ?? 50);
if (mode === 'throughput') {
  // Warmed up at the same concurrency: the connection's pipelines and the JIT see the measured load.
  await Promise.all(Array.from({ length: concurrency }, () => sequential(WARM_UP_REQUESTS / 10)));
  await send({ throughput: await throughput(concurrency) });
} else if (mode === 'latency') {
  await sequential(WARM_UP_REQUESTS);
  await send(await latency());
} else if (mode === 'seed') {
  await ask(freshEvent(), ['HIT', 'MISS']);
  await send({ seeded: true });
} else if (mode === 'round-trips') {
  await sequential(WARM_UP_REQUESTS / 10);
  await send('warm');
  await nextMessage();
  const requests = Number(env['BENCH_REQUESTS'] ?? 100);
  const pauseMs = Number(env['BENCH_PAUSE_MS'] ?? 50);
  const durations: number[] = [];
  for (let i = 0; i < requests; i += 1) {
    const started = performance.now();
    await ask(freshEvent());
    durations.push(performance.now() - started);
    // What the invocation left running (the usage counters' write) ends before the next one.
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  await send({ requests, durations });
} else {
  throw new Error(`unknown BENCH_MODE ${mode}`);
}
process.exit(0);
