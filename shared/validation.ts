// Request validation with zod/mini (small in the bundle), turned into 400 problems whose `errors`
// name each field and say, in words, what it must be (the first MAX_REPORTED_ERRORS of them).

import type * as z from 'zod/mini';
import { HttpProblem, shown, type FieldError } from './problem.ts';

interface Issue {
  code: string;
  path: PropertyKey[];
  origin?: string;
  expected?: string;
  minimum?: number | bigint;
  maximum?: number | bigint;
  values?: unknown[];
  keys?: string[];
  format?: string;
  message?: string;
  /** The value at fault (validated with `reportInput`); undefined when the field was missing. */
  input?: unknown;
}

/**
 * Whether `text` has more than `max` characters as people count them, and as the contract's limits
 * mean them: code points, so that an emoji is one, not the two UTF-16 units of `length`.
 */
export function hasMoreCharactersThan(text: string, max: number): boolean {
  if (text.length <= max) return false; // code points never outnumber UTF-16 units
  let count = 0;
  for (const _ of text) if (++count > max) return true;
  return false;
}

/**
 * A text limit in characters (code points) for a zod schema: `z.refine(...atMostCharacters(100))`.
 * zod's own `maxLength` counts UTF-16 units, which would refuse 100 emoji as 200.
 */
export function atMostCharacters(max: number): [check: (text: string) => boolean, params: { message: string }] {
  return [(text) => !hasMoreCharactersThan(text, max), { message: `must have at most ${max} characters` }];
}

/** `1 item`, `12 characters`: the count with the unit of a string's or a list's length. */
function counted(count: number | bigint | undefined, origin: string | undefined): string {
  const unit = origin === 'string' ? 'character' : 'item';
  return `${count} ${unit}${count === 1 || count === 1n ? '' : 's'}`;
}

function describe(issue: Issue): string {
  const measured = issue.origin === 'string' || issue.origin === 'array';
  switch (issue.code) {
    case 'invalid_type':
      if (issue.expected === 'never') return 'is not allowed';
      return issue.input !== undefined ? `must be ${article(issue.expected ?? 'value')}` : `is required: ${article(issue.expected ?? 'value')}`;
    case 'too_small':
      return measured ? `must have at least ${counted(issue.minimum, issue.origin)}` : `must be at least ${issue.minimum}`;
    case 'too_big':
      return measured ? `must have at most ${counted(issue.maximum, issue.origin)}` : `must be at most ${issue.maximum}`;
    case 'invalid_value':
      return `must be one of ${(issue.values ?? []).map((value) => JSON.stringify(value)).join(', ')}`;
    case 'invalid_format':
      return `must be a valid ${issue.format ?? 'value'}`;
    case 'custom':
      return issue.message ?? 'is invalid';
    default:
      return 'is invalid';
  }
}

function article(type: string): string {
  if (type === 'int') return 'an integer';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** `messages.0.content`; the body itself is `(body)`, and an empty key is spelled `""`. */
const pathOf = (path: readonly PropertyKey[]) => (path.length === 0 ? '(body)' : path.map((part) => (part === '' ? '""' : String(part))).join('.'));

/**
 * Whether `issue` is a bound that another issue of the same field states more tightly: a huge
 * number breaks both an integer's own bound (2^53 - 1) and the field's (4096); only the field's is told.
 */
function isLooserBound(issue: Issue, issues: readonly Issue[]): boolean {
  if (issue.code !== 'too_big' && issue.code !== 'too_small') return false;
  const bound = (other: Issue) => (issue.code === 'too_big' ? other.maximum : other.minimum);
  const own = bound(issue);
  return issues.some((other) => {
    const theirs = bound(other);
    if (other === issue || other.code !== issue.code || own === undefined || theirs === undefined) return false;
    if (pathOf(other.path) !== pathOf(issue.path)) return false;
    return issue.code === 'too_big' ? theirs < own : theirs > own;
  });
}

/** Enough to show what is wrong without an error body as large as the request (50,000 unknown fields). */
export const MAX_REPORTED_ERRORS = 20;

/**
 * The 400 of a request whose body (or other part, as `detail` says) is not valid, each field at
 * fault in `errors`: the first MAX_REPORTED_ERRORS, their paths cut as `shown` cuts (a path
 * holds the client's own keys, of any length, and may be a million levels deep).
 */
export function invalidRequest(errors: FieldError[], detail = 'The request body is not valid.'): HttpProblem {
  const reported = errors.slice(0, MAX_REPORTED_ERRORS).map(({ path, message }) => ({ path: shown(path), message }));
  return new HttpProblem(400, 'validation', { detail, errors: reported });
}

function toFieldErrors(issues: readonly Issue[]): FieldError[] {
  const told = issues.filter((issue) => !isLooserBound(issue, issues));
  return told.flatMap((issue) =>
    // An unknown field is named by its own path, one error each, as a missing one is.
    issue.code === 'unrecognized_keys'
      ? (issue.keys ?? []).map((key) => ({ path: pathOf([...issue.path, key]), message: 'is not a known field' }))
      : [{ path: pathOf(issue.path), message: describe(issue) }],
  );
}

/**
 * The path of a string (value or key) holding a lone surrogate; undefined when none does. A loop
 * over an explicit stack, not recursion: a body may nest 10,000 levels deep.
 */
function illFormedTextPath(body: unknown): PropertyKey[] | undefined {
  // Each node links to its parent; the path is only spelled out for the one string at fault.
  interface Node {
    value: unknown;
    key?: PropertyKey;
    parent?: Node;
  }
  // Gathered leaf first, then reversed: an unshift per level would be quadratic in the depth.
  const pathTo = (node: Node | undefined): PropertyKey[] => {
    const path: PropertyKey[] = [];
    for (let at = node; at?.parent !== undefined; at = at.parent) path.push(at.key!);
    return path.reverse();
  };
  const pending: Node[] = [{ value: body }];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    const { value } = node;
    if (typeof value === 'string') {
      if (!value.isWellFormed()) return pathTo(node);
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        const child: Node = { value: item, key: Array.isArray(value) ? Number(key) : key, parent: node };
        if (!key.isWellFormed()) return pathTo(child);
        pending.push(child);
      }
    }
  }
  return undefined;
}

