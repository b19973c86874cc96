// What API Gateway does in front of the functions and serverless-offline does not: `npm run dev`
// listens here, on PORT, and forwards every request to serverless-offline on a port of its own,
// so that the local API answers as the deployed one and every error it gives is problem+json:
//   - a body over 10 MiB, API Gateway's limit, is refused with 413 before it reaches a function
//     (serverless-offline's server answers its own non-problem 413);
//   - Range and If-Range are not applied: API Gateway hands them to the function, which answers in
//     full (serverless-offline's server would cut a JSON answer into a 206);
//   - a field sent twice reaches the function once, its values joined by commas, as API Gateway
//     hands it over (serverless-offline's server keeps one of them: two Authorization headers
//     would pass for the one it kept);
//   - a path with a trailing slash, and an OPTIONS that is not a CORS preflight, go to the
//     catch-all function (API Gateway's `$default` route), as no route matches them: the local
//     server would take `/chat/` for `/chat`, and answer such an OPTIONS itself;
//   - the answers that come from no function through serverless-offline (the catch-all's, and
//     the problems given here) carry the stage's CORS fields for an allowed origin, as every
//     answer of API Gateway does;
//   - a request with two Host fields, or an HTTP/1.1 one with none, is refused (RFC 9112), and a
//     client too slow to send its request gets a 408;
//   - a function that does not answer within API Gateway's 30 s is a 504, and an answer cut off
//     on the way is cut off for the client too, rather than left hanging;
//   - a 204 goes without the Content-Type serverless-offline gives every answer;
//   - what the local server refuses on its own (a path it cannot decode, a malformed header) is
//     rewritten as a problem with the same status, and what Node's parser refuses here (a header
//     block over 16 KiB, an unknown method) is answered as one, as is CONNECT (Node would drop
//     the connection without a word).

import { randomUUID } from 'node:crypto';
import { Agent, createServer, request as forward, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { pipeline } from 'node:stream';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { SECURITY_HEADERS } from '#shared/http.ts';
import { HttpProblem, internalProblem, shown, statusTitle } from '#shared/problem.ts';

/** API Gateway's limit on a request body (HTTP API payload quota). */
export const GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;
/** API Gateway's longest wait for an integration (HTTP API). */
const GATEWAY_TIMEOUT_MS = 30_000;

/** Fields that describe one connection, not the message: each hop sets its own. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
/** Range requests are not API Gateway's to serve; `Expect: 100-continue` was answered here. */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'range', 'if-range', 'expect']);
/** Nor is a range this API serves. */
const NOT_RELAYED = new Set([...HOP_BY_HOP, 'accept-ranges']);
/** A 204 has no content to describe: the type the local server gives every answer goes too. */
const NOT_RELAYED_ON_204 = new Set([...NOT_RELAYED, 'content-type']);

/** A stage's CORS settings, as infra/cors.yml gives them to API Gateway (and to serverless-offline). */
export interface CorsSettings {
  allowedOrigins: readonly string[];
  allowCredentials?: boolean;
  allowedHeaders?: readonly string[];
  allowedMethods?: readonly string[];
  exposedResponseHeaders?: readonly string[];
  maxAge?: number;
}

export interface Gateway {
  readonly port: number;
  close(): Promise<void>;
}

export interface GatewayOptions {
  /** Where clients connect. */
  port: number;
  /** serverless-offline's HTTP port. */
  upstreamPort: number;
  /** The function of the `$default` route, invoked through serverless-offline's Lambda port. */
  catchAll?: { lambdaPort: number; functionName: string };
  /** The stage's CORS settings, for the answers that do not come through serverless-offline. */
  cors?: CorsSettings;
  /** How long the local server may stay silent; API Gateway's 30 s unless a test says less. */
  upstreamTimeoutMs?: number;
  /** How long a client may take to send its request's head and body; Node's 60 s and 300 s unless a test says less. */
  clientTimeoutMs?: number;
  host?: string;
}

