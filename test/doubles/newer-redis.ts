// A Redis that writes a newer RDB format than the redis-server installed here: a RESP server in
// front of a real one, forwarding every command, that stamps DUMP payloads with the next RDB
// version (checksum recomputed, as a newer server would write it) and reports the Redis version
// that introduced that format. A target on the installed Redis then refuses these payloads
// exactly as an older Redis refuses a newer one's: "DUMP payload version or checksum are wrong".
// Scripts are refused (as some managed services do), so every DUMP passes through here as a
// DUMP command.

import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';

export interface NewerRedis {
  port: number;
  url: string;
  /** The RDB version its DUMP payloads carry. */
  rdbVersion: number;
  /** The Redis version it reports in INFO. */
  redisVersion: string;
  close(): Promise<void>;
}

// CRC-64/Jones as Redis computes it over DUMP payloads: reflected, polynomial 0xad93d23594c935a9.
const CRC_TABLE = Array.from({ length: 256 }, (_, byte) => {
  let crc = BigInt(byte);
  for (let bit = 0; bit < 8; bit += 1) crc = crc & 1n ? (crc >> 1n) ^ 0x95ac9329ac4bc9b5n : crc >> 1n;
  return crc;
});

function crc64(bytes: Buffer): bigint {
  let crc = 0n;
  for (const byte of bytes) crc = CRC_TABLE[Number((crc ^ BigInt(byte)) & 0xffn)]! ^ (crc >> 8n);
  return crc;
}

/** The payload as a server writing RDB format `version` would have written it. */
export function restampPayload(payload: Buffer, version: number): Buffer {
  const out = Buffer.from(payload);
  out.writeUInt16LE(version, out.length - 10);
  out.writeBigUInt64LE(crc64(out.subarray(0, out.length - 8)), out.length - 8);
  return out;
}

/** Redis versions by the RDB format they introduced (RDB 10: 7.0, 11: 7.2, 12: 7.4). */
const VERSION_OF_FORMAT: Record<number, string> = { 11: '7.2.4', 12: '7.4.0' };

function encode(value: unknown): Buffer {
  if (value === null || value === undefined) return Buffer.from('$-1\r\n');
  if (typeof value === 'number') return Buffer.from(`:${value}\r\n`);
  if (Array.isArray(value)) return Buffer.concat([Buffer.from(`*${value.length}\r\n`), ...value.map(encode)]);
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(String(value));
  return Buffer.concat([Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n')]);
}

function encodeError(error: unknown): Buffer {
  const message = (error instanceof Error ? error.message : String(error)).replace(/[\r\n]+/g, ' ');
  return Buffer.from(`-${message}\r\n`);
}

/** Parses the complete commands (arrays of bulk strings) at the front of `input`. */
function parseCommands(input: Buffer): { commands: Buffer[][]; rest: Buffer } {
  const commands: Buffer[][] = [];
  let offset = 0;
  outer: while (offset < input.length) {
    const headerEnd = input.indexOf('\r\n', offset);
    if (headerEnd === -1) break;
    const count = Number(input.subarray(offset + 1, headerEnd).toString());
    let cursor = headerEnd + 2;
    const parts: Buffer[] = [];
    for (let i = 0; i < count; i += 1) {
      const lengthEnd = input.indexOf('\r\n', cursor);
      if (lengthEnd === -1) break outer;
      const length = Number(input.subarray(cursor + 1, lengthEnd).toString());
      if (lengthEnd + 2 + length + 2 > input.length) break outer;
      parts.push(input.subarray(lengthEnd + 2, lengthEnd + 2 + length));
      cursor = lengthEnd + 2 + length + 2;
    }
    commands.push(parts);
    offset = cursor;
  }
  return { commands, rest: input.subarray(offset) };
}

export async function startNewerRedis(upstreamPort: number, rdbVersion = 11): Promise<NewerRedis> {
  const redisVersion = VERSION_OF_FORMAT[rdbVersion] ?? '99.0.0';
  const sockets = new Set<Socket>();
  const upstreams = new Set<Redis>();

  const answer = async (upstream: Redis, [name, ...args]: Buffer[]): Promise<Buffer> => {
    const command = name!.toString().toUpperCase();
    if (['EVAL', 'EVALSHA', 'EVAL_RO', 'EVALSHA_RO', 'SCRIPT', 'FCALL'].includes(command)) {
      return encodeError(new Error(`ERR unknown command '${command}'`));
    }
    try {
      const reply = await upstream.callBuffer(command, args);
      if (command === 'DUMP' && Buffer.isBuffer(reply)) return encode(restampPayload(reply, rdbVersion));
      if (command === 'INFO' && Buffer.isBuffer(reply)) {
        return encode(Buffer.from(reply.toString().replace(/redis_version:[^\r\n]+/, `redis_version:${redisVersion}`)));
      }
      return encode(reply);
    } catch (error) {
      return encodeError(error);
    }
  };

  // No Nagle: a small reply must leave at once, not wait for the client's delayed ACK.
  const server: Server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    const upstream = new Redis({ port: upstreamPort, host: '127.0.0.1', protocol: 2 });
    upstreams.add(upstream);
    upstream.on('error', () => {});
    let pending = Buffer.alloc(0);
    // Replies leave in the order the commands came, though the commands run pipelined upstream.
    let lastReply: Promise<void> = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      const { commands, rest } = parseCommands(Buffer.concat([pending, chunk]));
      pending = Buffer.from(rest);
      for (const command of commands) {
        const reply = answer(upstream, command);
        lastReply = lastReply.then(async () => {
          if (!socket.destroyed) socket.write(await reply);
        });
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      upstreams.delete(upstream);
      upstream.disconnect();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    rdbVersion,
    redisVersion,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        for (const upstream of upstreams) upstream.disconnect();
        server.close(() => resolve());
      }),
  };
}
