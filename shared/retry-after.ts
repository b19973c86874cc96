// How long an upstream (Claude, an embeddings API, the OTLP collector) asks us to wait, from its
// response headers: `retry-after-ms` (the precise form Anthropic and OpenAI send), else
// `retry-after` in seconds or as an HTTP date (RFC 9110). The wait is capped, by default at an
// hour: a broken or hostile upstream must not tell our clients to come back tomorrow.

const MAX_RETRY_AFTER_MS = 3_600_000;

/** The wait in ms (at most `capMs`), or undefined when the response names none (or none that parses). */
export function retryAfterMs(headers: Headers, capMs = MAX_RETRY_AFTER_MS): number | undefined {
  const wait = statedWaitMs(headers);
  return wait === undefined ? undefined : Math.min(wait, capMs);
}

function statedWaitMs(headers: Headers): number | undefined {
  const precise = Number(headers.get('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(precise) && precise >= 0) return precise;
  const value = headers.get('retry-after');
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
