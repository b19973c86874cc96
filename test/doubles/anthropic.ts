// A local Anthropic Messages API (POST /v1/messages) speaking the real wire format, JSON and
// server-sent events (`"stream": true`), so the project's thin client and the official SDK both
// run against it through ANTHROPIC_BASE_URL. It counts calls, keeps what it received, and can be
// scripted to fail (429/529/5xx with retry-after headers, a dropped connection) or answer slowly.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { text as bodyText } from 'node:stream/consumers';

export const DOUBLE_API_KEY = 'sk-ant-api03-double-0123456789abcdefghijklmnopqrstuvwxyz-XYZ';

/** What the next call does; unscripted calls answer at once with `end_turn`. */
export interface Step {
  /** An error status (429, 500, 529...) instead of an answer. */
  status?: number;
  errorType?: string;
  /** Sent as `retry-after` (seconds). */
  retryAfter?: number;
  /** Sent as `retry-after-ms`. */
  retryAfterMs?: number;
  shouldRetry?: boolean;
  /** Error text; `{key}` is replaced by the API key the caller sent (to prove it is never echoed further). */
  message?: string;
  /** Wait this long before answering (headers included). */
  delayMs?: number;
  stopReason?: string;
  /** Close the socket without an answer. */
  drop?: boolean;
  /** Answer 200 with a body that is not a Messages reply. */
  garbage?: boolean;
  /** Answer 200 with a body that is not JSON at all (a proxy's HTML page, a cut-off reply). */
  unreadable?: boolean;
  /** Report these usage fields instead of the counted ones (an upstream's odd numbers). */
  usage?: Record<string, unknown>;
}

export interface ReceivedRequest {
  headers: IncomingMessage['headers'];
  body: any;
}

export interface AnthropicDouble {
  /** Base URL for ANTHROPIC_BASE_URL (no trailing slash). */
  url: string;
  apiKey: string;
  /** ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY pointing at this double. */
  env: Record<string, string>;
  /** POST /v1/messages calls received (authorised or not). */
  calls: number;
  requests: ReceivedRequest[];
  /** Applied to every unscripted call. */
  defaultDelayMs: number;
  /** Queue behaviours for the next calls, in order. */
  script(...steps: Step[]): void;
  reset(): void;
  close(): Promise<void>;
}


