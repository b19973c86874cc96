// One HTTP/1.1 request on a connection of its own (`Connection: close`), over node:net or
// node:tls, for the one AWS call a container makes at cold start. Not node:http: its first
// request costs about 5 ms of module loading, agent and parser set-up that a cold start pays
// for a single call; the Redis connection loads net and tls anyway.
//
//   connect (≤ connectTimeoutMs) ─ write head + body ─ read (≤ idleTimeoutMs of silence) ─ parse
//   response complete: Content-Length reached, last chunk read, or the server closed

import type { Socket } from 'node:net';

export interface Http1Request {
  url: URL;
  method: string;
  /** Lower-case names; `host`, `content-length` and `connection` are added. */
  headers: Record<string, string>;
  body: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Called once the request has been handed to the network: work to do while its answer travels. */
  onSent?: () => void;
}

export interface Http1Response {
  status: number;
  /** Lower-case names. */
  headers: Map<string, string>;
  body: string;
}

/** A request that got no (complete) response: `code` is `TimeoutError`, a socket code or `InvalidResponse`. */
export class Http1Error extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export function http1Request(request: Http1Request): Promise<Http1Response> {
  const { url } = request;
  const secure = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || (secure ? 443 : 80));
  // Loaded on first use; not with import(), whose ESM facades read every export of a module.
  const net = process.getBuiltinModule('node:net');
  const socket: Socket = secure
    ? process.getBuiltinModule('node:tls').connect({ host, port, servername: net.isIP(host) === 0 ? host : undefined, ALPNProtocols: ['http/1.1'] })
    : net.connect({ host, port });

  return new Promise<Http1Response>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const finish = (outcome: Http1Response | Http1Error) => {
      clearTimeout(connectTimer);
      socket.destroy();
      if (outcome instanceof Http1Error) reject(outcome);
      else resolve(outcome);
    };
    const connectTimer = setTimeout(() => finish(new Http1Error('TimeoutError', `no connection within ${request.connectTimeoutMs} ms`)), request.connectTimeoutMs);
    socket.once('connect', () => clearTimeout(connectTimer));
    socket.setTimeout(request.idleTimeoutMs, () => finish(new Http1Error('TimeoutError', `no answer for ${request.idleTimeoutMs} ms`)));
    socket.on('error', (error: NodeJS.ErrnoException) => finish(new Http1Error(error.code ?? 'NetworkingError', error.message)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const response = parseResponse(received, false);
      if (response !== undefined) finish(response);
    });
    socket.on('end', () => finish(parseResponse(received, true) ?? new Http1Error('InvalidResponse', 'the connection closed before a complete response')));
    // write, not end: a server may take the client's half-close for a hang-up and drop the
    // request; `Connection: close` has the server end the exchange once it has answered.
    socket.write(head(request) + request.body, (error) => {
      if (!error) request.onSent?.();
    });
  });
}

function head({ method, url, headers, body }: Http1Request): string {
  const all: Record<string, string> = { ...headers, host: url.host, 'content-length': String(Buffer.byteLength(body)), connection: 'close' };
  const lines = Object.entries(all).map(([name, value]) => `${name}: ${value}\r\n`);
  return `${method} ${url.pathname}${url.search} HTTP/1.1\r\n${lines.join('')}\r\n`;
}

/**
 * The response once `data` holds all of it, else undefined. `closed`: the server has closed the
 * connection, which ends a body that has neither a length nor chunks.
 */
export function parseResponse(data: Buffer, closed: boolean): Http1Response | Http1Error | undefined {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const [statusLine = '', ...lines] = data.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
  if (status === undefined) return new Http1Error('InvalidResponse', 'not an HTTP/1.1 response');
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const rest = data.subarray(headEnd + 4);
  let body: Buffer | Http1Error | undefined;
  if (/\bchunked\b/i.test(headers.get('transfer-encoding') ?? '')) body = dechunk(rest);
  else if (headers.has('content-length')) {
    const length = Number(headers.get('content-length'));
    body = rest.length >= length ? rest.subarray(0, length) : undefined;
  } else body = closed ? rest : undefined;
  if (body instanceof Http1Error) return body;
  return body === undefined ? undefined : { status: Number(status), headers, body: body.toString('utf8') };
}

/** The body of a chunked transfer once its last (empty) chunk has arrived; trailers are ignored. */
function dechunk(data: Buffer): Buffer | Http1Error | undefined {
  const chunks: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    // `parseInt` stops at a chunk extension (`;name=value`).
    const size = Number.parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return new Http1Error('InvalidResponse', 'a malformed chunk size');
    if (size === 0) return Buffer.concat(chunks);
    const start = lineEnd + 2;
    if (data.length < start + size + 2) return undefined;
    chunks.push(data.subarray(start, start + size));
    at = start + size + 2;
  }
}