const localFunctionsDown = () => new HttpProblem(502, 'local-server-unavailable', { detail: 'The local functions did not answer.' });

const functionTimedOut = (timeoutMs: number) =>
  new HttpProblem(504, 'local-function-timeout', { detail: `The local function did not answer within ${timeoutMs / 1000} s.` });

/** A small message's whole body (an error, a Lambda result); rejects when the message is cut off. */
async function readWhole(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The CORS fields serverless-offline adds to a function's answer for an allowed origin, for the
 * answers that do not pass through it; none for another origin, as API Gateway gives none.
 */
function corsFieldsFor(request: IncomingMessage, cors: CorsSettings | undefined): Record<string, string> {
  if (cors === undefined) return {};
  // The answer depends on Origin (CORS fields or none): a cache must key on it, as for the functions' answers.
  const vary = { vary: 'origin' };
  const origin = request.headers.origin;
  if (origin === undefined) return vary;
  const anyOrigin = cors.allowedOrigins.length === 1 && cors.allowedOrigins[0] === '*';
  if (!anyOrigin && !cors.allowedOrigins.includes(origin)) return vary;
  // The same fields, on the same conditions, as serverless-offline's onPreResponse.
  const fields: Record<string, string> = { ...vary, 'access-control-allow-origin': origin };
  if (cors.allowCredentials) fields['access-control-allow-credentials'] = 'true';
  if (cors.maxAge) fields['access-control-max-age'] = String(cors.maxAge);
  if (cors.exposedResponseHeaders !== undefined) fields['access-control-expose-headers'] = cors.exposedResponseHeaders.join(',');
  if (cors.allowedMethods !== undefined) fields['access-control-allow-methods'] = cors.allowedMethods.join(',');
  if (cors.allowedHeaders !== undefined) fields['access-control-allow-headers'] = cors.allowedHeaders.join(',');
  return fields;
}

const tooLarge = () =>
  new HttpProblem(413, 'body-too-large', { detail: `The request body exceeds ${GATEWAY_MAX_BODY_BYTES} bytes, the most API Gateway accepts.` });

/** A problem answered by the gateway itself: its fields, with the functions' security headers, and its body. */
function problemMessage(problem: HttpProblem): { fields: Record<string, string | number>; body: string } {
  const { headers, body = '' } = problem.toResponse();
  return { fields: { ...SECURITY_HEADERS, ...headers, 'Content-Length': Buffer.byteLength(body) }, body };
}

/** Answers `problem`, with `extraFields` (CORS, Connection); an answer under way is cut off instead, one given is left alone. */
function send(response: ServerResponse, problem: HttpProblem, extraFields: Record<string, string> = {}): void {
  if (response.writableEnded) return;
  if (response.headersSent) {
    response.destroy(); // a response already under way cannot turn into a problem
    return;
  }
  const { fields, body } = problemMessage(problem);
  response.writeHead(problem.status, problem.title, { ...fields, ...extraFields });
  response.end(body);
}

/** The fields a Connection field names: they describe that connection too (RFC 9110 §7.6.1). */
function connectionOptions(raw: string[]): Set<string> {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    for (const option of raw[i + 1]!.split(',')) named.add(option.trim().toLowerCase());
  }
  return named;
}

/** Fields as they came (names' case and repeats kept, as Node's raw list), less `dropped` and those Connection names. */
function fieldsLess(raw: string[], dropped: ReadonlySet<string>): string[] {
  const nominated = connectionOptions(raw);
  const kept: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!dropped.has(name) && !nominated.has(name)) kept.push(raw[i]!, raw[i + 1]!);
  }
  return kept;
}

/**
 * Each field once, in the order of its first line, the values of a repeated one joined by commas
 * (API Gateway's payload 2.0), except Cookie, whose pairs the local server reads from every line
 * as API Gateway does.
 */
