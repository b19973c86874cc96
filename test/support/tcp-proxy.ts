// A loopback TCP proxy that can go silent: it keeps every socket open but stops forwarding, the
// way a frozen Lambda's connection or a half-open TCP link behaves. It can also hold every answer
// for a while, as a network between a function and Redis does (the benchmarks' round-trip time),
// and send new connections elsewhere, as a DNS name does after a failover. Beside it, a server
// that accepts connections and never answers (a hung dependency).

import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Stop forwarding in both directions, on open and new connections; sockets stay open. */
  freeze(): void;
  /** Only the connections open now go silent (a stale socket after a Lambda thaw); new ones work. */
  freezeExisting(): void;
  thaw(): void;
  /** New connections go to `port` from now on; open ones stay where they are (a DNS name that moves at a failover). */
  retarget(port: number): void;
  /** Connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /** Each chunk from the target reaches the client this much later, in order. */
  replyDelayMs?: number;
}

export async function startTcpProxy(targetPort: number, { replyDelayMs = 0 }: TcpProxyOptions = {}): Promise<TcpProxy> {
  let frozen = false;
  let target = targetPort;
  const sockets = new Set<Socket>();
  const silenced = new WeakSet<Socket>();
  const proxy = { connections: 0 } as TcpProxy;
  const server = createServer((client) => {
    proxy.connections += 1;
    const upstream = connect({ port: target, host: '127.0.0.1' });
    for (const socket of [client, upstream]) {
      // As Redis and ioredis do: no Nagle delay on small writes (which a held answer would meet).
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    const silent = () => frozen || silenced.has(client);
    client.on('data', (chunk) => !silent() && upstream.write(chunk));
    const answer = (chunk: Buffer) => !silent() && client.write(chunk);
    upstream.on('data', (chunk: Buffer) => (replyDelayMs > 0 ? setTimeout(answer, replyDelayMs, chunk) : answer(chunk)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(proxy, {
    port: (server.address() as AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    freezeExisting: () => {
      for (const socket of sockets) silenced.add(socket);
    },
    thaw: () => {
      frozen = false;
    },
    retarget: (port: number) => {
      target = port;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

export interface SilentServer {
  port: number;
  close(): Promise<void>;
}

/** A loopback server that accepts every connection and never answers (a hung dependency). */
export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
