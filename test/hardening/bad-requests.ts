// fast-check generators of requests that every route must refuse with a 4xx problem: malformed
// and wrongly typed bodies, every bound of the contract, huge strings, deep nesting, invalid
// UTF-8, prototype-pollution keys, duplicate keys, wrong content types, base64-encoded bodies,
// empty bodies and top-level non-objects; garbage Authorization headers and huge headers.
//
// Every generated request is invalid by construction (the bodies that would be accepted are the
// route's `valid` body and nothing it can shrink to), so a 2xx is as much a failure as a 5xx.
// Several generators hide a *valid* body behind the fault (under `__proto__`, beside a duplicate
// key, around invalid bytes, behind a wrong content type): a lenient parser would accept those.

import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { PASSWORD_MAX_UNITS } from '../../shared/auth/passwords.ts';

export interface BadRequest {
  /** Which generator made it (shown when a case fails). */
  kind: string;
  /** The status this refusal must have, where the generator knows it. */
  status?: number;
  body?: string;
  isBase64Encoded?: boolean;
  headers: Record<string, string>;
  query?: Record<string, string>;
}

export interface BodyRoute {
  /** A body the route accepts; fields named here are the ones the generators break. */
  valid: () => Record<string, unknown>;
  /** Bodies with one field of a wrong type, out of bounds, missing or unknown. */
  wrongFields: fc.Arbitrary<Record<string, unknown>>;
  /** The string field a huge value or invalid bytes are put into. */
  textField: (body: Record<string, unknown>, text: string) => Record<string, unknown>;
  /** Whether an arbitrary JSON value could be accepted (such values are not generated). */
  couldBeValid: (value: unknown) => boolean;
}

const JSON_TYPE = 'application/json';

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** JSON values other than strings (for fields that must be strings). */
export const notAString = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

/** JSON values other than numbers. */
export const notANumber = fc.oneof(fc.string({ maxLength: 10 }), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.constant({}));

const body = (kind: string, text: string, headers: Record<string, string> = {}, extra: Partial<BadRequest> = {}): BadRequest => ({
  kind,
  body: text,
  headers: { 'content-type': JSON_TYPE, ...headers },
  ...extra,
});

/** Text that JSON.parse refuses. */
export const malformedJson: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('{', '}', '{"a":}', "{'a':1}", '{"a":1,}', '[1,2', 'NaN', 'undefined', '{"a":01}', '\u0000', '{"a":"\u0001"}', '"\\x"', '{a:1}', '// {}', '{"a":1}{"b":2}'),
  fc.string({ maxLength: 60 }).filter((text) => {
    try {
      JSON.parse(text);
      return false;
    } catch {
      return true;
    }
  }),
);

/** Empty bodies and top-level values that are not an object. */
function emptyOrNotAnObject(route: BodyRoute): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom('', ' ', '\n\t', 'null', '[]', '{}', '0', '-1', '1e309', '"text"', 'true', 'false'),
    fc.constant(0).map(() => JSON.stringify([route.valid()])),
    fc.jsonValue({ maxDepth: 3 }).filter((value) => !route.couldBeValid(value)).map((value) => JSON.stringify(value)),
  );
}

/** A string of `length` characters, cheap to make, not all the same character. */
function longText(length: number): string {
  return 'abcdefghij'.repeat(Math.ceil(length / 10)).slice(0, length);
}

/** Nesting of `depth` arrays or objects, at the top or in a field of the valid body. */
function deepNesting(route: BodyRoute): fc.Arbitrary<BadRequest> {
  return fc
    .record({ depth: fc.integer({ min: 1_000, max: 10_000 }), shape: fc.constantFrom('array', 'object'), inField: fc.boolean() })
    .map(({ depth, shape, inField }) => {
      const nested = shape === 'array' ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      if (!inField) return body(`deep ${shape} ${depth}`, nested, {}, { status: 400 });
      const valid = route.valid();
      const [field] = Object.keys(valid);
      return body(`deep ${shape} ${depth} in ${field}`, JSON.stringify({ ...valid, [field!]: '@@' }).replace('"@@"', nested), {}, { status: 400 });
    });
}

/** Byte sequences that are not UTF-8: lone continuation, overlong, surrogate, beyond U+10FFFF, truncated. */
const INVALID_UTF8 = [[0xff], [0xfe], [0x80], [0xc0, 0x80], [0xc1, 0xbf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]];