/** An object or array open at a point of the scan below, and where in it the scan is. */
interface Container {
  /** The keys seen so far; undefined for an array. */
  keys?: Set<string>;
  /** The object's current key, or the array's current index (counted only when asked for). */
  member: PropertyKey;
}

const STRUCTURE = /["{}[\]]/g;
const STRUCTURE_AND_COMMAS = /["{}[\],]/g;

/** The index of the quote that closes the string opening at `open`. */
function closingQuote(text: string, open: number): number {
  for (let end = text.indexOf('"', open + 1); ; end = text.indexOf('"', end + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === 0x5c) backslashes += 1;
    if (backslashes % 2 === 0) return end;
  }
}

function isFollowedByColon(text: string, from: number): boolean {
  let at = from;
  while (text[at] === ' ' || text[at] === '\t' || text[at] === '\n' || text[at] === '\r') at += 1;
  return text[at] === ':';
}

/**
 * Scans TEXT, valid JSON, for a key that appears twice in one object; its path, or undefined.
 * Array indexes are counted only with `countIndexes` (commas are most of a long array of
 * numbers): the fast scan finds whether there is a duplicate, a second one spells out where.
 */
function scanForDuplicateKey(text: string, countIndexes: boolean): PropertyKey[] | undefined {
  const open: Container[] = [];
  const tokens = new RegExp(countIndexes ? STRUCTURE_AND_COMMAS : STRUCTURE);
  for (let match = tokens.exec(text); match !== null; match = tokens.exec(text)) {
    const at = match.index;
    const innermost = open.at(-1);
    switch (text[at]) {
      case '"': {
        const end = closingQuote(text, at);
        tokens.lastIndex = end + 1;
        if (innermost?.keys === undefined || !isFollowedByColon(text, end + 1)) break;
        const spelled = text.slice(at + 1, end);
        // "a" and "\u0061" are one key: escapes are compared as JSON.parse reads them.
        const key = spelled.includes('\\') ? (JSON.parse(text.slice(at, end + 1)) as string) : spelled;
        if (innermost.keys.has(key)) return [...open.slice(0, -1).map((container) => container.member), key];
        innermost.keys.add(key);
        innermost.member = key;
        break;
      }
      case '{':
        open.push({ keys: new Set(), member: '' });
        break;
      case '[':
        open.push({ member: 0 });
        break;
      case ',':
        if (innermost !== undefined && innermost.keys === undefined) innermost.member = (innermost.member as number) + 1;
        break;
      default: // a closing bracket
        open.pop();
    }
  }
  return undefined;
}

/**
 * Refuses a JSON body with a key twice in one object (`{"email": 1, "email": "a@b.co"}`): JSON.parse
 * keeps the last value, another reader (a proxy, a firewall, an audit log) may keep the first, and
 * the request it checked would not be the one served. TEXT has been parsed already (valid JSON).
 */
export function assertUniqueKeys(text: string): void {
  if (!text.includes('{') || scanForDuplicateKey(text, false) === undefined) return;
  const path = scanForDuplicateKey(text, true)!;
  throw invalidRequest([{ path: pathOf(path), message: 'appears more than once in its object' }]);
}

/**
 * Refuses a parsed JSON body that holds a lone surrogate (`"\ud800"`): valid JSON, but no text,
 * which Claude or an embeddings API would refuse (a 502 here) and a cache key would carry.
 */
export function assertWellFormedText(body: unknown): void {
  const path = illFormedTextPath(body);
  if (path === undefined) return;
  throw invalidRequest([{ path: pathOf(path), message: 'must be valid Unicode text: it holds a lone surrogate' }]);
}

/**
 * `validate` of what `read` returns (the body, whose reading may itself be refused: see
 * `deferBodyProblems` in http.ts), with `headers()` added to a refusal, e.g. a rate limit's,
 * read without spending. A failure to get them leaves the refusal as it is: a 400 must not
 * become a 503 because Redis is down.
 */
export async function validateWithHeaders<S extends z.ZodMiniType>(
  schema: S,
  read: () => unknown,
  headers: () => Promise<Record<string, string>>,
): Promise<z.infer<S>> {
  try {
    return validate(schema, read());
  } catch (error) {
    if (error instanceof HttpProblem) Object.assign(error.headers, await headers().catch(() => ({})));
    throw error;
  }
}

/** Validates `value` against `schema`; a failure is a 400 problem listing every field at fault. */
export function validate<S extends z.ZodMiniType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  throw invalidRequest(toFieldErrors(result.error.issues as unknown as Issue[]));
}
