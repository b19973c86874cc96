// Records what each system call writing to a Redis client's socket carried: a command per chunk,
// named with its first argument (`get k1`, `evalsha <sha>`), as ioredis encodes it.

import type { Socket } from 'node:net';

type WritableSocket = Socket & { _write: (...args: any[]) => unknown; _writev: (...args: any[]) => unknown };

export interface WriteRecorder {
  /** One entry a write, each listing its commands in order. */
  writes: string[][];
  stop(): void;
}

function commandOf(chunk: unknown): string {
  return /^\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n\$\d+\r\n([^\r]*)/.exec(String(chunk))?.slice(1).join(' ') ?? '?';
}

/** Starts recording the writes to `socket` (a standalone ioredis client's `stream`). */
export function recordWrites(socket: Socket): WriteRecorder {
  const target = socket as WritableSocket;
  const writes: string[][] = [];
  const [write, writev] = [target._write, target._writev];
  target._write = function (chunk: unknown, ...rest: unknown[]) {
    writes.push([commandOf(chunk)]);
    return write.call(this, chunk, ...rest);
  };
  target._writev = function (chunks: Array<{ chunk: unknown }>, ...rest: unknown[]) {
    writes.push(chunks.map(({ chunk }) => commandOf(chunk)));
    return writev.call(this, chunks, ...rest);
  };
  return { writes, stop: () => Object.assign(target, { _write: write, _writev: writev }) };
}

/** How many of the commands in `writes` (named as `commandNames` names them) are `name`. */
export function occurrences(writes: string[][], name: string): number {
  return writes.flat().filter((command) => command === name).length;
}

/** The command names alone (`get`, `evalsha`) of each write. */
export function commandNames(writes: string[][]): string[][] {
  return writes.map((commands) => commands.map((command) => command.split(' ')[0]!));
}
