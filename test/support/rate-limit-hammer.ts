// A separate process that hammers one rate-limit bucket: the concurrency tests run several of
// these at once, as several Lambda containers would. Prints the number of admitted checks.
// Usage: node rate-limit-hammer.ts '<json RateLimitRequest>' <checks> <concurrent callers>

import { checkRateLimit, type RateLimitRequest } from '../../shared/rate-limit/limiter.ts';
import { closeRedis } from '../../shared/redis.ts';

const [requestJson, checksText, callersText] = process.argv.slice(2);
const request = JSON.parse(requestJson!) as RateLimitRequest;
let left = Number(checksText);
let admitted = 0;

async function caller(): Promise<void> {
  while (left > 0) {
    left -= 1;
    // A generous time-out: this measures admission, not latency, and the machine is busy.
    if ((await checkRateLimit(request, { timeoutMs: 5000 })).allowed) admitted += 1;
  }
}

await Promise.all(Array.from({ length: Number(callersText) }, caller));
await closeRedis();
process.stdout.write(`${admitted}\n`);