function sendError(response: ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_double_${Date.now()}`, ...headers });
  response.end(JSON.stringify({ type: 'error', error: { type, message } }));
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

function tokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

function systemText(system: unknown): string {
  if (typeof system === 'string') return system;
  if (Array.isArray(system)) return system.map((block: { text?: string }) => block.text ?? '').join('');
  return '';
}

function lastUserText(messages: unknown): string {
  const last = Array.isArray(messages) ? messages.at(-1) : undefined;
  const content = (last as { content?: unknown } | undefined)?.content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((block: { text?: string }) => block.text ?? '').join('');
  return '';
}

export async function startAnthropicDouble(): Promise<AnthropicDouble> {
  const queue: Step[] = [];
  const sockets = new Set<Socket>();
  const cachedSystems = new Set<string>();
  let sequence = 0;
  const double = { calls: 0, requests: [], defaultDelayMs: 0, apiKey: DOUBLE_API_KEY } as unknown as AnthropicDouble;

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== 'POST' || request.url?.split('?')[0] !== '/v1/messages') {
      return sendError(response, 404, 'not_found_error', `no route ${request.method} ${request.url}`);
    }
    const text = await bodyText(request);
    double.calls += 1;
    const step = queue.shift() ?? { delayMs: double.defaultDelayMs };
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      return sendError(response, 400, 'invalid_request_error', 'request body is not valid JSON');
    }
    double.requests.push({ headers: request.headers, body });
    if (step.delayMs) await new Promise((resolve) => setTimeout(resolve, step.delayMs));
    if (step.drop) {
      request.socket.destroy();
      return;
    }
    // The API takes the key as x-api-key or (newer SDKs) as a bearer token.
    const bearer = /^Bearer (.+)$/.exec(String(request.headers.authorization ?? ''))?.[1];
    const sentKey = String(request.headers['x-api-key'] ?? bearer ?? '');
    if (sentKey !== DOUBLE_API_KEY) return sendError(response, 401, 'authentication_error', 'invalid x-api-key');
    if (request.headers['anthropic-version'] === undefined) {
      return sendError(response, 400, 'invalid_request_error', 'anthropic-version: header is required');
    }
    if (step.status !== undefined) {
      const headers: Record<string, string> = {};
      if (step.retryAfter !== undefined) headers['retry-after'] = String(step.retryAfter);
      if (step.retryAfterMs !== undefined) headers['retry-after-ms'] = String(step.retryAfterMs);
      if (step.shouldRetry !== undefined) headers['x-should-retry'] = String(step.shouldRetry);
      const message = (step.message ?? 'scripted failure').replaceAll('{key}', sentKey);
      return sendError(response, step.status, step.errorType ?? ERROR_TYPES[step.status] ?? 'api_error', message, headers);
    }
    if (typeof body.model !== 'string' || typeof body.max_tokens !== 'number' || !Array.isArray(body.messages)) {
      return sendError(response, 400, 'invalid_request_error', 'model, max_tokens and messages are required');
    }
    if (step.unreadable) {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('<html>502 Bad Gateway</html>');
      return;
    }
    if (step.garbage) {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{"unexpected": true}');
      return;
    }

    // A deterministic reply: a tutor's question about the student's last message.
    sequence += 1;
    const answer = `Claude double (${body.model}) asks: what have you tried so far on "${lastUserText(body.messages).slice(0, 80)}"?`;
    const system = systemText(body.system);
    const cacheable = Array.isArray(body.system) && body.system.some((block: { cache_control?: unknown }) => block.cache_control);
    const systemTokens = tokens(system);
    const cacheRead = cacheable && cachedSystems.has(system) ? systemTokens : 0;
    const cacheCreation = cacheable && cacheRead === 0 ? systemTokens : 0;
    if (cacheable) cachedSystems.add(system);
    const messageTokens = tokens(JSON.stringify(body.messages));
    const usage = {
      input_tokens: messageTokens + (cacheable ? 0 : systemTokens),
      cache_creation_input_tokens: cacheCreation,
      cache_read_input_tokens: cacheRead,
      output_tokens: tokens(answer),
      ...step.usage,
    };
    const id = `msg_double_${String(sequence).padStart(6, '0')}`;
    const stopReason = step.stopReason ?? 'end_turn';
    if (body.stream === true) return stream(response, { id, model: body.model, answer, stopReason, usage });
    response.writeHead(200, { 'content-type': 'application/json', 'request-id': `req_double_${sequence}` });
    response.end(
      JSON.stringify({
        id,
        type: 'message',
        role: 'assistant',
        model: body.model,
        content: [{ type: 'text', text: answer }],
        stop_reason: stopReason,
        stop_sequence: null,
        usage,
      }),
    );
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) sendError(response, 500, 'api_error', String(error));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return Object.assign(double, {
    url,
    env: { ANTHROPIC_BASE_URL: url, ANTHROPIC_API_KEY: DOUBLE_API_KEY },
    script: (...steps: Step[]) => queue.push(...steps),
    reset: () => {
      queue.length = 0;
      double.calls = 0;
      double.requests = [];
      double.defaultDelayMs = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

interface StreamedMessage {
  id: string;
  model: string;
  answer: string;
  stopReason: string;
  usage: { input_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number; output_tokens: number };
}

/** The Messages streaming protocol: message_start, one text block in deltas, message_delta, message_stop. */
function stream(response: ServerResponse, message: StreamedMessage): void {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = (event: string, data: unknown) => response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  send('message_start', {
    type: 'message_start',
    message: {
      id: message.id,
      type: 'message',
      role: 'assistant',
      model: message.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...message.usage, output_tokens: 1 },
    },
  });
  send('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  send('ping', { type: 'ping' });
  for (const piece of message.answer.match(/.{1,16}/gs) ?? []) {
    send('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } });
  }
  send('content_block_stop', { type: 'content_block_stop', index: 0 });
  send('message_delta', {
    type: 'message_delta',
    delta: { stop_reason: message.stopReason, stop_sequence: null },
    usage: { output_tokens: message.usage.output_tokens },
  });
  send('message_stop', { type: 'message_stop' });
  response.end();
}
