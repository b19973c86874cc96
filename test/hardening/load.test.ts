// The bounded load test, small enough for CI (bench/load.bench.ts runs the bigger one and writes
// its figures to BENCHMARKS.md): see load-scenario.ts for what runs. Loopback only, a fixed number
// of requests per scenario, ten connections.

import { beforeAll, describe, expect, it } from 'vitest';
import { loadTable, RECOVERY_BURST, runLoad, type LoadReport, type ScenarioReport } from './load-scenario.ts';

const CONNECTIONS = 10;
/** Functions a scenario reaches (login, chat, embeddings, session, register, the scheduled flush), one connection per warm instance. */
const FUNCTIONS_REACHED = 6;

const count = (scenario: ScenarioReport, predicate: (status: number) => boolean) =>
  Object.values(scenario.statuses)
    .flatMap((byStatus) => Object.entries(byStatus))
    .reduce((sum, [status, n]) => sum + (predicate(Number(status)) ? n : 0), 0);
const succeeded = (scenario: ScenarioReport) => count(scenario, (status) => status >= 200 && status < 300);

describe('load through npm run dev, with a Redis restart in the middle', () => {
  let report: LoadReport;

  beforeAll(async () => {
    report = await runLoad({
      connections: CONNECTIONS,
      users: 5,
      amounts: { login: 40, chatHit: 600, chatMiss: 150, embeddings: 300, mixed: 900 },
      answeredDuringOutage: 100,
    });
    console.log(`${loadTable(report)}\nRedis clients: ${JSON.stringify(report.redisClients)}; outage: ${JSON.stringify(report.outage)}`);
    // The tests below go through report.scenarios, which a report of none would pass.
    expect(report.scenarios.map((scenario) => scenario.name)).toEqual(['login', 'chat hits', 'chat misses', 'embeddings', 'mixed, Redis restarted midway']);
  }, 120_000);

  it('answers every request: no connection error, no time-out, nothing left unanswered, no Lambda time-out', () => {
    for (const scenario of report.scenarios) {
      expect({ scenario: scenario.name, errors: scenario.errors, timeouts: scenario.timeouts, unanswered: scenario.unanswered }).toEqual({
        scenario: scenario.name,
        errors: 0,
        timeouts: 0,
        unanswered: {},
      });
    }
    expect(report.unhandled).toEqual([]);
  });

  it('answers only within the contract: 2xx, 4xx problems, or 503 problems', () => {
    for (const scenario of report.scenarios) expect(scenario.offContract, scenario.name).toEqual([]);
  });

  it('serves the steady scenarios (a 503 only where a rate-limit check missed its 200 ms on a saturated machine)', () => {
    for (const scenario of report.scenarios.slice(0, 4)) {
      expect(count(scenario, (status) => status >= 400 && status !== 503), scenario.name).toBe(0);
      expect(succeeded(scenario) / scenario.requests, scenario.name).toBeGreaterThanOrEqual(0.9);
    }
  });

  it('answers 503 while Redis is down, and recovers by itself: sessions intact, a fresh burst served', () => {
    const mixed = report.scenarios.find((scenario) => scenario.name.startsWith('mixed'))!;
    const served = Object.entries(report.recoveryBurst).reduce((sum, [status, n]) => sum + (status.startsWith('2') ? n : 0), 0);

    expect(count(mixed, (status) => status === 503)).toBeGreaterThan(0);
    expect(count(mixed, (status) => status >= 500 && status !== 503)).toBe(0);
    expect(report.sessionsValidAfter).toBe(5);
    expect(served / RECOVERY_BURST).toBeGreaterThanOrEqual(0.9);
  });

  it('keeps Redis connections bounded to one per warm instance, during the load and after the restart', () => {
    // A restart closes every connection on Redis's side; what the bound catches after it is an
    // instance that opens a second client instead of reconnecting its own.
    expect(report.redisClients.maxDuring).toBeLessThanOrEqual(CONNECTIONS * FUNCTIONS_REACHED);
    expect(report.redisClients.after).toBeLessThanOrEqual(CONNECTIONS * FUNCTIONS_REACHED);
  });

  it('leaves no cache entry half-written and no secret in the server output', () => {
    expect(report.cache.faults).toEqual([]);
    expect(report.cache.answers).toBeGreaterThan(0);
    expect(report.cache.vectors).toBeGreaterThan(0);
    expect(report.secretsInOutput).toEqual([]);
  });
});