function joinedRepeats(raw: string[]): string[] {
  const lines: [string, string][] = [];
  const firstLineOf = new Map<string, [string, string]>();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const key = name.toLowerCase();
    const first = key === 'cookie' ? undefined : firstLineOf.get(key);
    if (first !== undefined) {
      first[1] = `${first[1]}, ${raw[i + 1]!}`;
      continue;
    }
    const line: [string, string] = [name, raw[i + 1]!];
    lines.push(line);
    if (key !== 'cookie') firstLineOf.set(key, line);
  }
  return lines.flat();
}

/**
 * The local server's own error bodies (hapi's `{statusCode, error, message}`): the functions give
 * every error as problem+json, so a JSON error in this shape can only come from the server.
 */
function localServerError(status: number, body: string): { error: string; message?: unknown } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const fields = parsed as Record<string, unknown>;
  const { error } = fields;
  return fields['statusCode'] === status && typeof error === 'string' ? { error, message: fields['message'] } : undefined;
}

/** The app's own slug for a 413; else the status's title, as in `not-found`. */
function slugOf(status: number): string {
  if (status === 413) return 'body-too-large';
  return statusTitle(status).toLowerCase().replaceAll(' ', '-');
}

function isJsonError(upstream: IncomingMessage): boolean {
  const type = upstream.headers['content-type'] ?? '';
  return (upstream.statusCode ?? 0) >= 400 && /^application\/json\b/i.test(type);
}

/**
 * serverless-offline's Access-Control-Expose-Headers with each name once: it writes the list and
 * hapi, from the same settings, appends it again.
 */
function exposedNamesOnce(raw: string[]): string[] {
  return raw.map((value, index) => {
    if (index % 2 === 0 || raw[index - 1]!.toLowerCase() !== 'access-control-expose-headers') return value;
    const names = new Map<string, string>(); // by lower-case name: field names are case-insensitive
    for (const name of value.split(',').map((each) => each.trim())) {
      if (name !== '' && !names.has(name.toLowerCase())) names.set(name.toLowerCase(), name);
    }
    return [...names.values()].join(',');
  });
}

/** What the local server answered, as it came, or as a problem when the local server made it. */
async function relay(upstream: IncomingMessage, response: ServerResponse, cors: Record<string, string>): Promise<void> {
  const status = upstream.statusCode ?? 502;
  const headers = exposedNamesOnce(fieldsLess(upstream.rawHeaders, status === 204 ? NOT_RELAYED_ON_204 : NOT_RELAYED));
  if (!isJsonError(upstream)) {
    response.writeHead(status, upstream.statusMessage, headers);
    // An answer cut off on the way (the local server stopped) is cut off for the client too.
    pipeline(upstream, response, () => {});
    return;
  }
  // Passed on as it is unless the local server made it.
  const body = await readWhole(upstream);
  const serverError = localServerError(status, body.toString('utf8'));
  if (serverError === undefined) {
    response.writeHead(status, upstream.statusMessage, headers);
    response.end(body);
    return;
  }
  // hapi's message, unless it only repeats the status's name ("Bad Request").
  const { message } = serverError;
  const detail = typeof message === 'string' && message !== '' && message !== serverError.error ? shown(message) : undefined;
  send(response, new HttpProblem(status, slugOf(status), detail === undefined ? {} : { detail }), cors);
}

const declaredTooLarge = (request: IncomingMessage) => Number(request.headers['content-length'] ?? 0) > GATEWAY_MAX_BODY_BYTES;

/** The request target as sent, split at its `?` by hand: a URL parser would rewrite the path (dot segments, `//host`) or throw. */
function targetOf(request: IncomingMessage): { path: string; query: string } {
  const target = request.url ?? '/';
  const mark = target.indexOf('?');
  return mark === -1 ? { path: target, query: '' } : { path: target.slice(0, mark), query: target.slice(mark + 1) };
}

