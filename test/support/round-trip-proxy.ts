// A loopback TCP proxy that counts round trips between clients and a Redis server: a round trip
// starts each time a client sends data after it has received an answer (or on a new connection).
// A pipeline of any length written at once is one round trip; commands that wait for each
// other's replies are one each.
//
// Redis answers the first commands of a large pipeline while the rest is still arriving. So that
// those early answers do not split one pipeline into several "round trips", answers are held
// back while the client is still sending (until it has sent nothing for QUIET_MS; a large write
// reaches the proxy in pieces, with gaps while the client waits for its socket to drain): a
// client cannot react to an answer it has not received. Each round trip costs 2 × QUIET_MS more
// (one quiet period to see the client stop sending, one more to be sure).

import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

const QUIET_MS = 10;

/** What each round trip adds to a request's duration through the proxy. */
export const DELAY_PER_ROUND_TRIP_MS = 2 * QUIET_MS;

export interface RoundTripProxy {
  port: number;
  /** Round trips over every connection since the last reset. */
  roundTrips(): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startRoundTripProxy(targetPort: number): Promise<RoundTripProxy> {
  let roundTrips = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ port: targetPort, host: '127.0.0.1' });
    let answered = true; // the first bytes of a connection start a round trip
    let clientSending = false;
    let heldAnswers: Buffer[] = [];
    let deliveryScheduled = false;
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    const deliver = () => {
      deliveryScheduled = false;
      if (clientSending) {
        clientSending = false;
        scheduleDelivery();
        return;
      }
      if (heldAnswers.length === 0) return;
      answered = true;
      client.write(Buffer.concat(heldAnswers));
      heldAnswers = [];
    };
    const scheduleDelivery = () => {
      if (deliveryScheduled) return;
      deliveryScheduled = true;
      setTimeout(deliver, QUIET_MS);
    };
    client.on('data', (chunk) => {
      if (answered) roundTrips += 1;
      answered = false;
      clientSending = true;
      upstream.write(chunk);
      scheduleDelivery();
    });
    upstream.on('data', (chunk) => {
      heldAnswers.push(chunk);
      scheduleDelivery();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    roundTrips: () => roundTrips,
    reset: () => {
      roundTrips = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
