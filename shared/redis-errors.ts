// Which errors mean "Redis cannot be reached right now" (a 503), as opposed to a bug in a command
// (a 500). Kept apart from the connection so that modules which only classify errors, such as the
// HTTP middleware, do not pull the Redis client into their bundle.
//
// Replies of a server that is up but serves no one for now count too: LOADING (reading its data
// after a restart), MASTERDOWN, BUSY (a script running past the busy threshold: every command is
// refused until it ends or is killed; not BUSYKEY, a RESTORE onto an existing key), OOM (writes
// refused at maxmemory under noeviction, or with nothing left to evict: reads still work),
// READONLY (a primary demoted by a failover, still reached on a socket opened before it). And a
// cluster that keeps redirecting a command past the client's limit (slots moving: a resharding).

const UNAVAILABLE_ERROR =
  /Command timed out|Connection is closed|Socket timeout|MaxRetriesPerRequest|Reached the max retries|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE|connect ETIMEDOUT|Stream isn't writeable|None of startup nodes is available|Failed to refresh slots cache|CLUSTERDOWN|TRYAGAIN|Too many Cluster redirections|LOADING|MASTERDOWN|\bBUSY\b|OOM command not allowed|\bREADONLY\b|Cluster isn't ready|WRONGPASS|NOAUTH|Protocol error|Unknown RESP type/i;

export function isRedisUnavailableError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code ?? '';
  return UNAVAILABLE_ERROR.test(`${error.name} ${error.message} ${code}`);
}

const AUTH_FAILURE = /WRONGPASS|NOAUTH|invalid password|invalid username-password/i;

/** Redis refused our credentials, or wanted some and got none. */
export function isAuthFailure(error: unknown): boolean {
  return error instanceof Error && AUTH_FAILURE.test(error.message);
}

/** An error Redis answered (OOM, BUSY, LOADING…): the server was reached, whatever it refused. */
export function isRedisReply(error: unknown): error is Error & { name: 'ReplyError' } {
  return error instanceof Error && error.name === 'ReplyError';
}

/** A write refused by a replica: the server this socket reaches is no longer the primary. */
export function isReadOnlyReplicaError(error: Error): boolean {
  return /\bREADONLY\b/.test(error.message);
}
