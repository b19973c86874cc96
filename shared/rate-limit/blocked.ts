// In-process memory of refused identities: until Redis said a unit could fit again, every further
// check of that identity in this container is refused here, with no Redis round trip, so a client
// hammering a warm container costs nothing upstream. Only durations from Redis are kept (measured
// against this process's monotonic clock), never wall-clock instants, so clock skew cannot matter.
//
// Exact, not approximate: while a single unit does not fit, no request of any cost fits; other
// containers can only spend more of the quota. Units held by attempts in flight, which may come
// back (see attempts.ts), are not counted in a remembered wait, and a refusal made only by them is
// not remembered at all.

import { monotonicMs } from '../monotonic-clock.ts';
import { policyState } from './gcra.ts';
import type { RateLimitRefusal } from './limiter.ts';

interface Block {
  /** monotonicMs() at which one unit fits again. */
  anyUntil: number;
  /** monotonicMs() at which the refused request's cost fits again. */
  costUntil: number;
  cost: number;
  decision: RateLimitRefusal;
  rememberedAt: number;
}

/** Bounded: a flood of distinct identities must not grow the container's memory without end. */
export const MAX_REMEMBERED_BLOCKS = 10_000;

const blocks = new Map<string, Block>();

function blockKey(bucket: string, identity: string): string {
  return `${bucket}\u0000${identity}`;
}

/** Remembers a refusal for `anyMs` (the time until one unit fits, as Redis computed it). */
export function rememberBlock(bucket: string, identity: string, decision: RateLimitRefusal, cost: number, anyMs: number): void {
  if (anyMs <= 0) return;
  const key = blockKey(bucket, identity);
  const now = monotonicMs();
  if (!blocks.has(key) && blocks.size >= MAX_REMEMBERED_BLOCKS) evictOldest();
  blocks.delete(key); // re-inserted last: Map order is the eviction order
  blocks.set(key, {
    anyUntil: now + anyMs,
    costUntil: now + Math.max(anyMs, decision.retryAfterMs),
    cost,
    decision,
    rememberedAt: now,
  });
}

/** The refusal to answer from memory, or undefined when Redis must be asked. */
export function recallBlock(bucket: string, identity: string, cost: number): RateLimitRefusal | undefined {
  if (blocks.size === 0) return undefined; // the usual case: no key to build
  const key = blockKey(bucket, identity);
  const block = blocks.get(key);
  if (block === undefined) return undefined;
  const now = monotonicMs();
  if (now >= block.anyUntil) {
    blocks.delete(key);
    return undefined;
  }
  // A cost at least the refused one waits at least as long; a smaller one at least until one unit fits.
  const retryAfterMs = (cost >= block.cost ? block.costUntil : block.anyUntil) - now;
  const elapsedMs = now - block.rememberedAt;
  return {
    allowed: false,
    retryAfterMs,
    states: block.decision.states.map((state) => policyState(state.policy, Math.max(0, state.untilFullMs - elapsedMs) * 1000)),
  };
}

/** Forgets the block of one identity: units were given back to it (see attempts.ts). */
export function forgetBlock(bucket: string, identity: string): void {
  blocks.delete(blockKey(bucket, identity));
}

/** Forgets every remembered block. */
export function forgetBlocks(): void {
  blocks.clear();
}

export function rememberedBlockCount(): number {
  return blocks.size;
}

/** The oldest block is the one most likely over already; losing it costs one round trip, never a wrong answer. */
function evictOldest(): void {
  const oldest = blocks.keys().next();
  if (!oldest.done) blocks.delete(oldest.value);
}
