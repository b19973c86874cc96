// Sessions in Redis, found by the SHA-256 of their bearer token. Expiry slides: every use pushes
// it to `now + idle`, never past the absolute cap `createdAt + max`. The key's own TTL is that
// expiry, so a lapsed session is simply gone. All times come from Redis `TIME`, one clock for
// every container.
//
//   login ──── use ──────── use ─────────────── (idle) ──✗ expired
//     │◄─idle─►│◄──idle──►│◄──idle──►│
//     └──────────────────── max ────────────────────────✗ capped, however often used
//
// A user's sessions are also listed in an index (sorted set of token digests scored by their
// cap), under the account's hash tag, so that "log out everywhere" deletes them all in one script.

import { authShard, sessionKey, userKey, userSessionsKey } from '../keys.ts';
import { config } from '../config.ts';
import { HttpProblem } from '../problem.ts';
import { withRedis } from '../redis.ts';
import { defineScript, LUA_NOW_MS } from '../redis-script.ts';
import { newTokenInShard, tokenDigest, type SessionToken } from './tokens.ts';
import type { UserRecord } from './users.ts';

export interface SessionUser {
  id: string;
  email: string;
  name: string | null;
}

export interface Session {
  user: SessionUser;
  tokenDigest: string;
  expiresAt: Date;
}

/**
 * KEYS[1]: the new session; KEYS[2]: the user's session index; KEYS[3]: the user's account.
 * ARGV: idle ms, max ms, token digest, user id, email, name ('' for none), new password hash ('' for none).
 * Writes the session with its first expiry, lists it in the index (dropping entries past their
 * cap), and stores a re-made password hash in the same step. Returns the expiry in ms.
 */
const startScript = defineScript(
  `${LUA_NOW_MS}
local cap = now + tonumber(ARGV[2])
local expires = math.min(now + tonumber(ARGV[1]), cap)
redis.call('HSET', KEYS[1], 'uid', ARGV[4], 'email', ARGV[5], 'createdAt', now, 'capAt', cap)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[6]) end
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], cap, ARGV[3])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
if ARGV[7] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'passwordHash', ARGV[7])
end
return expires
`,
);

/**
 * KEYS[1]: the session. ARGV[1]: idle ms.
 * Reads the session and slides its expiry in the same step (the auth middleware's only round
 * trip). Returns user id, email, name (nil when none) and the new expiry in ms, or nil when the
 * session does not exist or has reached its cap.
 */
const resumeScript = defineScript(
  `
local session = redis.call('HMGET', KEYS[1], 'uid', 'email', 'name', 'capAt')
if not session[1] then return false end
${LUA_NOW_MS}
local expires = math.min(now + tonumber(ARGV[1]), tonumber(session[4]))
if expires <= now then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('PEXPIREAT', KEYS[1], expires)
return { session[1], session[2], session[3], expires }
`,
);

/** KEYS[1]: the session; KEYS[2]: the user's index. ARGV[1]: the token digest. */
const endScript = defineScript(
  `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`,
);

/**
 * KEYS[1]: the user's index; KEYS[2..n]: the sessions the caller read from it (and the caller's
 * own, should the index have lost it); ARGV: the digests read from the index.
 * Deletes the index and every listed session, but only if the index still lists exactly those
 * digests: a session started since the caller read the index makes it answer 0, and the caller
 * reads again. (Keys are passed, not built inside the script, as Redis Cluster requires.)
 */
const endAllScript = defineScript(
  `
if redis.call('ZCARD', KEYS[1]) ~= #ARGV then return 0 end
for i = 1, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then return 0 end
end
for i = 1, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
`,
);

const END_ALL_ATTEMPTS = 5;

/**
 * A token for a session of that account, not yet stored. Drawing it takes a millisecond or more
 * of CPU (tokens.ts), so a login draws it while scrypt runs on the thread pool.
 */
export function drawSessionToken(emailDigestOfUser: string): SessionToken {
  return newTokenInShard(authShard(emailDigestOfUser));
}

/**
 * Starts a session for `user` under `drawn` (from drawSessionToken) and returns its token (the
 * only time the token exists in the clear). `rehashedPassword`, when given, replaces the
 * account's stored hash in the same step.
 */
export async function startSession(
  user: UserRecord,
  emailDigestOfUser: string,
  drawn: SessionToken,
  rehashedPassword?: string,
): Promise<{ token: string; expiresAt: Date }> {
  const shard = authShard(emailDigestOfUser);
  const { token, tokenDigest: digestOfToken } = drawn;
  const { sessionIdleSeconds, sessionMaxSeconds } = config().auth;
  const expiresMs = await withRedis((redis) =>
    startScript(
      redis,
      [sessionKey(digestOfToken), userSessionsKey(shard, user.id), userKey(emailDigestOfUser)],
      [
        sessionIdleSeconds * 1000,
        sessionMaxSeconds * 1000,
        digestOfToken,
        user.id,
        user.email,
        user.name ?? '',
        rehashedPassword ?? '',
      ],
    ),
  );
  return { token, expiresAt: new Date(Number(expiresMs)) };
}

/** The live session of `token`, its expiry slid forward; undefined when unknown, expired or ended. */
export async function resumeSession(token: string): Promise<Session | undefined> {
  const digestOfToken = tokenDigest(token);
  const idleMs = config().auth.sessionIdleSeconds * 1000;
  const reply = (await withRedis((redis) => resumeScript(redis, [sessionKey(digestOfToken)], [idleMs]))) as
    | [string, string, string | null, number]
    | null;
  if (reply === null) return undefined;
  const [id, email, name, expiresMs] = reply;
  return { user: { id, email, name: name ?? null }, tokenDigest: digestOfToken, expiresAt: new Date(Number(expiresMs)) };
}

/** Ends one session: its token is dead afterwards. */
export async function endSession(session: Session): Promise<void> {
  const shard = authShard(session.tokenDigest);
  await withRedis((redis) =>
    endScript(redis, [sessionKey(session.tokenDigest), userSessionsKey(shard, session.user.id)], [session.tokenDigest]),
  );
}

/** Ends every session of the session's user, the given one included, in one atomic step. */
export async function endAllSessions(session: Session): Promise<void> {
  const indexKey = userSessionsKey(authShard(session.tokenDigest), session.user.id);
  await withRedis(async (redis) => {
    for (let attempt = 1; attempt <= END_ALL_ATTEMPTS; attempt++) {
      const digests = (await redis.zrange(indexKey, 0, '-1')) as string[];
      const sessions = new Set([...digests, session.tokenDigest]);
      const ended = await endAllScript(redis, [indexKey, ...[...sessions].map(sessionKey)], digests);
      if (ended === 1) return;
    }
    // Only a stream of new logins of this very user, faster than two round trips, gets here.
    throw new HttpProblem(503, 'sessions-busy', { detail: 'New sessions keep starting; try again.', retryAfterSeconds: 1 });
  });
}
