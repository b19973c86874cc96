// The bigger variant of the hardening load test (test/hardening/load.test.ts): the same scenarios
// through `npm run dev` with more requests, written to the `load` section of BENCHMARKS.md.

import { loadTable, RECOVERY_BURST, runLoad } from '../test/hardening/load-scenario.ts';
import { machineLine, writeSection } from './report.ts';

const CONNECTIONS = 10;

const report = await runLoad({
  connections: CONNECTIONS,
  users: 20,
  amounts: { login: 200, chatHit: 5000, chatMiss: 1000, embeddings: 2000, mixed: 5000 },
  answeredDuringOutage: 300,
});

const clients = report.redisClients;
const markdown = `## Load through \`npm run dev\` (its local gateway and serverless-offline, loopback)

${machineLine()}. autocannon, ${CONNECTIONS} connections, a fixed number of requests per scenario;
Claude replaced by the local stand-in answering in 5 ms; the mixed scenario stops Redis (SIGTERM,
append-only file on) after a third of its requests and starts it again ${report.outage.ms} ms later.
serverless-offline runs every function instance as a worker thread of one process, so these
figures are the local server's, not Lambda's: they show behaviour under load, not AWS capacity.

${loadTable(report)}

- Redis clients (the sampler excluded): ${clients.before} before, at most ${clients.maxDuring} during, ${clients.beforeOutage} just before the outage, ${clients.after} after (one per warm function instance).
- After the restart: ${report.sessionsValidAfter} of ${report.sessionsValidAfter} sessions still valid; a burst of ${RECOVERY_BURST} mixed requests answered ${JSON.stringify(report.recoveryBurst)}.
- Invocations over 1 s: ${report.invocations.overOneSecond} (slowest ${report.invocations.slowestMs} ms); unhandled errors or Lambda time-outs: ${report.unhandled.length}.
- Cache after the run: ${report.cache.answers} chat answers, ${report.cache.vectors} vectors, ${report.cache.locks} locks, ${report.cache.faults.length} entries without TTL or unreadable.
`;
writeSection('load', markdown);
console.log(markdown);
