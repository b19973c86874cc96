// Checks issued in the same event-loop turn share one script run (one EVALSHA): a container
// serving many concurrent requests pays one command per turn instead of one per check, and a
// Lambda container serving one request at a time simply sends runs of one. Each check is still
// decided and spent on its own (see gcra.ts).
//
//   turn n:   check A ─┐
//             check B ─┼─ queued ──▶ turn's end: one EVALSHA [A, B, C] ── reply ──▶ A, B, C settled
//             check C ─┘             (sendAtTurnEnd, in one write with the requests' cache reads;
//                                     one 200 ms deadline for the run)
//
// In a Redis Cluster a script may touch one slot only, so a run there carries the checks of one
// hash tag (one identity).

import { withRedis } from '../redis.ts';
import { sendAtTurnEnd } from '../redis-writes.ts';
import { withinTime } from './deadline.ts';
import { runGcra, type GcraCheck } from './gcra.ts';

export interface QueuedCheck extends GcraCheck {
  /** Receives the whole reply and where this check's part starts. */
  settle(reply: number[], offset: number): void;
  fail(error: unknown): void;
}

interface Run {
  timeoutMs: number;
  checks: QueuedCheck[];
}

/** Bounds the time one run holds Redis (a few µs a check). */
export const MAX_CHECKS_PER_RUN = 64;

let maxChecksPerRun = MAX_CHECKS_PER_RUN;

/**
 * Caps the checks a run may carry; 1 makes every check its own run, as a Lambda container serving
 * one request at a time does (the benchmark measures both).
 */
export function setMaxChecksPerRun(count: number): void {
  maxChecksPerRun = Math.max(1, Math.min(MAX_CHECKS_PER_RUN, Math.floor(count)));
}

let queued = new Map<string, Run>();
let scheduled = false;

/**
 * Queues `check` for the next run. Checks with different deadlines, or (in a cluster) different
 * hash tags, go in different runs.
 */
export function enqueue(check: QueuedCheck, timeoutMs: number, slotTag: string | undefined): void {
  const group = slotTag === undefined ? String(timeoutMs) : `${timeoutMs}|${slotTag}`;
  let run = queued.get(group);
  if (run === undefined) {
    run = { timeoutMs, checks: [] };
    queued.set(group, run);
  }
  run.checks.push(check);
  if (run.checks.length >= maxChecksPerRun) {
    queued.delete(group);
    send(run);
  }
  if (!scheduled) {
    scheduled = true;
    sendAtTurnEnd(flush);
  }
}

function flush(): void {
  scheduled = false;
  const runs = queued;
  queued = new Map();
  for (const run of runs.values()) send(run);
}

function send({ checks, timeoutMs }: Run): void {
  // The deadline bounds the script, not the container's first connection (the Redis URL read from
  // Secrets Manager, the client loaded, the connection made): a cold start is not a slow Redis.
  withRedis((client) => withinTime(client, runGcra(client, checks), timeoutMs)).then(
    (reply) => {
      let offset = 0;
      for (const check of checks) {
        settleOne(check, reply, offset);
        offset += 1 + check.keys.length;
      }
    },
    (error: unknown) => {
      for (const check of checks) check.fail(error);
    },
  );
}

function settleOne(check: QueuedCheck, reply: number[], offset: number): void {
  try {
    check.settle(reply, offset);
  } catch (error) {
    check.fail(error); // one check's bug must not leave the others of its run waiting
  }
}
