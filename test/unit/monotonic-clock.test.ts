import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { monotonicMs } from '../../shared/monotonic-clock.ts';

describe('monotonicMs', () => {
  it('counts milliseconds: over a pause it advances as performance.now() does', async () => {
    const [startClock, startReference] = [monotonicMs(), performance.now()];

    await sleep(30);
    const [clockMs, referenceMs] = [monotonicMs() - startClock, performance.now() - startReference];

    expect(clockMs).toBeGreaterThanOrEqual(25);
    expect(Math.abs(clockMs - referenceMs)).toBeLessThan(1);
  });

  it('never goes back between reads', () => {
    const reads = Array.from({ length: 10_000 }, () => monotonicMs());

    const backwards = reads.filter((read, i) => i > 0 && read < reads[i - 1]!);

    expect(backwards).toEqual([]);
  });
});
