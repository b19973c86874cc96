// How the container's commands reach the socket, against a real redis-server: a command held for
// the turn's end goes at once when nothing is in flight, and shares one write with the turn's
// other commands when something is.

import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import { currentLogContext, withLogContext } from '../../shared/logger.ts';
import { getRedis, withRedis } from '../../shared/redis.ts';
import { sendAtTurnEnd, withRedisSharingWrites } from '../../shared/redis-writes.ts';
import { useEnvironment } from '../support/env.ts';
import { useStandaloneRedis } from '../support/redis-suite.ts';
import { recordWrites } from '../support/socket-writes.ts';

describe('commands sharing socket writes', () => {
  const redis = useStandaloneRedis();
  let socket: Socket;
  beforeAll(async () => {
    await useEnvironment({ REDIS_URL: redis.server.url });
    await withRedis((client) => client.mset('k1', 'v1', 'k2', 'v2', 'k3', 'v3'));
    socket = ((await getRedis()) as Redis).stream;
  });

  it('sends a command held for the turn’s end at once when nothing is in flight', async () => {
    const recorder = recordWrites(socket);

    const read = withRedisSharingWrites((client) => client.get('k1'));
    const writtenBeforeTheTurnEnds = recorder.writes.length;
    recorder.stop();

    expect(writtenBeforeTheTurnEnds).toBe(1);
    expect(await read).toBe('v1');
  });

  it('holds the commands of a turn while another is in flight, and sends them in one write at the turn’s end', async () => {
    const recorder = recordWrites(socket);

    const inFlight = withRedis((client) => client.get('k1'));
    const held = [withRedisSharingWrites((client) => client.get('k2')), withRedisSharingWrites((client) => client.get('k3'))];
    sendAtTurnEnd(() => void withRedis((client) => client.get('k1')));
    const replies = await Promise.all([inFlight, ...held]);
    recorder.stop();

    expect(recorder.writes).toEqual([['get k1'], ['get k2', 'get k3', 'get k1']]);
    expect(replies).toEqual(['v1', 'v2', 'v3']);
  });

  it('runs a held command in the log context of the request that sent it', async () => {
    const inFlight = withRedis((client) => client.get('k1'));

    const contexts = await Promise.all(
      ['req-a', 'req-b'].map((requestId) => withLogContext({ requestId }, () => withRedisSharingWrites(async () => currentLogContext()?.requestId))),
    );

    await inFlight;
    expect(contexts).toEqual(['req-a', 'req-b']);
  });

  it('sends the rest of a turn’s commands when one of them throws, and raises the throw', async () => {
    const raised = new Promise((resolve) => process.once('uncaughtException', resolve));
    const inFlight = withRedis((client) => client.get('k1'));

    sendAtTurnEnd(() => {
      throw new Error('a bug in a sender');
    });
    const afterIt = withRedisSharingWrites((client) => client.get('k2'));

    await inFlight;
    expect(await afterIt).toBe('v2');
    expect(await raised).toMatchObject({ message: 'a bug in a sender' });
  });

  it('gives a held command’s failure to its caller', async () => {
    const inFlight = withRedis((client) => client.get('k1'));

    const failing = withRedisSharingWrites((client) => client.incr('k1'));

    await inFlight;
    await expect(failing).rejects.toThrow(/not an integer/);
  });
});