/** What API Gateway sends to no route of the API, only to its `$default` one. */
function matchesNoRoute(request: IncomingMessage): boolean {
  const { path } = targetOf(request);
  if (path.length > 1 && path.endsWith('/')) return true;
  const preflight = request.headers['origin'] !== undefined && request.headers['access-control-request-method'] !== undefined;
  return request.method === 'OPTIONS' && !preflight;
}

/** The HTTP API (payload 2.0) event of `request`, as API Gateway hands it to the `$default` route. */
function catchAllEvent(request: IncomingMessage): APIGatewayProxyEventV2 {
  const { path, query } = targetOf(request);
  const headers: Record<string, string> = {};
  const fields = joinedRepeats(request.rawHeaders);
  const cookies: string[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!.toLowerCase();
    if (name === 'cookie') cookies.push(...fields[i + 1]!.split(/;\s*/));
    else headers[name] = fields[i + 1]!;
  }
  const now = new Date();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: query,
    headers,
    ...(cookies.length > 0 ? { cookies } : {}),
    requestContext: {
      accountId: 'offline',
      apiId: 'local',
      domainName: headers['host'] ?? 'localhost',
      domainPrefix: 'localhost',
      http: { method: request.method ?? 'GET', path, protocol: `HTTP/${request.httpVersion}`, sourceIp: request.socket.remoteAddress ?? '127.0.0.1', userAgent: headers['user-agent'] ?? '' },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: false,
  };
}

/** What a request needs to be answered: its response, the stage's CORS fields for it, and the ways on. */
interface Exchange {
  request: IncomingMessage;
  response: ServerResponse;
  cors: Record<string, string>;
  options: GatewayOptions;
  agent: Agent;
}

/** An answer that could not be finished: the problem, with the request's CORS fields (see `send`). */
function answerFailed({ response, cors }: Exchange, problem: HttpProblem): void {
  send(response, problem, cors);
}

/**
 * Sends `outgoing` on its way: an unreachable local server is a 502, one silent from the end of the
 * request to its answer a 504 (a client slow to send or to read is not the function's delay), a
 * client gone takes it along.
 */
function watched(outgoing: ClientRequest, exchange: Exchange): ClientRequest {
  const timeoutMs = exchange.options.upstreamTimeoutMs ?? GATEWAY_TIMEOUT_MS;
  let timedOut = false;
  let answered = false;
  outgoing.once('finish', () => {
    if (answered) return;
    outgoing.setTimeout(timeoutMs, () => {
      timedOut = true;
      outgoing.destroy();
      answerFailed(exchange, functionTimedOut(timeoutMs));
    });
  });
  outgoing.once('response', () => {
    answered = true;
    outgoing.setTimeout(0);
  });
  outgoing.on('error', () => {
    if (!timedOut) answerFailed(exchange, localFunctionsDown());
  });
  exchange.response.on('close', () => {
    if (!exchange.response.writableFinished) outgoing.destroy();
  });
  return outgoing;
}

/** The catch-all's result, as API Gateway turns it into an answer. */
async function answerWithResult(invocation: IncomingMessage, exchange: Exchange): Promise<void> {
  const text = (await readWhole(invocation)).toString('utf8');
  if (invocation.statusCode !== 200) {
    answerFailed(exchange, localFunctionsDown()); // no such function: serverless-offline is not serving this project
    return;
  }
  let result: unknown;
  try {
    result = JSON.parse(text);
  } catch {
    result = undefined;
  }
  if (invocation.headers['x-amz-function-error'] !== undefined || typeof result !== 'object' || result === null) {
    // What API Gateway answers for a function that failed, in this API's shape.
    answerFailed(exchange, internalProblem());
    return;
  }
  const { statusCode: status = 200, headers = {}, body: text64 = '', isBase64Encoded } = result as APIGatewayProxyStructuredResultV2;
  const body = Buffer.from(text64, isBase64Encoded === true ? 'base64' : 'utf8');
  // A 204 or 304 has no body, and says nothing of its length (RFC 9110); a HEAD's is the function's, that of its GET.
  const length = status === 204 || status === 304 || exchange.request.method === 'HEAD' ? {} : { 'Content-Length': body.length };
  exchange.response.writeHead(status, { ...headers, ...exchange.cors, ...length } as Record<string, string | number>);
  exchange.response.end(exchange.request.method === 'HEAD' ? undefined : body);
}

