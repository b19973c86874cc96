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

/**
 * `total` is the expected number of keys when known (DBSIZE without --match), else undefined. The
 * line is drawn on a clock, not on each batch, so that one long batch still shows the copy alive.
 */
export function startProgress(total: number | undefined, stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = Date.now();
  const redraw = stream.isTTY === true;
  let done = 0;
  let lastLine = '';

  const line = () => {
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const of = total === undefined ? '' : ` of ~${total}`;
    const eta = total === undefined || rate === 0 ? '' : `, ETA ${duration(Math.max(0, total - done) / rate)}`;
    return `copied ${done}${of} keys, ${Math.round(rate)} keys/s${eta}`;
  };
  const draw = (final: boolean) => {
    const text = line();
    if (redraw) stream.write(`\r\x1b[K${text}${final ? '\n' : ''}`);
    else if (text !== lastLine) stream.write(`${text}\n`); // the finish right after a tick would repeat it
    lastLine = text;
  };
  const clock = setInterval(() => draw(false), redraw ? 200 : 1000);
  clock.unref();
  return {
    update(count) {
      done = count;
    },
    finish() {
      clearInterval(clock);
      draw(true);
    },
  };
}
