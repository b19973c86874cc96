// What a Redis URL is here and what it says: the one form every Redis location takes
// (`redis://` or `rediss://`, a host, an optional port and database), credentials that must
// decode, the host and port it names (6379 when it names none), its database, and a description
// for humans that never shows the password.

import { ConfigError } from './config-error.ts';

/** Redis's port, for a URL that names none. */
export const DEFAULT_REDIS_PORT = 6379;

/** What a Redis URL must look like, for error messages (which never echo the URL: it may hold a password). */
export const REDIS_URL_FORM =
  'a redis:// or rediss:// URL with a host, a database number as its only path if any, and a port up to 65535 (in a password, @ : / ? # % must be percent-encoded)';

/** A `redis://` or `rediss://` URL, the one form every Redis location takes here. */
export function isRedisUrl(text: string): boolean {
  if (!/^rediss?:\/\/\S+$/.test(text) || !URL.canParse(text)) return false;
  const url = new URL(text);
  // The path is the database (`/3`): anything else is a mistake, often an unencoded `/` in a
  // password, which would move part of it into the host name.
  return url.hostname !== '' && /^(\/\d{0,5})?$/.test(url.pathname);
}

/** What is wrong with a Redis URL whose user name or password does not decode, and what to do. */
export const UNDECODABLE_CREDENTIALS =
  'a % in the user name or password begins no percent-encoded character: write % as %25 (and @ : / ? # as %40 %3A %2F %3F %23)';

/**
 * A Redis URL whose user name or password does not decode, most often for a raw `%` in a
 * password. `source` names where the URL was given (`REDIS_URL`, `REDIS_SECRET_ID`, `--to`);
 * the message never holds the URL or its password.
 */
export class UndecodableRedisCredentials extends ConfigError {
  readonly source: string;
  constructor(source: string) {
    super(`${source}: ${UNDECODABLE_CREDENTIALS}`);
    this.source = source;
  }
}

/**
 * Refuses a Redis URL (one `isRedisUrl` accepts) whose user name or password does not decode: the
 * URL parser keeps a raw `%`, and the connection would fail at every attempt with "URI malformed".
 */
export function checkRedisCredentials(url: string, source: string): void {
  const { username, password } = new URL(url);
  try {
    decodeURIComponent(username);
    decodeURIComponent(password);
  } catch {
    throw new UndecodableRedisCredentials(source);
  }
}

/** The host and port a URL names. */
export function hostAndPort(url: URL): { host: string; port: number } {
  return { host: url.hostname, port: Number(url.port || DEFAULT_REDIS_PORT) };
}

/** The database a URL names (`redis://host/3`); 0 when it names none. */
export function databaseOf(url: URL): number {
  return url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
}

/** The endpoint for humans: scheme, user, host, port and database, never the password. */
export function describeRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    // A user name given alone (`redis://<secret>@host`) is how redis-cli users write a password:
    // it is masked as one. Beside a password, it is a user name and is shown.
    let auth = '';
    if (parsed.password !== '') auth = `${decodeURIComponent(parsed.username)}:***@`;
    else if (parsed.username !== '') auth = '***@';
    const { host, port } = hostAndPort(parsed);
    const database = parsed.pathname.length > 1 ? parsed.pathname : '';
    return `${parsed.protocol}//${auth}${host}:${port}${database}`;
  } catch {
    return '<unparseable Redis URL>';
  }
}
