// `npm run redis:migrate` run as an operator would, between real servers (standalone, cluster,
// TLS, one writing a newer RDB format): copies with their TTLs, --match, --dry-run, --verify, the
// type-by-type fallback, endpoints from secrets, and one-sentence failures.

import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../../infra/local/redis-server.ts';
import { startNewerRedis, type NewerRedis } from '../doubles/newer-redis.ts';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../doubles/secrets-manager.ts';
import { runTool } from '../support/operator-tool.ts';
import { keySlot } from '../../shared/redis-cluster.ts';
import { startRedisCluster, startSlotMove, startStandaloneRedis, startTlsRedis, untilClusterState, type RedisCluster, type RedisServer, type TlsRedis } from '../support/redis.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

const SOURCE_PASSWORD = 'source-password-2718';
const TARGET_PASSWORD = 'target-password-3141';

const migrate = (args: string[], env: Record<string, string> = {}) => runTool('redis-migrate.ts', args, env);

const BINARY_KEY = Buffer.from([0x62, 0x69, 0x6e, 0xff, 0x00, 0xfe]);

/** One key of every type, binary names and values, with and without a TTL. */
async function seedEveryType(client: Redis, prefix = ''): Promise<void> {
  await client.set(`${prefix}string`, 'plain value');
  await client.set(`${prefix}string:ttl`, 'expires later', 'PX', 60_000);
  await client.hset(`${prefix}hash`, { name: 'Ada', lessons: '12' });
  await client.rpush(`${prefix}list`, 'first', 'second', 'first');
  await client.sadd(`${prefix}set`, 'algebra', 'geometry');
  await client.zadd(`${prefix}zset`, 1.5, 'low', 99, 'high', -3, 'negative');
  await client.xadd(`${prefix}stream`, '1-1', 'question', 'why', 'answer', 'because');
  await client.xadd(`${prefix}stream`, '2-0', 'question', 'how');
  await client.set(Buffer.concat([Buffer.from(prefix), BINARY_KEY]), Buffer.from([0, 1, 2, 0xff]));
}

async function everyTypeAsSeen(client: Redis | Cluster, prefix = ''): Promise<unknown> {
  return {
    string: await client.get(`${prefix}string`),
    stringTtlKept: (await client.pttl(`${prefix}string:ttl`)) > 50_000,
    hash: await client.hgetall(`${prefix}hash`),
    list: await client.lrange(`${prefix}list`, 0, -1),
    set: (await client.smembers(`${prefix}set`)).sort(),
    zset: await client.zrange(`${prefix}zset`, 0, '-1', 'WITHSCORES'),
    stream: await client.xrange(`${prefix}stream`, '-', '+'),
    binary: (await client.getBuffer(Buffer.concat([Buffer.from(prefix), BINARY_KEY])))?.toString('hex'),
    persistent: await client.pttl(`${prefix}hash`),
  };
}

const EVERY_TYPE = {
  string: 'plain value',
  stringTtlKept: true,
  hash: { name: 'Ada', lessons: '12' },
  list: ['first', 'second', 'first'],
  set: ['algebra', 'geometry'],
  zset: ['negative', '-3', 'low', '1.5', 'high', '99'],
  stream: [
    ['1-1', ['question', 'why', 'answer', 'because']],
    ['2-0', ['question', 'how']],
  ],
  binary: '000102ff',
  persistent: -1,
};

async function fillStrings(client: Redis, count: number, prefix: string): Promise<void> {
  for (let start = 0; start < count; start += 10_000) {
    const pipeline = client.pipeline();
    for (let i = start; i < Math.min(count, start + 10_000); i += 1) pipeline.set(`${prefix}${i}`, `value ${i}`);
    await pipeline.exec();
  }
}