/** Invokes the catch-all function with the request's event and answers with what it returns. */
function answerFromCatchAll(exchange: Exchange, catchAll: NonNullable<GatewayOptions['catchAll']>): void {
  exchange.request.resume(); // the catch-all reads no body
  const invocation = watched(
    forward({
      host: '127.0.0.1',
      port: catchAll.lambdaPort,
      method: 'POST',
      path: `/2015-03-31/functions/${catchAll.functionName}/invocations`,
      headers: { 'Content-Type': 'application/json' },
      agent: exchange.agent,
    }),
    exchange,
  );
  invocation.on('response', (answer) => answerWithResult(answer, exchange).catch(() => answerFailed(exchange, localFunctionsDown())));
  invocation.end(JSON.stringify(catchAllEvent(exchange.request)));
}

/** Why the request's Host fields make it unanswerable (RFC 9112 §3.2), if they do. */
function hostProblem(request: IncomingMessage): HttpProblem | undefined {
  const hosts = request.rawHeaders.filter((field, index) => index % 2 === 0 && field.toLowerCase() === 'host').length;
  if (hosts > 1) return new HttpProblem(400, 'malformed-request', { detail: 'The request has more than one Host field.' });
  if (hosts === 0 && request.httpVersion !== '1.0') return new HttpProblem(400, 'malformed-request', { detail: 'An HTTP/1.1 request must have a Host field.' });
  return undefined;
}

/** The fields forwarded to the local server: an HTTP/1.0 request may come without Host, which HTTP/1.1 requires. */
function forwardedFields(exchange: Exchange): string[] {
  const fields = joinedRepeats(fieldsLess(exchange.request.rawHeaders, NOT_FORWARDED));
  if (exchange.request.headers.host === undefined) fields.push('Host', `127.0.0.1:${exchange.request.socket.localPort}`);
  return fields;
}

/**
 * The client's own address when it is a loopback one (127.0.0.0/8), for the connection to the
 * local server: serverless-offline takes a request's source address (the per-address rate limits
 * key on it) from its socket, which would otherwise be the gateway's, one address for every client.
 * A client from another host keeps the gateway's: its address is not ours to bind.
 */
function loopbackAddressOf(request: IncomingMessage): string | undefined {
  const address = request.socket.remoteAddress?.replace(/^::ffff:/, '');
  return address !== undefined && /^127\.\d+\.\d+\.\d+$/.test(address) ? address : undefined;
}

function forwardToLocalServer(exchange: Exchange): void {
  const { request, response, options, agent } = exchange;
  const target = { host: '127.0.0.1', port: options.upstreamPort, localAddress: loopbackAddressOf(request) };
  const outgoing = watched(forward({ ...target, method: request.method, path: request.url, headers: forwardedFields(exchange), agent }), exchange);
  outgoing.on('response', (upstream) => relay(upstream, response, exchange.cors).catch(() => answerFailed(exchange, localFunctionsDown())));
  let received = 0;
  request.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > GATEWAY_MAX_BODY_BYTES) {
      // A body sent without its length (chunked) crossed the limit on the way: the rest is read and dropped, then the connection closed.
      request.removeAllListeners('data');
      request.unpipe(outgoing);
      outgoing.destroy();
      send(response, tooLarge(), { ...exchange.cors, Connection: 'close' });
      request.resume();
    }
  });
  request.pipe(outgoing);
}

