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
//   - what the local server refuses on its own (a path it cannot decode, a malformed header) is
//     rewritten as a problem with the same status, and what Node's parser refuses here (a header
//     block over 16 KiB, an unknown method) is answered as one.

import { randomUUID } from 'node:crypto';
import { Agent, createServer, request as forward, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { SECURITY_HEADERS } from '../../shared/http.ts';
import { HttpProblem, shown } from '../../shared/problem.ts';

/** API Gateway's limit on a request body (HTTP API payload quota). */
export const GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Fields that describe one connection, not the message: each hop sets its own. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
/** Range requests are not API Gateway's to serve; `Expect: 100-continue` was answered here. */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'range', 'if-range', 'expect']);
/** Nor is a range this API serves. */
const NOT_RELAYED = new Set([...HOP_BY_HOP, 'accept-ranges']);

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
  host?: string;
}

const localFunctionsDown = () => new HttpProblem(502, 'local-server-unavailable', { detail: 'The local functions did not answer.' });

/** A small message's whole body (an error, a Lambda result), to `then`. */
function readWhole(stream: IncomingMessage, then: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => then(Buffer.concat(chunks)));
}

const tooLarge = () =>
  new HttpProblem(413, 'body-too-large', { detail: `The request body exceeds ${GATEWAY_MAX_BODY_BYTES} bytes, the most API Gateway accepts.` });

/** A problem answered by the gateway itself: its fields, with the functions' security headers, and its body. */
function problemMessage(problem: HttpProblem): { fields: Record<string, string | number>; body: string } {
  const { headers, body = '' } = problem.toResponse();
  return { fields: { ...SECURITY_HEADERS, ...headers, 'Content-Length': Buffer.byteLength(body) }, body };
}

function send(response: ServerResponse, problem: HttpProblem): void {
  if (response.headersSent) {
    response.destroy(); // a response already under way cannot turn into a problem
    return;
  }
  const { fields, body } = problemMessage(problem);
  response.writeHead(problem.status, problem.title, fields);
  response.end(body);
}

/** Fields as they came (names' case and repeats kept, as Node's raw list), less `dropped`. */
function fieldsLess(raw: string[], dropped: ReadonlySet<string>): string[] {
  const kept: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!dropped.has(raw[i]!.toLowerCase())) kept.push(raw[i]!, raw[i + 1]!);
  }
  return kept;
}

/**
 * Each field once, the values of a repeated one joined by commas (API Gateway's payload 2.0),
 * except Cookie, whose pairs the local server reads from every line as API Gateway does.
 */
function joinedRepeats(raw: string[]): string[] {
  const joined = new Map<string, [string, string]>();
  const fields: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const key = name.toLowerCase();
    const seen = joined.get(key);
    if (key === 'cookie') fields.push(name, raw[i + 1]!);
    else if (seen === undefined) joined.set(key, [name, raw[i + 1]!]);
    else seen[1] = `${seen[1]}, ${raw[i + 1]!}`;
  }
  for (const [name, value] of joined.values()) fields.push(name, value);
  return fields;
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
  return new HttpProblem(status, 'unnamed').title.toLowerCase().replaceAll(' ', '-');
}

function isJsonError(upstream: IncomingMessage): boolean {
  const type = upstream.headers['content-type'] ?? '';
  return (upstream.statusCode ?? 0) >= 400 && /^application\/json\b/i.test(type);
}

