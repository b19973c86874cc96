// The body of POST /embeddings, OpenAI's shape: `input` (a string or 1 to 256 strings of 1 to
// 8,192 characters), optional `model` (the configured one), `encoding_format` ('float' or
// 'base64': the official SDKs ask for base64 and decode it), `dimensions` (the configured ones)
// and `user` (accepted, unused). Other fields are ignored, as OpenAI-compatible servers do.
// Every fault is named with its path, in one 400 problem.

import { HttpProblem, type FieldError } from '../problem.ts';

export const MAX_INPUTS = 256;
export const MAX_INPUT_CHARACTERS = 8192;
/** Enough to show what is wrong without a 256-line error body. */
const MAX_REPORTED_ERRORS = 20;

export type EncodingFormat = 'float' | 'base64';

export interface EmbeddingsRequest {
  texts: string[];
  encoding: EncodingFormat;
}

export interface Accepted {
  model: string;
  dimensions: number;
}

const TOKEN_ARRAYS =
  'must be text: a string or an array of strings (token arrays are not supported; LangChain Python: set check_embedding_ctx_length=False)';

type Body = Record<string, unknown>;

function isObject(value: unknown): value is Body {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Characters as people count them (code points), so an emoji is one, not two. */
function characterCount(text: string, atMost: number): number {
  if (text.length <= atMost) return text.length; // code points never exceed code units
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

function inputErrors(input: unknown): FieldError[] {
  if (input === undefined) return [{ path: 'input', message: `is required: a string or an array of 1 to ${MAX_INPUTS} strings` }];
  if (typeof input === 'number') return [{ path: 'input', message: TOKEN_ARRAYS }];
  const items = typeof input === 'string' ? [input] : input;
  if (!Array.isArray(items)) return [{ path: 'input', message: `must be a string or an array of 1 to ${MAX_INPUTS} strings` }];
  if (items.length === 0) return [{ path: 'input', message: 'must have at least 1 items' }];
  if (items.length > MAX_INPUTS) return [{ path: 'input', message: `must have at most ${MAX_INPUTS} items` }];
  if (items.every((item) => typeof item === 'number' || Array.isArray(item))) return [{ path: 'input', message: TOKEN_ARRAYS }];
  const pathOf = (position: number) => (typeof input === 'string' ? 'input' : `input.${position}`);
  const errors: FieldError[] = [];
  items.forEach((item, position) => {
    if (typeof item !== 'string') errors.push({ path: pathOf(position), message: 'must be a string' });
    else if (item.length === 0) errors.push({ path: pathOf(position), message: 'must have at least 1 characters' });
    else if (characterCount(item, MAX_INPUT_CHARACTERS) > MAX_INPUT_CHARACTERS) {
      errors.push({ path: pathOf(position), message: `must have at most ${MAX_INPUT_CHARACTERS} characters` });
    }
  });
  return errors;
}

function optionErrors(body: Body, accepted: Accepted): FieldError[] {
  const errors: FieldError[] = [];
  const { model, encoding_format: encoding, dimensions, user } = body;
  if (model !== undefined && model !== accepted.model) {
    errors.push({ path: 'model', message: `must be ${JSON.stringify(accepted.model)} (the model this server embeds with)` });
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

/** The validated request, or a 400 problem naming every field at fault. */
export function parseEmbeddingsRequest(body: unknown, accepted: Accepted): EmbeddingsRequest {
  const errors = isObject(body)
    ? [...inputErrors(body['input']), ...optionErrors(body, accepted)]
    : [{ path: '(body)', message: 'must be a JSON object with an "input" field' }];
  if (errors.length > 0) {
    throw new HttpProblem(400, 'validation', {
      detail: 'The request body is not valid.',
      errors: errors.slice(0, MAX_REPORTED_ERRORS),
    });
  }
  const valid = body as Body;
  return {
    texts: typeof valid['input'] === 'string' ? [valid['input']] : (valid['input'] as string[]),
    encoding: valid['encoding_format'] === 'base64' ? 'base64' : 'float',
  };
}

/**
 * What the request costs the rate limiter: one unit an input. It runs before validation, so any
 * body that is not a valid batch costs 1 (it will be refused with a 400 anyway).
 */
export function inputCount(body: unknown): number {
  const input = isObject(body) ? body['input'] : undefined;
  return Array.isArray(input) && input.length >= 1 && input.length <= MAX_INPUTS ? input.length : 1;
}