/** The valid body with invalid bytes inside one of its strings, base64-encoded as API Gateway sends binary. */
function invalidUtf8(route: BodyRoute): fc.Arbitrary<BadRequest> {
  return fc.record({ bytes: fc.constantFrom(...INVALID_UTF8), at: fc.nat(8) }).map(({ bytes, at }) => {
    const marker = 'MARKER-OF-BAD-BYTES';
    const text = JSON.stringify(route.textField(route.valid(), `valid text ${marker}`));
    const [head, tail] = text.split(marker) as [string, string];
    const raw = Buffer.concat([Buffer.from(head.slice(0, head.length - at)), Buffer.from(bytes), Buffer.from(head.slice(head.length - at)), Buffer.from(tail)]);
    return body(`invalid utf-8 ${Buffer.from(bytes).toString('hex')}`, raw.toString('base64'), {}, { isBase64Encoded: true, status: 400 });
  });
}

/** The valid body hidden where only a prototype-polluting parser or merge would find it. */
function prototypeKeys(route: BodyRoute): fc.Arbitrary<BadRequest> {
  return fc.constantFrom('__proto__', 'constructor', 'prototype', 'constructor.prototype', '__proto__.__proto__').map((path) => {
    let text = JSON.stringify(route.valid());
    for (const key of path.split('.').reverse()) text = `{"${key}":${text}}`;
    return body(`prototype key ${path}`, text, {}, { status: 400 });
  });
}

/** Values no field of any route accepts (a number is not even a token array on its own). */
const wrongForEveryField = fc.oneof(fc.integer(), fc.boolean(), fc.constant({}));

/**
 * The valid body with one of its fields given twice, once with a bad value, in either order: the
 * bad value last (what JSON.parse keeps) or first (what a reader keeping the first value would see).
 */
function duplicateKeys(route: BodyRoute): fc.Arbitrary<BadRequest> {
  return fc.record({ value: wrongForEveryField, pick: fc.nat(), badFirst: fc.boolean() }).map(({ value, pick, badFirst }) => {
    const valid = route.valid();
    const fields = Object.keys(valid);
    const field = fields[pick % fields.length]!;
    const duplicate = `${JSON.stringify(field)}:${JSON.stringify(value)}`;
    const text = badFirst ? `{${duplicate},${JSON.stringify(valid).slice(1)}` : `${JSON.stringify(valid).slice(0, -1)},${duplicate}}`;
    return body(`duplicate key ${field}${badFirst ? ', bad value first' : ''}`, text, {}, { status: 400 });
  });
}

/** Media types that are not JSON (application/json, its +json suffixes and case variants are). */
const notJsonMediaType = fc.oneof(
  fc.constantFrom('text/plain', 'text/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/json-seq', 'application/jsonx', 'json', '*/*', 'application/octet-stream', ';application/json', 'application/ json'),
  fc.string({ maxLength: 30 }).filter((type) => !/^\s*application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(type)),
);

/** The valid body sent with a content type that is not JSON, or none. */
function wrongContentType(route: BodyRoute): fc.Arbitrary<BadRequest> {
  return fc.oneof(
    notJsonMediaType.map((type) => body(`content-type ${JSON.stringify(type)}`, JSON.stringify(route.valid()), { 'content-type': type }, { status: 415 })),
    fc.constant(0).map((): BadRequest => ({ kind: 'no content-type', body: JSON.stringify(route.valid()), headers: {}, status: 415 })),
  );
}

/**
 * The body limit the bad-input suites run with (MAX_BODY_BYTES), lower than the default (6 MiB)
 * so that bodies over it stay cheap to build, thousands of times.
 */
export const TEST_BODY_LIMIT_BYTES = 524_288;

/** A string field of the valid body made huge: beyond the field's bound or beyond the body limit. */
function hugeStrings(route: BodyRoute): fc.Arbitrary<BadRequest> {
  // The two larger sizes are over TEST_BODY_LIMIT_BYTES: refused before parsing.
  return fc.constantFrom(40_000, 300_000, 600_000, 2_000_000).map((length) =>
    body(`huge string ${length}`, JSON.stringify(route.textField(route.valid(), longText(length))), {}, length > TEST_BODY_LIMIT_BYTES ? { status: 413 } : { status: 400 }),
  );
}

