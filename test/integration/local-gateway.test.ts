// The local gateway of `npm run dev` (infra/local/gateway.ts), in front of a stand-in for
// serverless-offline's server that records what reaches it and answers as the test asks: what it
// forwards as sent, what it keeps from the functions, and what it answers itself.

import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GATEWAY_MAX_BODY_BYTES, startGateway, type Gateway } from '../../infra/local/gateway.ts';
import { freePort } from '../../infra/local/redis-server.ts';

interface Received {
  /** The address the request came from, as serverless-offline reads a request's source address. */
  remoteAddress: string | undefined;
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
}

/** What the stand-in answers: `answer` for the next requests, until the test changes it. */
type Answer = (request: Received, response: ServerResponse) => void;

const echoAnswer: Answer = (request, response) => {
  response.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'X-Upstream': 'yes', 'Accept-Ranges': 'bytes' });
  response.end(JSON.stringify({ method: request.method, url: request.url, body: request.body.toString('utf8') }));
};

const jsonAnswer =
  (status: number, body: unknown, contentType = 'application/json; charset=utf-8'): Answer =>
  (_request, response) => {
    response.writeHead(status, { 'Content-Type': contentType });
    response.end(JSON.stringify(body));
  };

/** Sends `text` as it is on a socket of its own and returns all that comes back. */
function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let reply = '';
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString('latin1')));
    socket.on('end', () => resolve(reply));
    socket.on('error', reject);
  });
}

const problemOf = async (response: Response) => ({
  status: response.status,
  contentType: response.headers.get('content-type'),
  body: (await response.json()) as Record<string, unknown>,
});

const allowedOrigin = 'http://app.test';
const cors = { allowedOrigins: [allowedOrigin], allowCredentials: true, allowedMethods: ['GET', 'POST', 'OPTIONS'], exposedResponseHeaders: ['RateLimit', 'X-Request-Id'], maxAge: 600 };

