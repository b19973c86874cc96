// The body of POST /embeddings, OpenAI's shape: `input` (a string or 1 to 256 strings of 1 to
// 8,192 characters; or, pre-tokenised, one array or 1 to 256 arrays of 1 to 8,192 token ids),
// optional `model`, `encoding_format` ('float' or 'base64': the official SDKs ask for base64 and
// decode it), `dimensions` (the configured ones) and `user` (accepted, unused). Other fields are
// ignored, as OpenAI-compatible servers do. Every fault is named with its path, in one 400 problem.
//
// `model` may name any model: the server decides which model embeds, as it decides the chat
// system prompt, and the response names the model it used. Clients send their own default
// ("text-embedding-3-small", "text-embedding-ada-002") and must work unchanged.
//
// Checked by hand rather than with a schema: `input` is a union of four shapes, and a schema
// library reports a value that fits none as one error about the union; here each of up to 256
// inputs is named with what is wrong with it (a number among strings: "cannot be mixed").

import type { FieldError } from '../problem.ts';
import { hasMoreCharactersThan, invalidRequest, MAX_REPORTED_ERRORS } from '../validation.ts';
import type { EmbeddingInput } from './provider.ts';

const MAX_INPUTS = 256;
const MAX_INPUT_CHARACTERS = 8192;
const MAX_INPUT_TOKENS = 8192;

export type EncodingFormat = 'float' | 'base64';

export interface EmbeddingsRequest {
  /** All texts or all token sequences. */
  inputs: EmbeddingInput[];
  encoding: EncodingFormat;
}

export interface Accepted {
  dimensions: number;
}

const INPUT_SHAPE = `a string, an array of 1 to ${MAX_INPUTS} strings, an array of token ids, or an array of 1 to ${MAX_INPUTS} arrays of token ids`;
// OpenAI refuses a mix too; one kind a request keeps the provider call and the cache simple.
const NOT_MIXED = '(text and token arrays cannot be mixed in one request)';
const TOKEN_ID = 'must be a token id: a non-negative integer';

type Body = Record<string, unknown>;

function isObject(value: unknown): value is Body {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isTokenId(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function textErrors(item: unknown, path: string): FieldError[] {
  if (typeof item !== 'string') {
    const mixed = typeof item === 'number' || Array.isArray(item);
    return [{ path, message: mixed ? `must be a string like the other inputs ${NOT_MIXED}` : 'must be a string' }];
  }
  if (item.length === 0) return [{ path, message: 'must have at least 1 character' }];
  if (hasMoreCharactersThan(item, MAX_INPUT_CHARACTERS)) {
    return [{ path, message: `must have at most ${MAX_INPUT_CHARACTERS} characters` }];
  }
  return [];
}

function tokenErrors(item: unknown, path: string): FieldError[] {
  if (!Array.isArray(item)) {
    const mixed = typeof item === 'string';
    return [{ path, message: mixed ? `must be an array of token ids like the other inputs ${NOT_MIXED}` : 'must be an array of token ids' }];
  }
  if (item.length === 0) return [{ path, message: 'must have at least 1 token' }];
  if (item.length > MAX_INPUT_TOKENS) return [{ path, message: `must have at most ${MAX_INPUT_TOKENS} tokens` }];
  const errors: FieldError[] = [];
  for (let i = 0; i < item.length && errors.length < MAX_REPORTED_ERRORS; i += 1) {
    const id: unknown = item[i];
    if (isTokenId(id)) continue;
    errors.push({ path: `${path}.${i}`, message: typeof id === 'string' ? `${TOKEN_ID} ${NOT_MIXED}` : TOKEN_ID });
  }
  return errors;
}

/**
 * The kind of an input array follows its first string, number or array: numbers are one token
 * sequence, arrays a batch of token sequences, strings a batch of texts.
 */
function inputErrors(input: unknown): FieldError[] {
  if (input === undefined) return [{ path: 'input', message: `is required: ${INPUT_SHAPE}` }];
  if (typeof input === 'string') return textErrors(input, 'input');
  if (!Array.isArray(input)) return [{ path: 'input', message: `must be ${INPUT_SHAPE}` }];
  if (input.length === 0) return [{ path: 'input', message: 'must have at least 1 item' }];
  const first: unknown = input.find((item) => typeof item === 'string' || typeof item === 'number' || Array.isArray(item));
  if (typeof first === 'number') return tokenErrors(input, 'input');
  if (input.length > MAX_INPUTS) return [{ path: 'input', message: `must have at most ${MAX_INPUTS} items` }];
  const itemErrors = Array.isArray(first) ? tokenErrors : textErrors;
  const errors: FieldError[] = [];
  for (let i = 0; i < input.length && errors.length < MAX_REPORTED_ERRORS; i += 1) errors.push(...itemErrors(input[i], `input.${i}`));
  return errors;
}

function optionErrors(body: Body, accepted: Accepted): FieldError[] {
  const errors: FieldError[] = [];
  const { model, encoding_format: encoding, dimensions, user } = body;
  if (model !== undefined && (typeof model !== 'string' || model === '')) {
    errors.push({ path: 'model', message: 'must be a non-empty string (any name: this server embeds with its configured model)' });
  }
  if (encoding !== undefined && encoding !== 'float' && encoding !== 'base64') {
    errors.push({ path: 'encoding_format', message: 'must be one of "float", "base64"' });
  }
  if (dimensions !== undefined && dimensions !== accepted.dimensions) {
    errors.push({ path: 'dimensions', message: `must be ${accepted.dimensions} (the dimensions this server embeds with)` });
  }
  if (user !== undefined && typeof user !== 'string') errors.push({ path: 'user', message: 'must be a string' });
  return errors;
}

function inputsOf(input: string | unknown[]): EmbeddingInput[] {
  if (typeof input === 'string' || typeof input[0] === 'number') return [input as EmbeddingInput];
  return input as EmbeddingInput[];
}

/** The validated request, or a 400 problem naming every field at fault. */
export function parseEmbeddingsRequest(body: unknown, accepted: Accepted): EmbeddingsRequest {
  const errors = isObject(body)
    ? [...inputErrors(body['input']), ...optionErrors(body, accepted)]
    : [{ path: '(body)', message: 'must be a JSON object with an "input" field' }];
  if (errors.length > 0) throw invalidRequest(errors);
  const valid = body as Body;
  return {
    inputs: inputsOf(valid['input'] as string | unknown[]),
    encoding: valid['encoding_format'] === 'base64' ? 'base64' : 'float',
  };
}