/** Bad bodies of every kind for a route that reads a JSON body. */
export function badBodies(route: BodyRoute): fc.Arbitrary<BadRequest> {
  const plain = fc.oneof(
    { weight: 4, arbitrary: route.wrongFields.map((value) => body('wrong field', JSON.stringify(value))) },
    { weight: 2, arbitrary: malformedJson.map((text) => body('malformed json', text, {}, { status: 400 })) },
    { weight: 2, arbitrary: emptyOrNotAnObject(route).map((text) => body('empty or not an object', text)) },
  );
  return fc.oneof(
    { weight: 8, arbitrary: plain },
    { weight: 2, arbitrary: plain.map((request) => ({ ...request, kind: `base64 ${request.kind}`, body: Buffer.from(request.body ?? '').toString('base64'), isBase64Encoded: true })) },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 40 }).map((text) => body('base64 flag on non-base64 text', text, {}, { isBase64Encoded: true })) },
    { weight: 2, arbitrary: deepNesting(route) },
    { weight: 2, arbitrary: invalidUtf8(route) },
    { weight: 2, arbitrary: prototypeKeys(route) },
    { weight: 2, arbitrary: duplicateKeys(route) },
    { weight: 2, arbitrary: wrongContentType(route) },
    { weight: 1, arbitrary: hugeStrings(route) },
  );
}

/** Authorization values that name no live session (the valid token's own variants included). */
export function garbageAuthorization(validToken: string): fc.Arbitrary<string> {
  const b64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 43, maxLength: 43 });
  return fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.string({ maxLength: 80 }).map((text) => `Bearer ${text}`),
    b64url.filter((token) => token !== validToken).map((token) => `Bearer ${token}`),
    fc.constantFrom(
      '',
      'Bearer',
      'Bearer ',
      `Basic ${Buffer.from('user:pass').toString('base64')}`,
      `Token ${validToken}`,
      validToken,
      `Bearer ${validToken}x`,
      `Bearer ${validToken.slice(1)}`,
      `Bearer ${validToken}, Bearer ${validToken}`,
      `Bearer ${validToken}\u0000`,
      `Bearer\t${validToken}`,
      `Bearer ${'A'.repeat(100_000)}`,
      `Bearer ${encodeURIComponent('../../etc/passwd')}`,
      'Bearer {rl:x}*',
    ),
  );
}

/** Many or huge headers beside an otherwise valid request. */
export const hugeHeaders: fc.Arbitrary<Record<string, string>> = fc.oneof(
  fc.constantFrom(16_000, 64_000, 1_000_000).map((length) => ({ 'x-junk': longText(length) })),
  fc.integer({ min: 100, max: 2000 }).map((count) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`x-junk-${i}`, `value-${i}`]))),
  fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }).map((name) => `x-${name}`), fc.string({ maxLength: 200 }), { maxKeys: 20 }),
);

/** Values of `?all=` that are neither true nor false (in any case). */
export const garbageAll = fc
  .oneof(fc.string({ maxLength: 40 }), fc.constantFrom('yes', 'on', ' true', 'true ', '2', '-1', '', 'true,true', 'null', 'undefined'))
  .filter((value) => !['true', '1', 'false', '0'].includes(value.toLowerCase()));


// ── The routes that read a JSON body ─────────────────────────────────────────────────────────

const GOOD_PASSWORD = 'correct horse battery staple';
const uniqueEmail = () => `fuzz-${randomUUID()}@example.test`;
const chars = (min: number, max: number) => fc.integer({ min, max }).map(longText);
const hasFields = (...fields: string[]) => (value: unknown) => isObject(value) && fields.some((field) => field in value);

export const registerRoute: BodyRoute = {
  valid: () => ({ email: uniqueEmail(), password: GOOD_PASSWORD, name: 'Ada' }),
  wrongFields: fc.oneof(
    fc.record({
      email: fc.oneof(
        notAString,
        fc.string({ maxLength: 40 }).filter((text) => !text.includes('@')),
        fc.constantFrom('', '   ', '@', 'a@', '@b.co', 'a b@c.d', 'a@b@c.d', 'a@b..c', `${'a'.repeat(250)}@b.co`, 'ada@example.org\u0000'),
      ),
      password: fc.constant(GOOD_PASSWORD),
    }),
    fc.record({ email: fc.constant(0).map(uniqueEmail), password: fc.oneof(notAString, fc.string({ maxLength: 11 }), chars(257, 400)) }),
    fc.record({
      email: fc.constant(0).map(uniqueEmail),
      password: fc.constant(GOOD_PASSWORD),
      name: fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.string(), { maxLength: 2 }), fc.constant({}), chars(101, 200)),
    }),
    fc.constantFrom({ email: 'ada@example.org' }, { password: GOOD_PASSWORD }, {}),
  ),
  textField: (body, text) => ({ ...body, password: text }),
  couldBeValid: hasFields('email', 'password'),
};