function handle(exchange: Exchange): void {
  const { request, response, options } = exchange;
  const refused = hostProblem(request) ?? (declaredTooLarge(request) ? tooLarge() : undefined);
  if (refused !== undefined) {
    // Not read, not forwarded; Node reads and drops the rest, so the client gets to read the answer.
    send(response, refused, exchange.cors);
    return;
  }
  if (options.catchAll !== undefined && matchesNoRoute(request)) answerFromCatchAll(exchange, options.catchAll);
  else forwardToLocalServer(exchange);
}

/** The problem for what Node's parser refused, before any request existed. */
function parserProblem(error: NodeJS.ErrnoException): HttpProblem {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new HttpProblem(431, 'headers-too-large', { detail: 'The request line and headers exceed 16 KiB.' });
    case 'HPE_INVALID_METHOD':
      return new HttpProblem(501, 'unknown-method', { detail: 'The request method is not one this API knows (methods are case-sensitive).' });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new HttpProblem(408, 'request-timeout', { detail: 'The request was not received in time.' });
    default:
      return new HttpProblem(400, 'malformed-request', { detail: 'The request is not valid HTTP/1.1.' });
  }
}

/**
 * A problem written on the socket itself, then the connection is closed. On a connection with an
 * answer to give, the fault is the current request's when it has not all come (its body is
 * malformed or slow): it is answered with the problem; else it is the next request's, and the
 * connection closes once the current answer is given. An answer under way is only cut off: a
 * problem written now would land in its middle.
 */
function refuseOnSocket(socket: Socket & { _httpMessage?: ServerResponse | null }, problem: HttpProblem): void {
  const current = socket._httpMessage; // the answer Node is to send next on this connection
  if (!socket.writable || current?.headersSent === true) {
    socket.destroy();
    return;
  }
  if (current) {
    if (current.req.complete) current.setHeader('Connection', 'close');
    else send(current, problem, { Connection: 'close' });
    return;
  }
  const { fields, body } = problemMessage(problem);
  const head = Object.entries({ ...fields, Connection: 'close' }).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(`HTTP/1.1 ${problem.status} ${problem.title}\r\n${head}\r\n${body}`);
}

/** CONNECT asks for a tunnel, which API Gateway does not open; Node hands it over apart from requests. */
const noTunnels = () => new HttpProblem(501, 'unknown-method', { detail: 'This API opens no tunnels: CONNECT is not served.' });

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  // No kept-alive sockets: one the local server closes as it idles out would turn the next request into a 502.
  const agent = new Agent({ keepAlive: false });
  const serve = (request: IncomingMessage, response: ServerResponse) => {
    const exchange: Exchange = { request, response, cors: corsFieldsFor(request, options.cors), options, agent };
    try {
      handle(exchange);
    } catch {
      // A request no handling step foresaw gets a problem; the dev server stays up.
      answerFailed(exchange, new HttpProblem(400, 'malformed-request', { detail: 'The request could not be handled.' }));
    }
  };
  const clientTimeouts =
    options.clientTimeoutMs === undefined
      ? {}
      : { headersTimeout: options.clientTimeoutMs, requestTimeout: options.clientTimeoutMs, connectionsCheckingInterval: Math.max(10, options.clientTimeoutMs / 4) };
  // The Host checks are this module's, answered as problems (Node's own answer is an empty 400).
  const server = createServer({ requireHostHeader: false, ...clientTimeouts }, serve);
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => refuseOnSocket(socket, parserProblem(error)));
  server.on('connect', (_request: IncomingMessage, socket: Socket) => refuseOnSocket(socket, noTunnels()));
  // `Expect: 100-continue`: a body over the limit is refused before the client sends it.
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    // A request refused anyway is refused before its body comes, and the body never comes: nothing to read past.
    if (declaredTooLarge(request) || hostProblem(request) !== undefined) response.setHeader('Connection', 'close');
    else response.writeContinue();
    serve(request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : options.port,
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
