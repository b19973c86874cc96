// The migration's progress line on stderr: keys copied, keys per second and the time left. On a
// terminal it redraws one line; elsewhere (--progress into a log) it prints a line a second.

export interface Progress {
  update(done: number): void;
  finish(): void;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s` : `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** `total` is the expected number of keys when known (DBSIZE without --match), else undefined. */
export function startProgress(total: number | undefined, stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = Date.now();
  const redraw = stream.isTTY === true;
  const every = redraw ? 200 : 1000;
  let lastDrawn = 0;
  let done = 0;

  const line = () => {
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const of = total === undefined ? '' : ` of ~${total}`;
    const eta = total === undefined || rate === 0 ? '' : `, ETA ${duration(Math.max(0, total - done) / rate)}`;
    return `copied ${done}${of} keys, ${Math.round(rate)} keys/s${eta}`;
  };
  const draw = (final: boolean) => {
    if (redraw) stream.write(`\r\x1b[K${line()}${final ? '\n' : ''}`);
    else stream.write(`${line()}\n`);
  };
  return {
    update(count) {
      done = count;
      const now = Date.now();
      if (now - lastDrawn >= every) {
        lastDrawn = now;
        draw(false);
      }
    },
    finish() {
      draw(true);
    },
  };
}