export const loginRoute: BodyRoute = {
  valid: () => ({ email: uniqueEmail(), password: GOOD_PASSWORD }),
  wrongFields: fc.oneof(
    fc.record({ email: fc.oneof(notAString, fc.constantFrom('', '   ', '\t\n'), chars(255, 300)), password: fc.constant(GOOD_PASSWORD) }),
    fc.record({ email: fc.constant('ada@example.org'), password: fc.oneof(notAString, fc.constant(''), chars(PASSWORD_MAX_UNITS + 1, 5000)) }),
    fc.constantFrom({ email: 'ada@example.org' }, { password: GOOD_PASSWORD }, {}),
  ),
  textField: (body, text) => ({ ...body, password: text }),
  couldBeValid: hasFields('email', 'password'),
};

const CHAT_FIELDS = ['messages', 'model', 'maxTokens', 'temperature', 'system'];
const question = (content: string) => ({ role: 'user', content });

export function chatRoute(models: string[]): BodyRoute {
  const valid = () => ({ messages: [question('What is a prime number?')] });
  const withField = (field: string) => (value: unknown) => ({ ...valid(), [field]: value });
  return {
    valid,
    wrongFields: fc.oneof(
      fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.constant(null), fc.constant({}), fc.constant([])).map((messages) => ({ messages })),
      fc.integer({ min: 51, max: 80 }).map((count) => ({ messages: Array.from({ length: count }, () => question('hi')) })),
      fc.constant({ messages: [question('hi'), { role: 'assistant', content: 'hello' }] }),
      fc.string({ maxLength: 12 }).filter((role) => role !== 'user' && role !== 'assistant').map((role) => ({ messages: [{ role, content: 'hi' }] })),
      fc.oneof(notAString, fc.constant(''), chars(32_001, 33_000)).map((content) => ({ messages: [{ role: 'user', content }] })),
      fc.constantFrom({ messages: [{ role: 'user' }] }, { messages: [{ content: 'hi' }] }, { messages: ['hi'] }, { messages: [null] }, { messages: [question('hi'), 'hi'] }),
      fc.string({ maxLength: 12 }).map((extra) => ({ messages: [{ ...question('hi'), [`x${extra}`]: 1 }] })),
      fc.oneof(notAString, fc.string({ maxLength: 30 }).filter((model) => !models.includes(model))).map(withField('model')),
      fc.oneof(fc.constantFrom(0, -1, 4097, 1.5, 1e9), notANumber).map(withField('maxTokens')),
      fc.oneof(fc.constantFrom(-0.01, 1.01, 2, -1, 1e300), notANumber).map(withField('temperature')),
      fc.jsonValue({ maxDepth: 2 }).map(withField('system')),
      fc.string({ maxLength: 20 }).filter((field) => !CHAT_FIELDS.includes(field)).map((field) => withField(field)(true)),
    ),
    textField: (body, text) => ({ ...body, messages: [question(text)] }),
    couldBeValid: hasFields('messages'),
  };
}

export function embeddingsRoute(model: string, dimensions: number): BodyRoute {
  const valid = () => ({ input: 'a short text to embed' });
  const withField = (field: string) => (value: unknown) => ({ ...valid(), [field]: value });
  return {
    valid,
    wrongFields: fc.oneof(
      fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.constant({}), fc.constant(''), fc.constant([])).map((input) => ({ input })),
      fc.constantFrom({}, { model }, { inputs: 'plural is not the field' }),
      fc.integer({ min: 257, max: 400 }).map((count) => ({ input: Array.from({ length: count }, (_, i) => `text ${i}`) })),
      // At least one text beside the bad item: alone, a whole number would be a valid token array.
      fc.tuple(fc.array(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 5 }), notAString, fc.nat(5)).map(([texts, bad, at]) => {
        const input: unknown[] = [...texts];
        input.splice(at % (texts.length + 1), 0, bad);
        return { input };
      }),
      // Token arrays are valid input (OpenAI's pre-tokenised form); mixed, negative or empty ones are not.
      fc.constantFrom({ input: ['fine', ''] }, { input: [[1, 2, 3], 'mixed'] }, { input: [1, -2, 3] }, { input: [[]] }, { input: [['nested']] }),
      chars(8193, 9000).map((text) => ({ input: text })),
      // Any model name is accepted (the server embeds with its own): only a non-string or empty one is wrong.
      fc.oneof(notAString, fc.constant('')).map(withField('model')),
      fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.constant(null)).filter((format) => format !== 'float' && format !== 'base64').map(withField('encoding_format')),
      fc.oneof(fc.integer().filter((n) => n !== dimensions), notANumber).map(withField('dimensions')),
      fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.constant({})).map(withField('user')),
    ),
    textField: (body, text) => ({ ...body, input: text }),
    couldBeValid: hasFields('input'),
  };
}
