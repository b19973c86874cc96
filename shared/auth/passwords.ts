// Password hashing: node:crypto scrypt (no native module to break in a Lambda bundle). The cost
// parameters are stored with each hash so they can be raised later: a hash made with weaker
// parameters than the configured ones is re-made at the owner's next successful login.
//
//   scrypt$<log2 N>$<r>$<p>$<salt, base64>$<key, base64>      e.g. scrypt$17$8$1$…$…

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { config, PASSWORD_SCRYPT_LOG2N } from '../config.ts';

interface ScryptParameters {
  log2N: number;
  r: number;
  p: number;
}

interface StoredHash extends ScryptParameters {
  salt: Buffer;
  key: Buffer;
}

const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 64;

/** Weaker stored hashes than this are treated as corrupt rather than trusted. */
const STORED_LOG2N_MIN = 10;

/**
 * The work (N·r·p) of the costliest hash this service makes. A stored hash asking for more is
 * treated as corrupt rather than run: its 128·N·r bytes would not fit the function's memory.
 */
const MAX_STORED_WORK = 2 ** PASSWORD_SCRYPT_LOG2N.max * BLOCK_SIZE * PARALLELISM;

function configuredParameters(): ScryptParameters {
  return { log2N: config().auth.passwordScryptLog2N, r: BLOCK_SIZE, p: PARALLELISM };
}

/** NFKC: the same password typed on two keyboards (composed or decomposed accents) is one password. */
function normalised(password: string): string {
  return password.normalize('NFKC');
}

/** In characters as the user sees them (`passwordLength`): the contract's bounds. */
export const PASSWORD_LENGTH = { min: 12, max: 256 };

/**
 * Past this many UTF-16 units (8 a character) a password is refused as too long without being
 * segmented: a bound on the work, generous for any text a person types. Login accepts as many,
 * so that every password registration took can log in.
 */
export const PASSWORD_MAX_UNITS = 8 * PASSWORD_LENGTH.max;

let graphemes: Intl.Segmenter | undefined;

/**
 * A password's length in characters as the user sees them (grapheme clusters), which is what a
 * minimum length is about: `e` + combining acute six times is `éééééé`, six characters, and so is
 * `x` + combining acute six times; a family emoji is one. Not the code points NFKC makes for the
 * hash, which expands compatibility characters (`ﷺ` into 18).
 */
export function passwordLength(password: string): number {
  graphemes ??= new Intl.Segmenter('en', { granularity: 'grapheme' });
  let count = 0;
  for (const _ of graphemes.segment(password)) count += 1;
  return count;
}

function derive(password: string, salt: Buffer, keyBytes: number, { log2N, r, p }: ScryptParameters): Promise<Buffer> {
  const N = 2 ** log2N;
  // scrypt needs 128·N·r bytes; Node's default ceiling (32 MiB) is below N = 2^17.
  const maxmem = 2 * 128 * N * r;
  return new Promise((resolve, reject) => {
    scrypt(normalised(password), salt, keyBytes, { N, r, p, maxmem }, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

function encode({ log2N, r, p, salt, key }: StoredHash): string {
  return ['scrypt', log2N, r, p, salt.toString('base64'), key.toString('base64')].join('$');
}

function decode(text: string): StoredHash | undefined {
  const match = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*)$/.exec(text);
  if (!match) return undefined;
  const [log2N, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const salt = Buffer.from(match[4]!, 'base64');
  const key = Buffer.from(match[5]!, 'base64');
  if (log2N < STORED_LOG2N_MIN || r < 1 || p < 1 || 2 ** log2N * r * p > MAX_STORED_WORK || key.length < 16) return undefined;
  return { log2N, r, p, salt, key };
}

/** A new hash of `password` with the configured parameters and a fresh salt. */
export async function hashPassword(password: string): Promise<string> {
  const parameters = configuredParameters();
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, parameters);
  return encode({ ...parameters, salt, key });
}

/**
 * Stands in for the hash of an account that does not exist: the configured parameters, a random
 * salt and a random key that no password derives to. Made without running scrypt, so verifying
 * against it costs exactly one derivation, the same as verifying a real hash.
 */
function dummyHash(): StoredHash {
  return { ...configuredParameters(), salt: randomBytes(SALT_BYTES), key: randomBytes(KEY_BYTES) };
}

export type Verification =
  | { ok: false }
  | {
      ok: true;
      /** The stored hash uses weaker parameters than the configured ones: re-hash now that the password is known. */
      needsRehash: boolean;
    };

/**
 * The one check of a password, used for known and unknown accounts alike: `storedHash` is
 * undefined for an unknown email, and the same scrypt work is then done against a dummy hash, so
 * the answer's timing does not tell whether the account exists.
 */
export async function verifyPassword(password: string, storedHash: string | undefined): Promise<Verification> {
  const stored = (storedHash === undefined ? undefined : decode(storedHash)) ?? dummyHash();
  const derived = await derive(password, stored.salt, stored.key.length, stored);
  const ok = storedHash !== undefined && timingSafeEqual(derived, stored.key);
  return ok ? { ok, needsRehash: isWeakerThanConfigured(stored) } : { ok };
}

function isWeakerThanConfigured(stored: StoredHash): boolean {
  const wanted = configuredParameters();
  return (
    stored.log2N < wanted.log2N ||
    stored.r < wanted.r ||
    stored.p < wanted.p ||
    stored.salt.length < SALT_BYTES ||
    stored.key.length < KEY_BYTES
  );
}
