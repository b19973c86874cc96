// The clock for durations: milliseconds that never go back, whatever happens to the wall clock.
// process.hrtime() rather than performance.now(): the first read of the `performance` global loads
// perf_hooks, about 0.5 ms of a cold start, for nothing this code uses but the time.

export function monotonicMs(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1000 + nanoseconds / 1e6;
}