describe('the local gateway of npm run dev', () => {
  let upstream: Server;
  let upstreamPort: number;
  let gateway: Gateway;
  let base: string;
  let received: Received[];
  let answer: Answer;

  beforeAll(async () => {
    upstream = createServer((request: IncomingMessage, response: ServerResponse) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const seen = { remoteAddress: request.socket.remoteAddress, method: request.method ?? '', url: request.url ?? '', rawHeaders: request.rawHeaders, body: Buffer.concat(chunks) };
        received.push(seen);
        answer(seen, response);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamPort = (upstream.address() as AddressInfo).port;
    // The stand-in is also serverless-offline's Lambda port, where the catch-all is invoked.
    gateway = await startGateway({ port: 0, upstreamPort, catchAll: { lambdaPort: upstreamPort, functionName: 'svc-dev-notFound' }, cors });
    base = `http://127.0.0.1:${gateway.port}`;
  });
  afterAll(async () => {
    await gateway.close();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });
  beforeEach(() => {
    received = [];
    answer = echoAnswer;
  });

  it('forwards the method, path, query, fields and body as sent, and the answer as given', async () => {
    const response = await fetch(`${base}/chat?x=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-Custom': 'kept' },
      body: '{"a":1}',
    });

    expect(response.status).toBe(200);
    expect(response.headers.get('x-upstream')).toBe('yes');
    expect(await response.json()).toEqual({ method: 'POST', url: '/chat?x=1', body: '{"a":1}' });
    expect(received[0]!.rawHeaders).toEqual(expect.arrayContaining(['X-Custom', 'kept']));
  });

  it('does not apply a Range: the function is asked without it and its whole answer is passed on', async () => {
    const response = await fetch(`${base}/health`, { headers: { Range: 'bytes=0-5', 'If-Range': '"x"' } });

    expect(response.status).toBe(200);
    expect(response.headers.get('accept-ranges')).toBeNull();
    expect(await response.json()).toEqual({ method: 'GET', url: '/health', body: '' });
    const names = received[0]!.rawHeaders.filter((_, index) => index % 2 === 0).map((name) => name.toLowerCase());
    expect(names).not.toContain('range');
    expect(names).not.toContain('if-range');
  });

  it('hands a field sent twice over once, its values joined by commas, and Cookie lines as they came', async () => {
    await rawExchange(
      gateway.port,
      'GET /auth/session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer first\r\nauthorization: Bearer second\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n',
    );

    const fields = received[0]!.rawHeaders;
    const valuesOf = (wanted: string) => fields.filter((_, index) => index % 2 === 1 && fields[index - 1]!.toLowerCase() === wanted);
    expect(valuesOf('authorization')).toEqual(['Bearer first, Bearer second']);
    expect(valuesOf('cookie')).toEqual(['a=1', 'b=2']);
    const names = fields.filter((_, index) => index % 2 === 0).map((name) => name.toLowerCase());
    expect(names.slice(0, 4)).toEqual(['host', 'authorization', 'cookie', 'cookie']); // in the order they came
  });

  it("forwards each loopback client's request from that client's own address, as API Gateway gives each client its source address", async () => {
    const fromAddress = (localAddress: string) =>
      new Promise<void>((resolve, reject) => get(`${base}/echo`, { localAddress }, (response) => response.resume().on('end', resolve)).on('error', reject));

    await fromAddress('127.0.0.2');
    await fromAddress('127.0.0.3');

    expect(received.map((request) => request.remoteAddress)).toEqual(['127.0.0.2', '127.0.0.3']);
  });

  describe('what matches no route goes to the catch-all function, as API Gateway sends it to $default', () => {
    const invocation = '/2015-03-31/functions/svc-dev-notFound/invocations';
    const lambdaResult =
      (result: object): Answer =>
      (_request, response) => {
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify(result));
      };

    it('invokes it for a path with a trailing slash, with the HTTP API event of the request, and answers with its result', async () => {
      answer = lambdaResult({ statusCode: 404, headers: { 'Content-Type': 'application/problem+json' }, body: '{"status":404}' });

      const response = await fetch(`${base}/health/?x=1`, { headers: { Cookie: 'a=1; b=2' } });

      expect(response.status).toBe(404);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(await response.json()).toEqual({ status: 404 });
      expect(received.map(({ method, url }) => `${method} ${url}`)).toEqual([`POST ${invocation}`]);
      expect(JSON.parse(received[0]!.body.toString('utf8'))).toEqual(
        expect.objectContaining({
          version: '2.0',
          routeKey: '$default',
          rawPath: '/health/',
          rawQueryString: 'x=1',
          cookies: ['a=1', 'b=2'],
          requestContext: expect.objectContaining({ http: expect.objectContaining({ method: 'GET', path: '/health/' }) }),
        }),
      );
    });

    it('hands it the path as sent, even one a URL parser refuses, and keeps serving', async () => {
      answer = lambdaResult({ statusCode: 404, headers: {}, body: '' });

      await rawExchange(gateway.port, 'GET //a:b/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const next = await fetch(`${base}/chat/`, { method: 'POST', body: '{}' });

      expect(JSON.parse(received[0]!.body.toString('utf8'))).toEqual(expect.objectContaining({ rawPath: '//a:b/' }));
      expect(next.status).toBe(404);
    });

    it('invokes it for an OPTIONS that is not a CORS preflight, and sends no length with its 204', async () => {
      answer = lambdaResult({ statusCode: 204, headers: { Allow: 'POST, OPTIONS' } });

      const response = await fetch(`${base}/chat`, { method: 'OPTIONS' });

      expect(response.status).toBe(204);
      expect(response.headers.get('allow')).toBe('POST, OPTIONS');
      expect(response.headers.get('content-length')).toBeNull();
      expect(received[0]!.url).toBe(invocation);
    });

    it("adds the stage's CORS fields to its answer for an allowed origin, and none for another, each saying it varies with Origin", async () => {
      answer = lambdaResult({ statusCode: 404, headers: { 'Content-Type': 'application/problem+json' }, body: '{"status":404}' });

      const allowed = await fetch(`${base}/chat/`, { headers: { Origin: allowedOrigin } });
      const stranger = await fetch(`${base}/chat/`, { headers: { Origin: 'http://elsewhere.test' } });

      expect(allowed.headers.get('access-control-allow-origin')).toBe(allowedOrigin);
      expect(allowed.headers.get('access-control-expose-headers')).toBe('RateLimit,X-Request-Id');
      expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
      expect(stranger.status).toBe(404);
      expect(stranger.headers.get('access-control-allow-origin')).toBeNull();
      expect([allowed.headers.get('vary'), stranger.headers.get('vary')]).toEqual(['origin', 'origin']);
    });

    it("keeps the function's Content-Length on a HEAD, that of the GET's body", async () => {
      answer = lambdaResult({ statusCode: 404, headers: { 'Content-Type': 'application/problem+json', 'Content-Length': '235' } });

      const response = await fetch(`${base}/chat/`, { method: 'HEAD' });

      expect(response.status).toBe(404);
      expect(response.headers.get('content-length')).toBe('235');
    });

    it('answers a 500 problem when the function fails, as API Gateway does', async () => {
      answer = (_request, response) => {
        response.writeHead(200, { 'Content-Type': 'application/json', 'X-Amz-Function-Error': 'Unhandled' });
        response.end(JSON.stringify({ errorType: 'Error', errorMessage: 'boom' }));
      };

      const response = await fetch(`${base}/chat/`);

      expect(await problemOf(response)).toEqual({
        status: 500,
        contentType: 'application/problem+json',
        body: expect.objectContaining({ type: 'https://tutor-copiloto.dev/problems/internal', status: 500 }),
      });
    });

    it('answers a 502 problem when the local server has no such function', async () => {
      answer = jsonAnswer(404, { Message: 'Function not found' });

      const response = await fetch(`${base}/chat/`);

      expect((await problemOf(response)).body).toEqual(expect.objectContaining({ type: 'https://tutor-copiloto.dev/problems/local-server-unavailable', status: 502 }));
    });

    it('leaves a CORS preflight to the local server, which answers it as API Gateway does', async () => {
      const response = await fetch(`${base}/chat`, {
        method: 'OPTIONS',
        headers: { Origin: 'http://localhost:5173', 'Access-Control-Request-Method': 'POST' },
      });

      expect(response.status).toBe(200);
      expect(received[0]!.url).toBe('/chat');
    });
  });

  it("rewrites the local server's own JSON error as a problem of the same status, with the security headers", async () => {
    answer = jsonAnswer(400, { statusCode: 400, error: 'Bad Request', message: 'Invalid content-type header' });

    const response = await fetch(`${base}/chat`, { method: 'POST', body: '{}' });

    expect(await problemOf(response)).toEqual({
      status: 400,
      contentType: 'application/problem+json',
      body: { type: 'https://tutor-copiloto.dev/problems/bad-request', title: 'Bad Request', status: 400, detail: 'Invalid content-type header' },
    });
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it("leaves out the local server's message when it only repeats the status's name", async () => {
    answer = jsonAnswer(400, { statusCode: 400, error: 'Bad Request', message: 'Bad Request' });

    const response = await fetch(`${base}/%zz`);

    expect((await problemOf(response)).body).toEqual({ type: 'https://tutor-copiloto.dev/problems/bad-request', title: 'Bad Request', status: 400 });
  });

  it("passes a function's problem and a function's JSON error (a degraded /health) on untouched", async () => {
    const problem = { type: 'https://tutor-copiloto.dev/problems/validation', title: 'Bad Request', status: 400, detail: 'x' };
    answer = jsonAnswer(400, problem, 'application/problem+json');
    const refused = await fetch(`${base}/chat`, { method: 'POST', body: '{}' });
    answer = jsonAnswer(503, { status: 'degraded', redis: 'unavailable', version: '0.1.0' });

    const degraded = await fetch(`${base}/health`);

    expect(await problemOf(refused)).toEqual({ status: 400, contentType: 'application/problem+json', body: problem });
    expect(await problemOf(degraded)).toEqual({
      status: 503,
      contentType: 'application/json; charset=utf-8',
      body: { status: 'degraded', redis: 'unavailable', version: '0.1.0' },
    });
  });

  it("adds the stage's CORS fields to the problems it gives itself, for an allowed origin", async () => {
    answer = jsonAnswer(400, { statusCode: 400, error: 'Bad Request', message: 'Bad Request' });

    const rewritten = await fetch(`${base}/%zz`, { headers: { Origin: allowedOrigin } });

    expect(rewritten.headers.get('content-type')).toBe('application/problem+json');
    expect(rewritten.headers.get('access-control-allow-origin')).toBe(allowedOrigin);
    expect(rewritten.headers.get('vary')).toBe('origin');
  });

  it('passes on an Access-Control-Expose-Headers list with each name once, as the local server writes it twice', async () => {
    answer = (_request, response) => {
      response.writeHead(200, { 'Access-Control-Expose-Headers': 'RateLimit,X-Request-Id,RateLimit,x-request-id' });
      response.end();
    };

    const relayed = await fetch(`${base}/health`, { headers: { Origin: allowedOrigin } });

    expect(relayed.headers.get('access-control-expose-headers')).toBe('RateLimit,X-Request-Id');
  });

  it('drops the fields a Connection field names, which describe that connection only', async () => {
    await rawExchange(gateway.port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-Kept: 2\r\n\r\n');

    const names = received[0]!.rawHeaders.filter((_, index) => index % 2 === 0).map((name) => name.toLowerCase());
    expect(names).not.toContain('x-hop');
    expect(names).toContain('x-kept');
  });

  it('refuses a request with two Host fields, or an HTTP/1.1 one with none, with a 400 problem', async () => {
    const twoHosts = await rawExchange(gateway.port, 'GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n');
    const noHost = await rawExchange(gateway.port, 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n');

    expect(twoHosts).toMatch(/^HTTP\/1\.1 400 /);
    expect(twoHosts).toContain('more than one Host field');
    expect(noHost).toMatch(/^HTTP\/1\.1 400 /);
    expect(noHost).toContain('must have a Host field');
    expect(received).toEqual([]);
  });

  it('forwards an HTTP/1.0 request without Host, naming the gateway as its host', async () => {
    const reply = await rawExchange(gateway.port, 'GET /health HTTP/1.0\r\n\r\n');

    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(received[0]!.rawHeaders).toEqual(expect.arrayContaining(['Host', `127.0.0.1:${gateway.port}`]));
  });

  it('cuts the answer off for the client when the local server stops in the middle of it', async () => {
    answer = (_request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '100' });
      response.write('the first part');
      setTimeout(() => response.socket?.destroy(), 20);
    };

    const response = await fetch(`${base}/health`);

    await expect(response.text()).rejects.toThrow();
  });

  it('answers a 504 problem when the local server stays silent past the time-out', async () => {
    answer = () => {}; // never answers
    const patient = await startGateway({ port: 0, upstreamPort, upstreamTimeoutMs: 100 });
    try {
      const response = await fetch(`http://127.0.0.1:${patient.port}/chat`, { method: 'POST', body: '{}' });

      expect((await problemOf(response)).body).toEqual(expect.objectContaining({ type: 'https://tutor-copiloto.dev/problems/local-function-timeout', status: 504 }));
    } finally {
      await patient.close();
    }
  });

  describe('the time-out applies to the local server alone, not to a slow client', () => {
    const bigBody = Buffer.alloc(20 * 1024 * 1024, 0x61);
    let patient: Gateway;
    beforeAll(async () => {
      patient = await startGateway({ port: 0, upstreamPort, upstreamTimeoutMs: 300 });
    });
    afterAll(() => patient.close());

    it('lets a client read a long answer as slowly as it likes', async () => {
      answer = (_request, response) => {
        response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bigBody.length });
        response.end(bigBody);
      };

      const length = await new Promise<number>((resolve, reject) => {
        get(`http://127.0.0.1:${patient.port}/health`, (response) => {
          response.pause(); // the answer backs up to the local server, which then waits on this client
          setTimeout(() => {
            let read = 0;
            response.on('data', (chunk: Buffer) => (read += chunk.length));
            response.on('end', () => resolve(read));
            response.on('error', reject);
            response.resume();
          }, 1000);
        }).on('error', reject);
      });

      expect(length).toBe(bigBody.length);
    });

    it('waits for a body that comes slowly before it counts the local server silent', async () => {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(patient.port, '127.0.0.1', () => {
          socket.write('POST /chat HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{"a"');
          setTimeout(() => socket.write(':1}'), 1000);
        });
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });

      expect(reply).toMatch(/^HTTP\/1\.1 200 /);
      expect(reply).toContain('"body":"{\\"a\\":1}"');
    });
  });

  it('writes no problem into an answer under way when the next request on the connection is malformed', async () => {
    const bigBody = Buffer.alloc(4 * 1024 * 1024, 0x61);
    answer = (_request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bigBody.length });
      response.end(bigBody);
    };

    const reply = await rawExchange(gateway.port, 'GET /big HTTP/1.1\r\nHost: x\r\n\r\nget /x HTTP/1.1\r\nHost: x\r\n\r\n');

    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply.length).toBeGreaterThan(bigBody.length);
    expect(reply).not.toContain('problem+json');
  });

  it('refuses a request it would refuse anyway before the client sends the body it announced with Expect: 100-continue', async () => {
    const reply = await rawExchange(gateway.port, 'POST /chat HTTP/1.1\r\nHost: a\r\nHost: b\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n');

    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).not.toContain('100 Continue');
  });

  it('answers a 408 problem to a client that does not finish its request in time', async () => {
    const hurried = await startGateway({ port: 0, upstreamPort, clientTimeoutMs: 100 });
    try {
      const [headersUnfinished, bodyUnfinished] = await Promise.all([
        rawExchange(hurried.port, 'GET /health HTTP/1.1\r\nHost: x\r\n'),
        rawExchange(hurried.port, 'POST /chat HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}'),
      ]);

      for (const reply of [headersUnfinished, bodyUnfinished]) {
        expect(reply).toMatch(/^HTTP\/1\.1 408 /);
        expect(reply).toContain('"type":"https://tutor-copiloto.dev/problems/request-timeout"');
      }
    } finally {
      await hurried.close();
    }
  });

  it('refuses a body declared over 10 MiB with a 413 problem, without forwarding it', async () => {
    const body = Buffer.alloc(GATEWAY_MAX_BODY_BYTES + 1, 0x61);

    const response = await fetch(`${base}/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

    expect(await problemOf(response)).toEqual({
      status: 413,
      contentType: 'application/problem+json',
      body: expect.objectContaining({ type: 'https://tutor-copiloto.dev/problems/body-too-large', status: 413 }),
    });
    expect(received).toEqual([]);
  });

  it('refuses a body sent without its length once it passes 10 MiB, and forwards exactly 10 MiB', async () => {
    const streamOf = (bytes: number) =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (let sent = 0; sent < bytes; sent += 1024 * 1024) controller.enqueue(new Uint8Array(Math.min(1024 * 1024, bytes - sent)).fill(0x61));
          controller.close();
        },
      });
    const post = (bytes: number) => fetch(`${base}/embeddings`, { method: 'POST', body: streamOf(bytes), duplex: 'half' } as RequestInit);

    const over = await post(GATEWAY_MAX_BODY_BYTES + 1);
    const atTheLimit = await post(GATEWAY_MAX_BODY_BYTES);

    expect((await problemOf(over)).status).toBe(413);
    expect(over.headers.get('connection')).toBe('close'); // the rest of its body is not read
    expect(atTheLimit.status).toBe(200);
    expect(((await atTheLimit.json()) as { body: string }).body).toHaveLength(GATEWAY_MAX_BODY_BYTES);
    expect(received).toHaveLength(1);
  });

  it('answers a header block over 16 KiB with a 431 problem', async () => {
    const reply = await rawExchange(gateway.port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);

    expect(reply).toMatch(/^HTTP\/1\.1 431 /);
    expect(reply).toContain('Content-Type: application/problem+json');
    expect(reply).toContain('"status":431');
    expect(received).toEqual([]);
  });

  it('answers an unknown method, such as a lower-case one, with a 501 problem', async () => {
    const reply = await rawExchange(gateway.port, 'get /health HTTP/1.1\r\nHost: x\r\n\r\n');

    expect(reply).toMatch(/^HTTP\/1\.1 501 /);
    expect(reply).toContain('"type":"https://tutor-copiloto.dev/problems/unknown-method"');
  });

  it('answers CONNECT, which asks for a tunnel, with a 501 problem', async () => {
    const reply = await rawExchange(gateway.port, 'CONNECT /health HTTP/1.1\r\nHost: x\r\n\r\n');

    expect(reply).toMatch(/^HTTP\/1\.1 501 /);
    expect(reply).toContain('Content-Type: application/problem+json');
    expect(received).toEqual([]);
  });

  it('passes on a 204 without the Content-Type the local server gives every answer', async () => {
    answer = (_request, response) => {
      response.writeHead(204, { 'Content-Type': 'application/json; charset=utf-8', 'X-Request-Id': 'r' });
      response.end();
    };

    const response = await fetch(`${base}/auth/logout`, { method: 'POST' });

    expect(response.status).toBe(204);
    expect(response.headers.get('content-type')).toBeNull();
    expect(response.headers.get('x-request-id')).toBe('r');
  });

  it('answers 502 problem when the local functions do not answer', async () => {
    const nobody = await startGateway({ port: 0, upstreamPort: await freePort() });
    try {
      const response = await fetch(`http://127.0.0.1:${nobody.port}/health`);

      expect(await problemOf(response)).toEqual({
        status: 502,
        contentType: 'application/problem+json',
        body: expect.objectContaining({ type: 'https://tutor-copiloto.dev/problems/local-server-unavailable', status: 502 }),
      });
    } finally {
      await nobody.close();
    }
  });
});
