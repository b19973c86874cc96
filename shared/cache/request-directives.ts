// What a request asks of the caches it goes through (RFC 9111 §5.2.1), read the same way by every
// cached route (the chat's answers, the embeddings' vectors):
//   - `Cache-Control: no-cache` or `max-age=0` (or, from an HTTP/1.0 client that sends no
//     Cache-Control, `Pragma: no-cache`): a fresh answer. The cache is not read; what is computed
//     is still stored.
//   - `Cache-Control: no-store`: nothing of the request or its answer is kept (a client sending
//     text it wants kept nowhere). What the cache held already may still answer it.
// Other directives (`max-age=N`, `min-fresh`, `only-if-cached`, ...) are not honoured: entries
// have one TTL, set by the stage.

import { header, type HttpEvent } from '../http.ts';

export interface CacheDirectives {
  /** Skip the cache read (no-cache, max-age=0). */
  fresh: boolean;
  /** Store nothing of this request (no-store). */
  noStore: boolean;
}

const FRESH = /(^|,)\s*(no-cache|max-age\s*=\s*"?0+"?)\s*(,|$)/i;
const NO_CACHE = /(^|,)\s*no-cache\s*(,|$)/i;
const NO_STORE = /(^|,)\s*no-store\s*(,|$)/i;

export function cacheDirectivesOf(event: HttpEvent): CacheDirectives {
  const cacheControl = header(event, 'cache-control');
  if (cacheControl === undefined) return { fresh: NO_CACHE.test(header(event, 'pragma') ?? ''), noStore: false };
  return { fresh: FRESH.test(cacheControl), noStore: NO_STORE.test(cacheControl) };
}
