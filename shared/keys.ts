// The one key-naming module. Every key starts with `tc:`; keys that a multi-key command or
// script touches together share a hash tag (`{...}`) so they live in one Redis Cluster slot.

import { createHash } from 'node:crypto';

export const KEY_PREFIX = 'tc:';

/** Hex SHA-256, for keys built from user-supplied or secret text (emails, tokens, prompts). */
export function digest(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** `tc:{<tag>}:<part>:<part>`: the tag decides the cluster slot. */
export function key(tag: string, ...parts: Array<string | number>): string {
  return `${KEY_PREFIX}{${tag}}${parts.map((part) => `:${part}`).join('')}`;
}
