// The clock for durations: it advances as performance.now() does and never goes back.

import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { monotonicMs } from '../../shared/monotonic-clock.ts';

/** A read of monotonicMs() between two reads of performance.now(). */
function bracketedRead(): { before: number; clock: number; after: number } {
  const before = performance.now();
  const clock = monotonicMs();
  return { before, clock, after: performance.now() };
}

describe('monotonicMs', () => {
  it('counts milliseconds: over a pause it advances as much as performance.now() does', async () => {
    const start = bracketedRead();

    await sleep(30);
    const end = bracketedRead();
    const elapsed = end.clock - start.clock;

    // Both clocks are monotonic: the elapsed time lies between the inner and the outer bracket.
    const slack = 0.01; // rounding of the two clocks' own units
    expect(elapsed).toBeGreaterThanOrEqual(end.before - start.after - slack);
    expect(elapsed).toBeLessThanOrEqual(end.after - start.before + slack);
    expect(elapsed).toBeGreaterThan(20);
  });

  it('never goes back between reads', () => {
    const reads = Array.from({ length: 10_000 }, () => monotonicMs());

    const backwards = reads.filter((read, i) => i > 0 && read < reads[i - 1]!);

    expect(backwards).toEqual([]);
  });
});