describe('npm run redis:migrate', () => {
  let source: RedisServer;
  let target: RedisServer;
  let tlsTarget: TlsRedis;
  let cluster: RedisCluster;
  let sourceClient: Redis;
  let targetClient: Redis;

  beforeAll(async () => {
    [source, target, tlsTarget, cluster] = await Promise.all([
      startStandaloneRedis(),
      startStandaloneRedis({ password: TARGET_PASSWORD }),
      startTlsRedis(),
      startRedisCluster(),
    ]);
    sourceClient = new Redis({ port: source.port, host: '127.0.0.1' });
    targetClient = new Redis({ port: target.port, host: '127.0.0.1', password: TARGET_PASSWORD });
  });
  afterAll(async () => {
    sourceClient.disconnect();
    targetClient.disconnect();
    await Promise.all([source.stop(), target.stop(), tlsTarget.stop(), cluster.stop()]);
  });
  beforeEach(async () => {
    await Promise.all([sourceClient.flushall(), targetClient.flushall()]);
  });

  describe('from one server to another', () => {
    it('copies every type with binary names and values, and --verify finds them equal', async () => {
      await seedEveryType(sourceClient);

      const run = await migrate(['--from', source.url, '--to', target.url, '--verify']);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('copied 8 keys');
      expect(run.stdout).toContain('verify: equal (8 keys compared; the target holds 8 keys matching "*")');
      expect(await everyTypeAsSeen(targetClient)).toEqual(EVERY_TYPE);
    });

    it('keeps the remaining TTL of each key and leaves keys without one persistent', async () => {
      await sourceClient.set('session', 'x', 'PX', 600_000);
      await sourceClient.set('user', 'y');

      const run = await migrate(['--from', source.url, '--to', target.url]);

      expect(run.code).toBe(0);
      const ttl = await targetClient.pttl('session');
      expect(ttl).toBeGreaterThan(590_000);
      expect(ttl).toBeLessThanOrEqual(600_000);
      expect(await targetClient.pttl('user')).toBe(-1);
    });

    it('gives each copy the expiry of its original, not one later by the time the copy took', async () => {
      await sourceClient.set('session', 'x', 'PX', 600_000);
      await sourceClient.hset('cached', 'field', 'value');
      await sourceClient.pexpire('cached', 600_000);
      // Every answer of the source arrives 400 ms late: the TTLs are read long before they are written.
      const slowSource = await startTcpProxy(source.port, { replyDelayMs: 400 });
      try {
        for (const method of [[], ['--fallback-copy']]) {
          await targetClient.flushall();

          const run = await migrate(['--from', `redis://127.0.0.1:${slowSource.port}`, '--to', target.url, ...method]);

          expect(run.code).toBe(0);
          for (const key of ['session', 'cached']) {
            const [original, copy] = await Promise.all([sourceClient.call('PEXPIRETIME', key), targetClient.call('PEXPIRETIME', key)]);
            // Never later; earlier by at most a round trip or two (a script sent again after NOSCRIPT).
            expect(Number(copy)).toBeLessThanOrEqual(Number(original) + 50);
            expect(Number(copy)).toBeGreaterThan(Number(original) - 1000);
          }
        }
      } finally {
        await slowSource.close();
      }
    });

    it('copies from a source whose user may not run INFO (an ACL without @dangerous)', async () => {
      const noInfoPassword = randomUUID();
      await seedEveryType(sourceClient);
      await sourceClient.acl('SETUSER', 'no-info', 'on', `>${noInfoPassword}`, '~*', '&*', '+@all', '-@dangerous');

      const run = await migrate(['--from', `redis://no-info:${noInfoPassword}@127.0.0.1:${source.port}`, '--to', target.url, '--verify']);

      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^from redis:\/\/no-info:\*\*\*@127\.0\.0\.1:\d+: Redis \?, standalone, keys unknown \(INFO not allowed\)$/m);
      expect(run.stdout).toContain('verify: equal (8 keys compared');
      expect(await everyTypeAsSeen(targetClient)).toEqual(EVERY_TYPE);
    });

    it('warns, after copying, that a target whose user may not run INFO cannot be watched for evictions and restarts', async () => {
      await seedEveryType(sourceClient);
      const password = randomUUID();
      await targetClient.acl('SETUSER', 'no-info-target', 'on', `>${password}`, '~*', '&*', '+@all', '-info');

      const run = await migrate(['--from', source.url, '--to', `redis://no-info-target:${password}@127.0.0.1:${target.port}`]);

      expect(run.code).toBe(0);
      expect(run.stderr.trim()).toBe(
        "! The target's INFO does not show its evictions and restarts: keys it may have dropped during the copy cannot be detected; run again with --dry-run --verify to compare.",
      );
      expect(await everyTypeAsSeen(targetClient)).toEqual(EVERY_TYPE);
    });

    it('copies from a source user that may read only some keys and not run INFO, the probe notwithstanding', async () => {
      const password = randomUUID();
      await sourceClient.set('app:1', 'one');
      await sourceClient.acl('SETUSER', 'app-reader', 'on', `>${password}`, '~app:*', '&*', '+@all', '-info');

      const run = await migrate(['--from', `redis://app-reader:${password}@127.0.0.1:${source.port}`, '--to', target.url, '--match', 'app:*']);

      expect(run.code).toBe(0);
      expect(await targetClient.get('app:1')).toBe('one');
      expect(await targetClient.keys('redis-migrate:probe:*')).toEqual([]);
    });

    it('copies only the keys that --match selects', async () => {
      await sourceClient.mset('tc:{u:1}:session', 'a', 'tc:{u:2}:session', 'b', 'other', 'c');

      const run = await migrate(['--from', source.url, '--to', target.url, '--match', 'tc:*']);

      expect(run.code).toBe(0);
      expect((await targetClient.keys('*')).sort()).toEqual(['tc:{u:1}:session', 'tc:{u:2}:session']);
    });

    it('copies between two databases of one server, counting only the keys of each side\'s database', async () => {
      await sourceClient.mset('in-db-0:a', '1', 'in-db-0:b', '2', 'in-db-0:c', '3');
      const databaseThree = new Redis({ port: source.port, host: '127.0.0.1', db: 3 });
      try {
        await databaseThree.mset('in-db-3:a', 'copied', 'in-db-3:b', 'copied too');

        const run = await migrate(['--from', `${source.url}/3`, '--to', `${source.url}/4`]);

        expect(run.code).toBe(0);
        expect(run.stdout).toMatch(/^from redis:\/\/127\.0\.0\.1:\d+\/3: Redis [\d.]+, standalone, 2 keys$/m);
        expect(run.stdout).toMatch(/^to   redis:\/\/127\.0\.0\.1:\d+\/4: Redis [\d.]+, standalone, 0 keys$/m);
        await databaseThree.select(4);
        expect((await databaseThree.keys('*')).sort()).toEqual(['in-db-3:a', 'in-db-3:b']);
      } finally {
        databaseThree.disconnect();
      }
    });

    it('writes nothing with --dry-run and says what it would copy', async () => {
      await seedEveryType(sourceClient);
      await targetClient.set('hash', 'will be replaced');

      const run = await migrate(['--from', source.url, '--to', target.url, '--dry-run']);

      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/dry run: would copy 8 keys matching "\*" \(.*hash 1.*\), 1 of them with a TTL;/);
      expect(run.stdout).toContain('1 already exist on the target and would be replaced. Nothing was written.');
      expect(await targetClient.dbsize()).toBe(1);
      expect(await targetClient.get('hash')).toBe('will be replaced');
    });

    it('skips keys that expire during the copy instead of copying them without a TTL', async () => {
      const pipeline = sourceClient.pipeline();
      for (let i = 0; i < 5_000; i += 1) pipeline.set(`short:${i}`, 'x', 'PX', 20 + (i % 300));
      // Keys that outlive the copy: it has something to copy, and their TTLs to keep.
      for (let i = 0; i < 200; i += 1) pipeline.set(`long:${i}`, 'x', 'PX', 600_000);
      await pipeline.exec();

      const run = await migrate(['--from', source.url, '--to', target.url, '--batch', '50', '--parallel', '1']);

      expect(run.code).toBe(0);
      const copied = Number(/copied (\d+) keys/.exec(run.stdout)?.[1]);
      const skipped = Number(/(\d+) expired during the copy/.exec(run.stdout)?.[1] ?? 0);
      expect(copied).toBeGreaterThanOrEqual(200);
      expect(copied + skipped).toBeLessThanOrEqual(5_200);
      const survivors = [...(await targetClient.keys('short:*')), ...(await targetClient.keys('long:*'))];
      const ttls = await Promise.all(survivors.map((key) => targetClient.pttl(key)));
      expect(survivors.filter((key) => key.startsWith('long:'))).toHaveLength(200);
      expect(ttls.filter((ttl) => ttl === -1)).toEqual([]);
    });

    it('prints a progress line with keys, keys/s and ETA on stderr with --progress', async () => {
      await fillStrings(sourceClient, 2_000, 'p:');

      const run = await migrate(['--from', source.url, '--to', target.url, '--progress']);

      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/copied 2000 of ~2000 keys, \d+ keys\/s, ETA \d+s/);
      expect(run.stdout).not.toContain('keys/s, ETA');
    });

    it('copies 100k keys and verifies them equal', async () => {
      await fillStrings(sourceClient, 100_000, 'bulk:');

      const run = await migrate(['--from', source.url, '--to', target.url, '--verify']);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('copied 100000 keys');
      expect(run.stdout).toContain('verify: equal (100000 keys compared; the target holds 100000 keys matching "*")');
      expect(await targetClient.dbsize()).toBe(100_000);
    });
  });

  describe('--verify', () => {
    it('exits 3 and names the keys whose value, TTL or presence differ', async () => {
      await sourceClient.mset('same', '1', 'changed', 'before', 'gone', 'x');
      await sourceClient.set('ttl', 'v', 'PX', 600_000);
      await migrate(['--from', source.url, '--to', target.url]);
      await targetClient.set('changed', 'after');
      await targetClient.del('gone');
      await targetClient.persist('ttl');
      await targetClient.set('extra', 'only here');

      const run = await migrate(['--from', source.url, '--to', target.url, '--dry-run', '--verify']);

      expect(run.code).toBe(3);
      expect(run.stdout).toContain('verify: 4 differences in 4 keys compared:');
      expect(run.stdout).toContain('- changed: the values differ');
      expect(run.stdout).toContain('- gone: missing on the target');
      expect(run.stdout).toMatch(/- ttl: TTL \d+ ms on the source, no TTL on the target/);
      expect(run.stdout).toContain('- extra: on the target only');
    });
  });

  describe('to a cluster', () => {
    let clusterClient: Cluster;
    beforeAll(() => {
      clusterClient = new Cluster([{ host: '127.0.0.1', port: cluster.nodes[0]!.port }]);
    });
    afterAll(() => clusterClient.disconnect());

    it('restores each key on the node that owns its slot, and --verify finds them equal', async () => {
      await seedEveryType(sourceClient);
      await fillStrings(sourceClient, 3_000, 'spread:');

      const run = await migrate(['--from', source.url, '--to', cluster.url, '--verify']);

      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/to {3}redis:\/\/127\.0\.0\.1:\d+: Redis [\d.]+, cluster of 3 masters/);
      expect(run.stdout).toContain('verify: equal (3008 keys compared; the target holds 3008 keys matching "*")');
      expect(await everyTypeAsSeen(clusterClient)).toEqual(EVERY_TYPE);
      const perNode = await Promise.all(clusterClient.nodes('master').map((node) => node.dbsize()));
      expect(perNode.every((count) => count > 0)).toBe(true);
    });
  });

  describe('from a cluster', () => {
    it('scans every master and copies their keys to a single server', async () => {
      const clusterClient = new Cluster([{ host: '127.0.0.1', port: cluster.nodes[0]!.port }]);
      const pipeline = clusterClient.pipeline();
      for (let i = 0; i < 300; i += 1) pipeline.set(`{from-cluster}:${i}`, `value ${i}`);
      await pipeline.exec();
      for (let i = 0; i < 300; i += 1) await clusterClient.set(`from-cluster:${i}`, `value ${i}`, 'PX', 600_000);
      clusterClient.disconnect();

      const run = await migrate(['--from', cluster.url, '--to', target.url, '--match', '*from-cluster*', '--verify']);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('verify: equal (600 keys compared; the target holds 600 keys matching "*from-cluster*")');
      expect(await targetClient.pttl('from-cluster:7')).toBeGreaterThan(590_000);
    });
  });

  describe('while a cluster reshards', () => {
    let resharding: RedisCluster;
    let reshardingClient: Cluster;
    beforeEach(async () => {
      resharding = await startRedisCluster();
      reshardingClient = new Cluster([{ host: '127.0.0.1', port: resharding.nodes[0]!.port }]);
    });
    afterEach(async () => {
      reshardingClient.disconnect();
      await resharding.stop();
    });

    it('writes the keys of a slot on the move where the cluster redirects them, beside the other keys of their node', async () => {
      await fillStrings(sourceClient, 1_000, 'spread:');
      await fillStrings(sourceClient, 100, '{moving}:');
      const move = await startSlotMove(resharding, keySlot('{moving}'));

      const run = await migrate(['--from', source.url, '--to', resharding.url, '--verify']);

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('verify: equal (1100 keys compared; the target holds 1100 keys matching "*")');
      await move.finish();
      expect(await reshardingClient.get('{moving}:42')).toBe('value 42');
      expect(await reshardingClient.get('spread:42')).toBe('value 42');
    });

    it('reads the keys of a slot on the move from whichever master holds them, and warns that the source was resharding', async () => {
      await fillStrings(sourceClient, 1_000, 'spread:');
      await fillStrings(sourceClient, 100, '{moving}:');
      expect((await migrate(['--from', source.url, '--to', resharding.url])).code).toBe(0);
      const move = await startSlotMove(resharding, keySlot('{moving}'));
      await move.moveKeys(Array.from({ length: 50 }, (_, i) => `{moving}:${i}`));

      const run = await migrate(['--from', resharding.url, '--to', target.url, '--verify']);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('verify: equal (1100 keys compared; the target holds 1100 keys matching "*")');
      expect(run.stderr).toMatch(/^! The source's slots moved during the copy \(a resharding: slot \d+ moving between masters\): a key that moved while the copy ran may not have been copied/m);
      expect(await targetClient.get('{moving}:7')).toBe('value 7');
      expect(await targetClient.get('{moving}:77')).toBe('value 77');
    });
  });

  describe('to a TLS server', () => {
    it('connects with rediss:// and REDIS_TLS_CA_FILE and copies everything', async () => {
      await seedEveryType(sourceClient);

      const run = await migrate(['--from', source.url, '--to', tlsTarget.url, '--verify'], { REDIS_TLS_CA_FILE: tlsTarget.tlsMaterial.ca });

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('verify: equal (8 keys compared');
    });
  });

  describe('with endpoints in secrets', () => {
    let guardedSource: RedisServer;
    let secrets: SecretsManagerDouble;
    beforeAll(async () => {
      [guardedSource, secrets] = await Promise.all([startStandaloneRedis({ password: SOURCE_PASSWORD }), startSecretsManagerDouble()]);
      secrets.setSecret('migrate/source', JSON.stringify({ host: '127.0.0.1', port: guardedSource.port, password: SOURCE_PASSWORD }));
      secrets.setSecret('migrate/target', target.url);
    });
    afterAll(async () => {
      await Promise.all([guardedSource.stop(), secrets.close()]);
    });

    it('reads both URLs from Secrets Manager and never prints a password', async () => {
      const client = new Redis({ port: guardedSource.port, host: '127.0.0.1', password: SOURCE_PASSWORD });
      await seedEveryType(client);
      client.disconnect();

      const run = await migrate(['--from-secret', 'migrate/source', '--to-secret', 'migrate/target', '--verify'], secrets.env);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`from redis://:***@127.0.0.1:${guardedSource.port}`);
      expect(run.stdout).toContain('verify: equal (8 keys compared');
      expect(run.output).not.toContain(SOURCE_PASSWORD);
      expect(run.output).not.toContain(TARGET_PASSWORD);
    });

    it.each([
      ['--from-secret', () => ['--from-secret', 'migrate/nowhere', '--to', target.url]],
      ['--to-secret', () => ['--from-secret', 'migrate/source', '--to-secret', 'migrate/nowhere']],
    ])('says which secret is missing, and that %s named it', async (option, args) => {
      const run = await migrate(args(), secrets.env);

      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toBe(`✗ The secret "migrate/nowhere" does not exist in eu-west-1: check ${option} and AWS_REGION.`);
    });
  });

  describe('to a target on an older Redis than the source', () => {
    let newer: NewerRedis;
    beforeAll(async () => {
      newer = await startNewerRedis(source.port);
    });
    afterAll(() => newer.close());

    it('explains that RESTORE cannot read the newer format and copies type by type instead', async () => {
      await seedEveryType(sourceClient);

      const run = await migrate(['--from', newer.url, '--to', target.url, '--verify']);

      expect(run.code).toBe(0);
      expect(run.stderr).toContain(
        '! The target (Redis 7.0.15) cannot read DUMP payloads of RDB format 11 from the source (Redis 7.2.4): copying type by type instead.',
      );
      expect(run.stdout).toContain('copied 8 keys');
      expect(run.stdout).toContain('8 of them type by type');
      expect(run.stdout).toContain('verify: equal (8 keys compared');
      expect(await everyTypeAsSeen(targetClient)).toEqual(EVERY_TYPE);
    });

    it('stops with a clear sentence under --no-fallback', async () => {
      await seedEveryType(sourceClient);

      const run = await migrate(['--from', newer.url, '--to', target.url, '--no-fallback']);

      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toBe(
        '✗ The target (Redis 7.0.15) cannot read the DUMP payloads of the source (Redis 7.2.4, RDB format 11): RESTORE answers "DUMP payload version or checksum are wrong"; run again without --no-fallback to copy type by type, or upgrade the target.',
      );
    });

    it('copies type by type from the start with --fallback-copy', async () => {
      await seedEveryType(sourceClient);

      const run = await migrate(['--from', source.url, '--to', target.url, '--fallback-copy', '--verify']);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('8 of them type by type');
      expect(run.stderr).toBe('');
      expect(await everyTypeAsSeen(targetClient)).toEqual(EVERY_TYPE);
    });
  });

  describe('type by type', () => {
    it('copies a stream whose entries were all deleted as an empty stream, not as a key that expired', async () => {
      await sourceClient.xadd('events', '1-1', 'question', 'why');
      await sourceClient.xdel('events', '1-1');

      const run = await migrate(['--from', source.url, '--to', target.url, '--fallback-copy', '--verify']);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('copied 1 keys');
      expect(run.stdout).not.toContain('expired during the copy');
      expect(await targetClient.type('events')).toBe('stream');
      expect(await targetClient.xlen('events')).toBe(0);
    });
  });

  describe('fails with one sentence', () => {
    it('when the target cannot be reached', async () => {
      const port = await freePort();

      const run = await migrate(['--from', source.url, '--to', `redis://127.0.0.1:${port}`]);

      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toBe(
        `✗ Nothing accepts connections on 127.0.0.1:${port} (connection refused): check the port in --to and that Redis is running there.`,
      );
    });

    it('when the target stops answering mid-copy, telling a lost connection rather than blaming a key', async () => {
      await fillStrings(sourceClient, 50_000, 'key:');
      const plainTarget = await startStandaloneRedis();
      const link = await startTcpProxy(plainTarget.port);
      const watcher = new Redis({ port: plainTarget.port, host: '127.0.0.1' });
      try {
        const running = migrate(['--from', source.url, '--to', `redis://127.0.0.1:${link.port}`, '--batch', '100', '--parallel', '1', '--timeout', '1000']);
        while ((await watcher.dbsize()) === 0) await new Promise((resolve) => setTimeout(resolve, 10));
        link.freeze();

        const run = await running;

        expect(run.code).toBe(1);
        expect(run.stderr.trim()).toMatch(/^✗ A connection was lost after \d+ keys \(.+\): run the same command again/);
      } finally {
        watcher.disconnect();
        await link.close();
        await plainTarget.stop();
      }
    });

    it('when the target evicts keys to make room for the copy, rather than claiming every key was copied', async () => {
      const pipeline = sourceClient.pipeline();
      for (let i = 0; i < 20_000; i += 1) pipeline.set(`cache:${i}`, 'x'.repeat(500), 'PX', 3_600_000);
      await pipeline.exec();
      const smallTarget = await startStandaloneRedis({ extraArgs: ['--maxmemory', '5mb', '--maxmemory-policy', 'volatile-lru'] });
      try {
        const run = await migrate(['--from', source.url, '--to', smallTarget.url]);

        expect(run.code).toBe(1);
        expect(run.stdout).not.toMatch(/copied \d+ keys in/);
        expect(run.stderr.trim()).toMatch(
          /^✗ The target evicted \d+ keys during the copy \(maxmemory full, maxmemory-policy volatile-lru\): raise its maxmemory, or copy fewer keys with --match, then run again\.$/,
        );
      } finally {
        await smallTarget.stop();
      }
    });

    it('when the target restarts during the copy, losing what it held, rather than claiming every key was copied', async () => {
      await fillStrings(sourceClient, 100_000, 'key:');
      const plainTarget = await startStandaloneRedis();
      const watcher = new Redis({ port: plainTarget.port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 50 });
      watcher.on('error', () => {});
      try {
        const running = migrate(['--from', source.url, '--to', plainTarget.url, '--batch', '200', '--parallel', '1']);
        while ((await watcher.dbsize()) < 1000) await new Promise((resolve) => setTimeout(resolve, 5));
        await plainTarget.kill();
        await plainTarget.restart(); // no persistence: what it held is gone

        const run = await running;

        expect(run.code).toBe(1);
        expect(run.stdout).not.toMatch(/copied \d+ keys in/);
        // Usually the client reconnects and the copy goes on; on a busy machine a write may be lost with the connection first.
        expect(run.stderr.trim()).toMatch(
          /^✗ (The target restarted during the copy \(a node of the target has a new run_id\): keys copied before may be lost; run the same command again \(it overwrites\), then --verify\.|A connection was lost after \d+ keys)/,
        );
      } finally {
        watcher.disconnect();
        await plainTarget.stop();
      }
    });

    it('when the target runs out of memory, copying by RESTORE or type by type', async () => {
      const pipeline = sourceClient.pipeline();
      for (let i = 0; i < 20_000; i += 1) pipeline.set(`big:${i}`, 'x'.repeat(500));
      await pipeline.exec();
      const fullTarget = await startStandaloneRedis({ extraArgs: ['--maxmemory', '5mb', '--maxmemory-policy', 'noeviction'] });
      try {
        for (const method of [[], ['--fallback-copy']]) {
          const run = await migrate(['--from', source.url, '--to', fullTarget.url, ...method]);

          expect(run.code, method.join(' ')).toBe(1);
          expect(run.stderr.trim(), method.join(' ')).toMatch(
            /^✗ The target ran out of memory writing "big:\d+" after \d+ keys: raise its maxmemory, or copy fewer keys with --match\.$/,
          );
        }
      } finally {
        await fullTarget.stop();
      }
    });

    it('when the target is a read-only replica, pointing at its primary rather than at a key', async () => {
      await seedEveryType(sourceClient);
      const replica = await startStandaloneRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(target.port), '--masterauth', TARGET_PASSWORD] });
      try {
        const run = await migrate(['--from', source.url, '--to', replica.url]);

        expect(run.code).toBe(1);
        expect(run.stderr.trim()).toMatch(/^✗ The target is a read-only replica \(READONLY .+\): point --to at its primary\.$/);
      } finally {
        await replica.stop();
      }
    });

    it("when the target's user may not restore keys, naming the permissions rather than a key", async () => {
      await seedEveryType(sourceClient);
      const password = randomUUID();
      await targetClient.acl('SETUSER', 'no-restore', 'on', `>${password}`, '~*', '&*', '+@all', '-restore');

      const run = await migrate(['--from', source.url, '--to', `redis://no-restore:${password}@127.0.0.1:${target.port}`]);

      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toMatch(/^✗ The target's user may not run what the copy needs \(.+\): grant it RESTORE, EVALSHA and EVAL/);
      expect(run.output).not.toContain(password);
    });

    it("when the target's user may not write some keys, naming the key and the way round it", async () => {
      const password = randomUUID();
      await sourceClient.set('other:1', 'outside the pattern');
      await targetClient.acl('SETUSER', 'app-writer', 'on', `>${password}`, '~app:*', '~redis-migrate:probe:*', '&*', '+@all');

      const run = await migrate(['--from', source.url, '--to', `redis://app-writer:${password}@127.0.0.1:${target.port}`]);

      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toMatch(/^✗ The target's user may not write "other:1" \(NOPERM .+\): copy only the keys it may write with --match, or widen its key patterns\.$/);
    });

    it('when the target rejects the password, without printing it', async () => {
      const wrong = 'wrong-password-1618';

      const run = await migrate(['--from', source.url, '--to', `redis://:${wrong}@127.0.0.1:${target.port}`]);

      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toMatch(/^✗ Redis at 127\.0\.0\.1:\d+ rejected the user name or password: put the current credentials in --to\.$/);
      expect(run.output).not.toContain(wrong);
    });

    it('when the target URL names a database the server does not have, writing nothing', async () => {
      await sourceClient.set('tc:important', 'from the source');
      await targetClient.set('tc:important', 'the target keeps this');
      const run = await migrate(['--from', source.url, '--to', `${target.url}/99`]);

      expect(run.code).toBe(1);
      expect(run.stderr).toContain('the Redis URL in --to names database 99, which the server refused (ERR DB index is out of range)');
      expect(await targetClient.get('tc:important')).toBe('the target keeps this');
      expect(run.output).not.toContain(TARGET_PASSWORD);
    });

    it('when a cluster URL names a database, saying which of the two URLs it is', async () => {
      const run = await migrate(['--from', source.url, '--to', `redis://127.0.0.1:${cluster.nodes[0]!.port}/2`, '--to-cluster']);

      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toBe('✗ The configuration is invalid: the Redis URL in --to names database 2, but a Redis Cluster has only database 0.');
    });

    it('when the password in a URL holds a raw %, saying to write it %25, without printing it', async () => {
      const run = await migrate(['--from', source.url, '--to', `redis://default:Sec%ret123abc@127.0.0.1:${target.port}`]);

      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toBe(
        '✗ The Redis URL in --to cannot be decoded: a % in the user name or password begins no percent-encoded character: write % as %25 (and @ : / ? # as %40 %3A %2F %3F %23).',
      );
      expect(run.output).not.toContain('ret123abc');
    });

    it('when source and target are the same database', async () => {
      const run = await migrate(['--from', source.url, '--to', source.url]);

      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--from and --to name the same server and database: there is nothing to copy');
    });

    it('when source and target are the same database reached by a user that may not run INFO, leaving no probe behind', async () => {
      const noInfoPassword = randomUUID();
      await sourceClient.set('tc:kept', 'as it was');
      await sourceClient.acl('SETUSER', 'no-info-either', 'on', `>${noInfoPassword}`, '~*', '&*', '+@all', '-info');
      const url = `redis://no-info-either:${noInfoPassword}@127.0.0.1:${source.port}`;

      const run = await migrate(['--from', url, '--to', url]);

      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--from and --to name the same server and database: there is nothing to copy');
      expect(await sourceClient.keys('*')).toEqual(['tc:kept']);
    });

    it('warns that one database on both ends cannot be ruled out when INFO is hidden and the probe key may not be written', async () => {
      const password = randomUUID();
      await sourceClient.set('app:1', 'kept');
      await sourceClient.acl('SETUSER', 'app-only', 'on', `>${password}`, '~app:*', '&*', '+@all', '-info');
      const url = `redis://app-only:${password}@127.0.0.1:${source.port}`;

      const run = await migrate(['--from', url, '--to', url, '--match', 'app:*']);

      expect(run.stderr).toContain(
        '! Whether --from and --to are one database cannot be checked (INFO hides run_id, and a probe key may not be written or read): make sure they differ.',
      );
      expect(await sourceClient.get('app:1')).toBe('kept');
    });

    it('writes no probe key in a dry run, and warns that one database on both ends could not be checked', async () => {
      const password = randomUUID();
      await targetClient.acl('SETUSER', 'dry-no-info', 'on', `>${password}`, '~*', '&*', '+@all', '-info');
      await sourceClient.set('tc:a', '1');
      await targetClient.config('RESETSTAT');

      const run = await migrate(['--from', source.url, '--to', `redis://dry-no-info:${password}@127.0.0.1:${target.port}`, '--dry-run']);

      expect(run.code).toBe(0);
      expect(run.stderr).toContain('! Whether --from and --to are one database cannot be checked');
      expect(await targetClient.dbsize()).toBe(0);
      expect(await targetClient.info('commandstats')).not.toContain('cmdstat_set:');
    });

    it('when source and target are one cluster reached through two of its nodes', async () => {
      const run = await migrate(['--from', `redis://127.0.0.1:${cluster.nodes[2]!.port}`, '--to', `redis://127.0.0.1:${cluster.nodes[0]!.port}`]);

      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--from and --to name the same server and database: there is nothing to copy');
    });

    it('when the source cluster has a master that stopped answering (cluster_state:fail)', async () => {
      const broken = await startRedisCluster();
      const paused = broken.nodes[2]!.process;
      try {
        paused.kill('SIGSTOP');
        await untilClusterState(broken.nodes[0]!.port, 'fail'); // the other nodes notice within the node time-out

        const run = await migrate(['--from', broken.url, '--from-cluster', '--to', target.url]);

        expect(run.code).toBe(1);
        expect(run.stderr.trim()).toMatch(/^✗ The Redis Cluster at 127\.0\.0\.1:\d+ is not serving: .* reports cluster_state:fail: some slots have no reachable master/);
      } finally {
        paused.kill('SIGCONT');
        await broken.stop();
      }
    });

    it('when an endpoint is missing (exit 2, with the usage)', async () => {
      const run = await migrate(['--from', source.url]);

      expect(run.code).toBe(2);
      expect(run.stderr).toContain('give either --to URL or --to-secret ID');
      expect(run.stderr).toContain('Usage: npm run -s redis:migrate --');
    });
  });
});
