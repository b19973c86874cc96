// The minimal HTTP/1.1 client used for Secrets Manager: parsing responses (Content-Length,
// chunked, read to close, invalid) and signalling that a request is sent before its answer.

import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Http1Error, http1Request, parseResponse, type Http1Response } from '../../shared/aws/http1.ts';
import { freePort } from '../../infra/local/redis-server.ts';

const bytes = (text: string) => Buffer.from(text, 'utf8');

function complete(text: string, closed = false): Http1Response {
  const response = parseResponse(bytes(text), closed);
  if (response === undefined || response instanceof Http1Error) throw new Error(`expected a complete response, got ${String(response)}`);
  return response;
}

describe('reading an HTTP/1.1 response', () => {
  it('reads a body of the announced Content-Length, with the status and lower-case header names', () => {
    const response = complete('HTTP/1.1 400 Bad Request\r\nContent-Length: 10\r\nX-Amzn-ErrorType: AccessDeniedException\r\n\r\n{"a":"é"}');

    expect(response.status).toBe(400);
    expect(response.body).toBe('{"a":"é"}');
    expect(response.headers.get('x-amzn-errortype')).toBe('AccessDeniedException');
  });

  it('waits while the head or the announced body is still incomplete', () => {
    expect(parseResponse(bytes('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n'), false)).toBeUndefined();
    expect(parseResponse(bytes('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"a":'), false)).toBeUndefined();
  });

  it('joins a chunked body once its last chunk has arrived, chunk extensions and trailers ignored', () => {
    const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';

    expect(parseResponse(bytes(`${head}5\r\n{"Sec\r\n`), false)).toBeUndefined();
    expect(complete(`${head}5\r\n{"Sec\r\nd;ext=1\r\nretString":1}\r\n0\r\nTrailer: x\r\n\r\n`).body).toBe('{"SecretString":1}');
  });

  it('takes everything up to the close when the body has neither a length nor chunks', () => {
    expect(parseResponse(bytes('HTTP/1.1 200 OK\r\n\r\n{"partial'), false)).toBeUndefined();
    expect(complete('HTTP/1.1 200 OK\r\n\r\n{"whole":true}', true).body).toBe('{"whole":true}');
  });

  it('names what is not HTTP, or a malformed chunk, an invalid response', () => {
    expect(parseResponse(bytes('SSH-2.0-OpenSSH\r\n\r\n'), false)).toMatchObject({ code: 'InvalidResponse' });
    expect(parseResponse(bytes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'), false)).toMatchObject({ code: 'InvalidResponse' });
  });
});

describe('sending an HTTP/1.1 request', () => {
  const request = (port: number, onSent: () => void) =>
    http1Request({ url: new URL(`http://127.0.0.1:${port}/`), method: 'POST', headers: {}, body: '{}', connectTimeoutMs: 1_000, idleTimeoutMs: 2_000, onSent });

  it('says when the request is on its way, before the answer, so that a cold start can work meanwhile', async () => {
    // The server answers only once the client has said its request is sent.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const server = createServer((socket) => socket.once('data', () => void released.then(() => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    let sent = 0;

    const response = await request((server.address() as AddressInfo).port, () => {
      sent += 1;
      release();
    }).finally(() => server.close());

    expect(sent).toBe(1);
    expect(response.body).toBe('ok');
  });

  it('does not say so when the connection is refused', async () => {
    let sent = 0;

    const failure = await request(await freePort(), () => (sent += 1)).catch((error: unknown) => error);

    expect(failure).toMatchObject({ code: 'ECONNREFUSED' });
    expect(sent).toBe(0);
  });
});
