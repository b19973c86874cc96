// A separate "container" for the cross-process chat tests: a Node process of its own (own
// in-process flight map, own Redis connection) that runs the chat route's cached handler.
// Usage: node chat-worker.ts <user id> <requests> <body as JSON>
// Prints "READY" once loaded, waits for a line "GO" on stdin, fires the requests at once and
// prints "RESULT <json>" with each response's status, X-Cache, answer id and Retry-After.

import middy from '@middy/core';
import { createInterface } from 'node:readline';
import { answerChat } from '../../functions/chat.ts';
import type { AuthenticatedEvent } from '../../shared/auth/middleware.ts';
import { httpBasics, type HttpResult } from '../../shared/http.ts';
import { closeRedis } from '../../shared/redis.ts';
import { httpEvent, invoke } from '../support/lambda.ts';

const [userId = 'worker', count = '1', bodyText = '{}'] = process.argv.slice(2);
const core = middy<AuthenticatedEvent, HttpResult>().use(httpBasics()).handler(answerChat);

function ask() {
  const event = httpEvent('POST', '/chat', { body: JSON.parse(bodyText) }) as AuthenticatedEvent;
  event.user = { id: userId, email: `${userId}@example.test`, name: userId };
  return invoke(core, event);
}

const lines = createInterface({ input: process.stdin });
process.stdout.write('READY\n');
for await (const line of lines) {
  if (line.trim() !== 'GO') continue;
  const responses = await Promise.all(Array.from({ length: Number(count) }, () => ask()));
  const results = responses.map((response) => ({
    status: response.statusCode,
    cache: response.headers['x-cache'],
    id: response.json?.id,
    retryAfter: response.headers['retry-after'],
  }));
  process.stdout.write(`RESULT ${JSON.stringify(results)}\n`);
  break;
}
lines.close();
await closeRedis();
