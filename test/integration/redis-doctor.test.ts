// `npm run redis:doctor` run as an operator would, against real standalone, TLS and cluster
// servers and a stand-in for Secrets Manager: its report on a reachable server, and one actionable
// sentence with exit code 1 for each way of failing to reach one.

import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../infra/local/redis-server.ts';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../doubles/secrets-manager.ts';
import { runTool, type ToolRun } from '../support/operator-tool.ts';
import { keySlot } from '../../shared/redis-cluster.ts';
import { startRedisCluster, startSlotMove, startStandaloneRedis, startTlsRedis, untilClusterState, type RedisCluster, type RedisServer, type TlsRedis } from '../support/redis.ts';
import { startSilentServer, type SilentServer } from '../support/tcp-proxy.ts';

const PASSWORD = 'doctor-password-4711';
const WRONG_PASSWORD = 'not-the-password-0815';

const doctor = (env: Record<string, string>, args: string[] = []) => runTool('redis-doctor.ts', ['--pings', '20', ...args], env);

/** The one line a failing run ends with. */
function verdict(run: ToolRun): string {
  return run.stderr.trim().split('\n').at(-1) ?? '';
}

describe('npm run redis:doctor', () => {
  let plain: RedisServer;
  let tuned: RedisServer;
  let dataDir: string;
  let guarded: RedisServer;
  let tls: TlsRedis;
  let cluster: RedisCluster;
  let silent: SilentServer;
  let secrets: SecretsManagerDouble;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tc-doctor-'));
    [plain, tuned, guarded, tls, cluster, secrets, silent] = await Promise.all([
      startStandaloneRedis(),
      startStandaloneRedis({ dir: dataDir, extraArgs: ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'] }),
      startStandaloneRedis({ password: PASSWORD }),
      startTlsRedis(),
      startRedisCluster(),
      startSecretsManagerDouble(),
      startSilentServer(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([plain.stop(), tuned.stop(), guarded.stop(), tls.stop(), cluster.stop(), secrets.close(), silent.close()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  /**
   * Runs `run` with the Secrets Manager stand-in's endpoint and region but no AWS credentials (no
   * keys, no instance metadata, a home of its own holding `awsConfig` as ~/.aws/config, if given).
   */
  async function withoutAwsCredentials(run: (env: Record<string, string>) => Promise<ToolRun>, awsConfig?: string): Promise<ToolRun> {
    const { AWS_ACCESS_KEY_ID: _, AWS_SECRET_ACCESS_KEY: __, ...endpointAndRegion } = secrets.env;
    const home = mkdtempSync(join(tmpdir(), 'no-aws-'));
    if (awsConfig !== undefined) {
      mkdirSync(join(home, '.aws'));
      writeFileSync(join(home, '.aws', 'config'), awsConfig);
    }
    try {
      return await run({ ...endpointAndRegion, HOME: home, AWS_EC2_METADATA_DISABLED: 'true' });
    } finally {
      rmSync(home, { recursive: true });
    }
  }

  describe('on a server it can reach', () => {
    it('reports version, latency, memory, persistence, clients and hit rate, and exits 0', async () => {
      const client = new Redis({ port: plain.port, host: '127.0.0.1' });
      await client.set('present', 'x');
      await client.get('present');
      await client.get('absent');
      client.disconnect();

      const run = await doctor({ REDIS_URL: plain.url });

      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`redis://127.0.0.1:${plain.port} (from REDIS_URL)`);
      expect(run.stdout).toMatch(/transport\s+plain TCP/);
      expect(run.stdout).toMatch(/mode\s+standalone/);
      expect(run.stdout).toMatch(/server\s+Redis \d+\.\d+\.\d+/);
      expect(run.stdout).toMatch(/latency\s+PING p50 [\d.]+ ms, p99 [\d.]+ ms over 20 pings/);
      expect(run.stdout).toMatch(/memory\s+.* used, maxmemory not set .*policy noeviction/);
      expect(run.stdout).toMatch(/persistence\s+AOF off, no RDB snapshots/);
      expect(run.stdout).toMatch(/clients\s+\d+ of maxclients 10000 connected/);
      expect(run.stdout).toMatch(/keyspace\s+1 keys, 0 of them with a TTL; hit rate 50\.0% \(1 hits, 1 misses/);
    });

    it('counts the keys of the database the URL names, and names it', async () => {
      const client = new Redis({ port: plain.port, host: '127.0.0.1', db: 3 });
      await client.set('in-database-3', 'x', 'EX', 60);
      client.disconnect();

      const run = await doctor({ REDIS_URL: `${plain.url}/3` });

      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`redis://127.0.0.1:${plain.port}/3 (from REDIS_URL)`);
      expect(run.stdout).toMatch(/keyspace\s+1 keys in database 3, 1 of them with a TTL;/);
    });

    it('warns that an allkeys-* policy can evict accounts and recommends volatile-lru', async () => {
      const run = await doctor({ REDIS_URL: tuned.url });

      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/memory\s+.*maxmemory 64\.0 MiB .*policy allkeys-lru/);
      expect(run.stdout).toMatch(/! maxmemory-policy allkeys-lru can evict accounts, which have no TTL: set maxmemory-policy volatile-lru/);
    });

    it('reports AOF when the server writes one', async () => {
      const run = await doctor({ REDIS_URL: tuned.url });

      expect(run.stdout).toMatch(/persistence\s+AOF on/);
    });

    it('reports what it can when the user may not run INFO, and says what it could not check', async () => {
      const noInfoPassword = randomUUID();
      const admin = new Redis({ port: plain.port, host: '127.0.0.1' });
      await admin.acl('SETUSER', 'no-info', 'on', `>${noInfoPassword}`, '~*', '&*', '+@all', '-@dangerous');
      admin.disconnect();

      const run = await doctor({ REDIS_URL: `redis://no-info:${noInfoPassword}@127.0.0.1:${plain.port}` });

      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/latency\s+PING p50 [\d.]+ ms/);
      expect(run.stdout).toMatch(/server\s+unknown \(INFO not allowed\)/);
      expect(run.stdout).toContain(
        '! This user may not run INFO (NOPERM): memory, eviction policy, persistence, clients and keyspace were not checked; run the doctor as a user allowed INFO (ACL +info).',
      );
      expect(run.stdout).not.toContain('maxmemory is not set');
      expect(run.output).not.toContain(noInfoPassword);
    });

    it('reports a cluster with its masters when REDIS_CLUSTER is set', async () => {
      const run = await doctor({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });

      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/mode\s+cluster, 3 masters \(cluster_state ok\)/);
    });

    it('says a cluster is resharding, and which slot is on the move', async () => {
      const slot = keySlot('{doctor-resharding}');
      const move = await startSlotMove(cluster, slot);
      try {
        const run = await doctor({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });

        expect(run.code).toBe(0);
        expect(run.stdout).toMatch(new RegExp(`mode\\s+cluster, 3 masters \\(cluster_state ok\\); resharding: slot ${slot} moving between masters`));
      } finally {
        await move.finish();
      }
    });

    it('runs with both options written as its usage line shows them', async () => {
      const usage = (await runTool('redis-doctor.ts', ['--help'], {})).stdout.split('\n')[0]!;
      // What npm passes on: the words after the script's name, less the first `--`, which npm takes.
      const written = usage.replace('Usage: npm run redis:doctor', '').replace(/[[\]]/g, ' ').replace('N', '5').trim().split(/\s+/);

      const run = await runTool('redis-doctor.ts', written.slice(1), { REDIS_URL: cluster.url });

      expect(written[0]).toBe('--');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/PING p50 .* over 5 pings/);
    });

    it('reports TLS when it connects with rediss:// and REDIS_TLS_CA_FILE', async () => {
      const run = await doctor({ REDIS_URL: tls.url, REDIS_TLS_CA_FILE: tls.tlsMaterial.ca });

      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/transport\s+TLS, certificate checked against REDIS_TLS_CA_FILE/);
    });

    it('reads the endpoint from the secret and never prints its password', async () => {
      secrets.setSecret('doctor/redis', JSON.stringify({ host: '127.0.0.1', port: guarded.port, password: PASSWORD }));

      const run = await doctor({ REDIS_SECRET_ID: 'doctor/redis', ...secrets.env });

      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`redis://:***@127.0.0.1:${guarded.port} (from the secret "doctor/redis")`);
      expect(run.output).not.toContain(PASSWORD);
    });
  });

  describe('ends with one actionable sentence and exit code 1', () => {
    it('when neither REDIS_URL nor REDIS_SECRET_ID is set', async () => {
      const run = await doctor({});

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe('✗ The configuration is invalid: REDIS_URL or REDIS_SECRET_ID: one of them must be set.');
    });

    it('when nothing listens on the port', async () => {
      const port = await freePort();

      const run = await doctor({ REDIS_URL: `redis://127.0.0.1:${port}` });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe(
        `✗ Nothing accepts connections on 127.0.0.1:${port} (connection refused): check the port in REDIS_URL and that Redis is running there.`,
      );
    });

    it('when the host name does not resolve', async () => {
      const run = await doctor({ REDIS_URL: 'redis://redis.doctor-test.invalid:6379' });

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(/^✗ The host name "redis\.doctor-test\.invalid" does not resolve: check the host in REDIS_URL/);
    });

    it('when the server accepts the connection and never answers, within a few seconds', async () => {
      const port = silent.port;
      const started = Date.now();

      const run = await doctor({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_COMMAND_TIMEOUT_MS: '600' });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe(
        `✗ 127.0.0.1:${port} accepted the connection but did not answer within 600 ms: the Redis there may be paused or overloaded, or another service listens on that port; check the host and port in REDIS_URL.`,
      );
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it('when a rediss:// server accepts the connection and never completes the TLS handshake', async () => {
      const run = await doctor({ REDIS_URL: `rediss://127.0.0.1:${silent.port}`, REDIS_CONNECT_TIMEOUT_MS: '500', REDIS_COMMAND_TIMEOUT_MS: '3000' });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe(
        `✗ 127.0.0.1:${silent.port} accepted the connection but did not complete the TLS handshake within 500 ms: the Redis there may be paused or overloaded, or another service listens on that port; check the host and port in REDIS_URL.`,
      );
    });

    it('when the server wants a password and none is given (NOAUTH)', async () => {
      const run = await doctor({ REDIS_URL: `redis://127.0.0.1:${guarded.port}` });

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(/^✗ Redis at 127\.0\.0\.1:\d+ requires a password and none was sent: add the password to REDIS_URL/);
    });

    it('when the password is wrong (WRONGPASS), without printing it', async () => {
      const run = await doctor({ REDIS_URL: `redis://:${WRONG_PASSWORD}@127.0.0.1:${guarded.port}` });

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(/^✗ Redis at 127\.0\.0\.1:\d+ rejected the user name or password: put the current credentials in REDIS_URL\.$/);
      expect(run.output).not.toContain(WRONG_PASSWORD);
    });

    it('when the password in REDIS_URL holds a raw %, saying to write it %25, without printing it', async () => {
      const run = await doctor({ REDIS_URL: `redis://default:Sec%ret123abc@127.0.0.1:${guarded.port}` });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe(
        '✗ The Redis URL in REDIS_URL cannot be decoded: a % in the user name or password begins no percent-encoded character: write % as %25 (and @ : / ? # as %40 %3A %2F %3F %23).',
      );
      expect(run.output).not.toContain('ret123abc');
    });

    it('when the URL names a database the server does not have', async () => {
      const run = await doctor({ REDIS_URL: `${plain.url}/99` });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe('✗ The configuration is invalid: the Redis URL in REDIS_URL names database 99, which the server refused (ERR DB index is out of range).');
    });

    it('when something other than Redis answers on the port', async () => {
      const web = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'));
      await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
      const port = (web.address() as AddressInfo).port;
      try {
        const run = await doctor({ REDIS_URL: `redis://127.0.0.1:${port}` });

        expect(run.code).toBe(1);
        expect(verdict(run)).toBe(
          `✗ 127.0.0.1:${port} answered, but not in the Redis protocol (another service listens there, HTTP for one): check the host and port in REDIS_URL.`,
        );
      } finally {
        web.close();
      }
    });

    it('when a TLS client meets a plain-text port', async () => {
      const run = await doctor({ REDIS_URL: `rediss://127.0.0.1:${plain.port}`, REDIS_TLS_CA_FILE: tls.tlsMaterial.ca });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe(`✗ 127.0.0.1:${plain.port} speaks plain-text Redis, not TLS: use redis:// instead of rediss:// in REDIS_URL.`);
    });

    it('when a plain-text client meets a TLS port', async () => {
      const run = await doctor({ REDIS_URL: `redis://127.0.0.1:${tls.port}` });

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(new RegExp(`^✗ 127\\.0\\.0\\.1:${tls.port} expects TLS: use rediss:// instead of redis:// in REDIS_URL`));
    });

    it("when the TLS certificate's CA is not trusted", async () => {
      const run = await doctor({ REDIS_URL: tls.url });

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(/^✗ The TLS certificate of 127\.0\.0\.1:\d+ is not trusted \(.*\): set REDIS_TLS_CA_FILE/);
    });

    it('when REDIS_TLS_CA_FILE names a file that cannot be read, naming the variable', async () => {
      const run = await doctor({ REDIS_URL: tls.url, REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe('✗ The configuration is invalid: REDIS_TLS_CA_FILE names /nonexistent/ca.pem, which cannot be read (ENOENT).');
    });

    it('when a cluster client meets a standalone server', async () => {
      const run = await doctor({ REDIS_URL: plain.url, REDIS_CLUSTER: 'true' });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe(`✗ 127.0.0.1:${plain.port} is not a Redis Cluster but was reached as one: unset REDIS_CLUSTER (or drop the cluster flag).`);
    });

    it('when a master of the cluster is down (cluster_state:fail), rather than exiting 0 with nothing said', async () => {
      const broken = await startRedisCluster();
      try {
        await broken.nodes[2]!.kill();
        await untilClusterState(broken.nodes[0]!.port, 'fail'); // the other nodes notice within the node time-out

        const run = await doctor({ REDIS_URL: broken.url, REDIS_CLUSTER: 'true' });

        expect(run.code).toBe(1);
        expect(verdict(run)).toMatch(/^✗ The Redis Cluster at 127\.0\.0\.1:\d+ is not serving: .* reports cluster_state:fail: some slots have no reachable master/);
      } finally {
        await broken.stop();
      }
    });

    it('when a standalone client meets a cluster node', async () => {
      const run = await doctor({ REDIS_URL: cluster.url });

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(/^✗ 127\.0\.0\.1:\d+ is a Redis Cluster node but was reached as a single server: set REDIS_CLUSTER=true/);
    });

    it('when the secret does not exist', async () => {
      const run = await doctor({ REDIS_SECRET_ID: 'doctor/missing', ...secrets.env });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe('✗ The secret "doctor/missing" does not exist in eu-west-1: check REDIS_SECRET_ID and AWS_REGION.');
    });

    it('when the credentials may not read the secret', async () => {
      secrets.setSecret('doctor/forbidden', plain.url);
      secrets.denyAccess('doctor/forbidden');

      const run = await doctor({ REDIS_SECRET_ID: 'doctor/forbidden', ...secrets.env });

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(/^✗ These AWS credentials may not read the secret "doctor\/forbidden": grant secretsmanager:GetSecretValue on it/);
    });

    it('when no AWS credentials are found at all, rather than blaming Secrets Manager', async () => {
      secrets.setSecret('doctor/no-credentials', plain.url);

      const run = await withoutAwsCredentials((env) => doctor({ REDIS_SECRET_ID: 'doctor/no-credentials', ...env }));

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe(
        '✗ No AWS credentials were found to read the secret "doctor/no-credentials": set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role provides them.',
      );
      expect(secrets.reads('doctor/no-credentials')).toBe(0);
    });

    it('when the SSO sign-in of the AWS profile has expired, saying to sign in again', async () => {
      const ssoProfile = [
        '[profile expired-sso]',
        'sso_session = tutor',
        'sso_account_id = 123456789012',
        'sso_role_name = operator',
        '[sso-session tutor]',
        'sso_start_url = https://example.awsapps.com/start',
        'sso_region = eu-west-1',
      ].join('\n');

      const run = await withoutAwsCredentials((env) => doctor({ REDIS_SECRET_ID: 'doctor/no-credentials', ...env, AWS_PROFILE: 'expired-sso' }), ssoProfile);

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(/^✗ The AWS credentials could not be loaded to read the secret "doctor\/no-credentials" \(.*expired-sso.*\): sign in again \(aws sso login\) or check AWS_PROFILE\.$/);
    });

    it('when the secret has no value', async () => {
      secrets.setSecret('doctor/empty', '  ');

      const run = await doctor({ REDIS_SECRET_ID: 'doctor/empty', ...secrets.env });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe('✗ The secret "doctor/empty" has no value: store the Redis URL in it.');
    });

    it('when the secret holds something other than a Redis endpoint, without printing it', async () => {
      secrets.setSecret('doctor/garbled', `not a url ${PASSWORD}`);

      const run = await doctor({ REDIS_SECRET_ID: 'doctor/garbled', ...secrets.env });

      expect(run.code).toBe(1);
      expect(verdict(run)).toMatch(/^✗ The secret "doctor\/garbled" does not hold a Redis endpoint: store a redis:\/\/ or rediss:\/\/ URL in it/);
      expect(run.output).not.toContain(PASSWORD);
    });

    it("when the password in the secret's URL holds a raw %, without printing it", async () => {
      secrets.setSecret('doctor/raw-percent', `redis://default:Sec%ret123abc@127.0.0.1:${guarded.port}`);

      const run = await doctor({ REDIS_SECRET_ID: 'doctor/raw-percent', ...secrets.env });

      expect(run.code).toBe(1);
      expect(verdict(run)).toBe(
        '✗ The Redis URL in the secret "doctor/raw-percent" cannot be decoded: a % in the user name or password begins no percent-encoded character: write % as %25 (and @ : / ? # as %40 %3A %2F %3F %23).',
      );
      expect(run.output).not.toContain('ret123abc');
    });

    it('when Secrets Manager fails', async () => {
      secrets.failing = true;
      try {
        const run = await doctor({ REDIS_SECRET_ID: 'doctor/redis', ...secrets.env });

        expect(run.code).toBe(1);
        expect(verdict(run)).toMatch(/^✗ Secrets Manager could not be reached to read "doctor\/redis" \(InternalServiceError\): check AWS_REGION/);
      } finally {
        secrets.failing = false;
      }
    });
  });
});
