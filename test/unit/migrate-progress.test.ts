// The migration's progress line (scripts/ops/progress.ts) written to a log: drawn on a clock, so
// that one long batch still shows the copy alive, and never the same line twice.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startProgress } from '../../scripts/ops/progress.ts';

/** A log (not a terminal) that keeps what it is given. */
function logStream(): { lines: string[]; stream: NodeJS.WriteStream } {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (text: string) => lines.push(text.trimEnd()) > 0 } as unknown as NodeJS.WriteStream;
  return { lines, stream };
}

describe('the progress line of redis:migrate in a log', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('shows a copy alive while one batch takes seconds, its rate falling', () => {
    const { lines, stream } = logStream();
    const progress = startProgress(10_000, stream);

    progress.update(1000);
    vi.advanceTimersByTime(3000);

    expect(lines).toEqual([
      'copied 1000 of ~10000 keys, 1000 keys/s, ETA 9s',
      'copied 1000 of ~10000 keys, 500 keys/s, ETA 18s',
      'copied 1000 of ~10000 keys, 333 keys/s, ETA 27s',
    ]);
    progress.finish();
  });

  it('ends with the final count, and gives no line twice', () => {
    const { lines, stream } = logStream();
    const progress = startProgress(undefined, stream);
    progress.update(2000);
    vi.advanceTimersByTime(1000);

    progress.finish();
    vi.advanceTimersByTime(5000);

    expect(lines).toEqual(['copied 2000 keys, 2000 keys/s']);
  });
});