function relay(upstream: IncomingMessage, response: ServerResponse): void {
  const status = upstream.statusCode ?? 502;
  const headers = fieldsLess(upstream.rawHeaders, NOT_RELAYED);
  if (!isJsonError(upstream)) {
    response.writeHead(status, upstream.statusMessage, headers);
    upstream.pipe(response);
    return;
  }
  // Passed on as it is unless the local server made it.
  readWhole(upstream, (body) => {
    const serverError = localServerError(status, body.toString('utf8'));
    if (serverError === undefined) {
      response.writeHead(status, upstream.statusMessage, headers);
      response.end(body);
      return;
    }
    // hapi's message, unless it only repeats the status's name ("Bad Request").
    const { message } = serverError;
    const detail = typeof message === 'string' && message !== '' && message !== serverError.error ? shown(message) : undefined;
    send(response, new HttpProblem(status, slugOf(status), detail === undefined ? {} : { detail }));
  });
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

/** Invokes the catch-all function with `request`'s event and answers with what it returns. */
function answerFromCatchAll(request: IncomingMessage, response: ServerResponse, catchAll: NonNullable<GatewayOptions['catchAll']>, agent: Agent): void {
  request.resume(); // the catch-all reads no body
  const invocation = forward({
    host: '127.0.0.1',
    port: catchAll.lambdaPort,
    method: 'POST',
    path: `/2015-03-31/functions/${catchAll.functionName}/invocations`,
    headers: { 'Content-Type': 'application/json' },
    agent,
  });
  invocation.on('error', () => {
    if (!response.writableEnded) send(response, localFunctionsDown());
  });
  invocation.on('response', (answer) => {
    readWhole(answer, (text) => {
      let result: APIGatewayProxyStructuredResultV2;
      try {
        result = JSON.parse(text.toString('utf8')) as APIGatewayProxyStructuredResultV2;
      } catch {
        send(response, localFunctionsDown());
        return;
      }
      const body = result.body === undefined ? Buffer.alloc(0) : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
      const status = result.statusCode ?? 200;
      // A 204 or 304 has no body, and says nothing of its length (RFC 9110).
      const length = status === 204 || status === 304 ? {} : { 'Content-Length': body.length };
      response.writeHead(status, { ...result.headers, ...length } as Record<string, string | number>);
      response.end(request.method === 'HEAD' ? undefined : body);
    });
  });
  invocation.end(JSON.stringify(catchAllEvent(request)));
}

function handle(request: IncomingMessage, response: ServerResponse, options: GatewayOptions, agent: Agent): void {
  if (declaredTooLarge(request)) {
    // Not read, not forwarded; Node reads and drops the rest, so the client gets to read the answer.
    send(response, tooLarge());
    return;
  }
  if (options.catchAll !== undefined && matchesNoRoute(request)) {
    answerFromCatchAll(request, response, options.catchAll, agent);
    return;
  }
  const outgoing = forward({ host: '127.0.0.1', port: options.upstreamPort, method: request.method, path: request.url, headers: joinedRepeats(fieldsLess(request.rawHeaders, NOT_FORWARDED)), agent });
  outgoing.on('response', (upstream) => relay(upstream, response));
  outgoing.on('error', () => {
    if (!response.writableEnded) send(response, localFunctionsDown());
  });
  // A client that goes away takes its forwarded request with it.
  response.on('close', () => {
    if (!response.writableFinished) outgoing.destroy();
  });
  let received = 0;
  request.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > GATEWAY_MAX_BODY_BYTES) {
      // A body sent without its length (chunked) crossed the limit on the way.
      request.removeAllListeners('data');
      request.unpipe(outgoing);
      outgoing.destroy();
      send(response, tooLarge());
      request.resume();
    }
  });
  request.pipe(outgoing);
}

/** Parser refusals (before any request exists): a problem, then the connection is closed. */
function refuse(error: NodeJS.ErrnoException & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const problem =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new HttpProblem(431, 'headers-too-large', { detail: 'The request line and headers exceed 16 KiB.' })
      : error.code === 'HPE_INVALID_METHOD'
        ? new HttpProblem(501, 'unknown-method', { detail: 'The request method is not one this API knows (methods are case-sensitive).' })
        : new HttpProblem(400, 'malformed-request', { detail: 'The request is not valid HTTP/1.1.' });
  const { fields, body } = problemMessage(problem);
  const head = Object.entries({ ...fields, Connection: 'close' }).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(`HTTP/1.1 ${problem.status} ${problem.title}\r\n${head}\r\n${body}`);
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  // No kept-alive sockets: one the local server closes as it idles out would turn the next request into a 502.
  const agent = new Agent({ keepAlive: false });
  const serve = (request: IncomingMessage, response: ServerResponse) => {
    try {
      handle(request, response, options, agent);
    } catch {
      // A request no handling step foresaw gets a problem; the dev server stays up.
      send(response, new HttpProblem(400, 'malformed-request', { detail: 'The request could not be handled.' }));
    }
  };
  const server = createServer(serve);
  server.on('clientError', refuse);
  // `Expect: 100-continue`: a body over the limit is refused before the client sends it.
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    if (declaredTooLarge(request)) response.setHeader('Connection', 'close'); // the body never comes: nothing to read past
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
