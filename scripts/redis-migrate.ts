// `npm run -s redis:migrate -- --from URL --to URL`: copies keys from one Redis to another (SCAN,
// DUMP and PTTL pipelined, RESTORE ... REPLACE with the remaining TTL), optionally verifies the
// copy, and falls back to a copy by type when the target's Redis is older than the source's.
// (`redis-cli --rdb` cannot do this: it only downloads a dump.)
//
// Exit codes: 0 done (and equal, with --verify), 1 failed, 2 bad arguments, 3 --verify found differences.

import { parseArgs } from 'node:util';
import { isRedisUrl, REDIS_URL_FORM } from '#shared/redis-url.ts';
import { planCopy } from './ops/copy-plan.ts';
import { keysLostDuringCopy, lossesVisible, mastersChanged, sourceSlotsMoved } from './ops/copy-watch.ts';
import { explainFailure } from './ops/diagnosis.ts';
import { secretEndpoint, urlEndpoint, type OperatorEndpoint } from './ops/endpoint.ts';
import { WriteRefused } from './ops/keyspace.ts';
import { copyKeys, DumpFormatRejected, type CopyStats } from './ops/migration.ts';
import { describeEnd, keysIn, openEnd, sameness, versionOf, type MigrationEnd } from './ops/migration-ends.ts';
import { complain, runTool, say } from './ops/output.ts';
import { startProgress } from './ops/progress.ts';
import { serverInfo } from './ops/server-info.ts';
import { verifyCopy } from './ops/verification.ts';

const USAGE = `Usage: npm run -s redis:migrate -- (--from URL | --from-secret ID) (--to URL | --to-secret ID) [options]

  --from URL, --to URL         redis:// or rediss:// URLs (REDIS_TLS_CA_FILE is honoured for rediss://)
  --from-secret ID, --to-secret ID
                               Secrets Manager secrets holding the URL, in the forms the functions accept
  --from-cluster, --to-cluster connect as a Redis Cluster client (detected by itself when omitted)
  --match PATTERN              copy only the keys matching PATTERN (SCAN MATCH syntax; default *)
  --dry-run                    count what would be copied; write nothing
  --verify                     afterwards, compare key count, types, TTLs and values; exit 3 on a difference
                               (with --dry-run: compare only, copying nothing)
  --ttl-tolerance MS           TTL difference --verify accepts (default 2000)
  --fallback-copy              copy type by type instead of DUMP/RESTORE (for a target on an older Redis)
  --no-fallback                fail instead of switching to the copy by type when RESTORE rejects the format
  --batch N                    keys per SCAN and per pipeline (default 1000)
  --parallel N                 batches in flight at once (default 4)
  --timeout MS                 time-out of one command or pipeline (default 10000)
  --progress                   print the progress line even when stderr is not a terminal

Exit codes: 0 done, 1 failed, 2 bad arguments, 3 --verify found differences.
-s keeps npm from echoing the command line, where a password it cannot parse (an unencoded / ? # %) shows in clear.
Prefer --from-secret/--to-secret on shared machines: a URL on the command line is visible to ps.`;

class UsageError extends Error {}

const OPTIONS = {
  from: { type: 'string' },
  'from-secret': { type: 'string' },
  'from-cluster': { type: 'boolean' },
  to: { type: 'string' },
  'to-secret': { type: 'string' },
  'to-cluster': { type: 'boolean' },
  match: { type: 'string', default: '*' },
  'dry-run': { type: 'boolean' },
  verify: { type: 'boolean' },
  'ttl-tolerance': { type: 'string', default: '2000' },
  'fallback-copy': { type: 'boolean' },
  'no-fallback': { type: 'boolean' },
  batch: { type: 'string', default: '1000' },
  parallel: { type: 'string', default: '4' },
  timeout: { type: 'string', default: '10000' },
  progress: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

function wholeNumber(values: Values, name: 'ttl-tolerance' | 'batch' | 'parallel' | 'timeout', min: number, max: number): number {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name}: expected a whole number from ${min} to ${max}`);
  return value;
}

async function endpointOf(values: Values, side: 'from' | 'to'): Promise<OperatorEndpoint> {
  const url = values[side];
  const secret = values[`${side}-secret`];
  const cluster = values[`${side}-cluster`] === true;
  if ((url === undefined) === (secret === undefined)) throw new UsageError(`give either --${side} URL or --${side}-secret ID`);
  if (url !== undefined && !isRedisUrl(url)) throw new UsageError(`--${side}: expected ${REDIS_URL_FORM}`);
  return url !== undefined ? urlEndpoint(url, `--${side}`, cluster) : secretEndpoint(secret!, `--${side}-secret`, cluster);
}

function summary(stats: CopyStats, seconds: number): string {
  const rate = seconds > 0 ? Math.round(stats.copied / seconds) : stats.copied;
  const byType = stats.copiedByType > 0 ? `, ${stats.copiedByType} of them type by type` : '';
  const expired = stats.expired > 0 ? `; ${stats.expired} expired during the copy and were skipped` : '';
  return `copied ${stats.copied} keys in ${seconds.toFixed(1)} s (${rate} keys/s)${byType}${expired}`;
}

function explainCopyFailure(error: unknown, source: MigrationEnd, target: MigrationEnd, copied: number): string | undefined {
  const sourceVersion = versionOf(source);
  const targetVersion = versionOf(target);
  if (error instanceof DumpFormatRejected) {
    return `The target (Redis ${targetVersion}) cannot read the DUMP payloads of the source (Redis ${sourceVersion}, RDB format ${error.rdbVersion}): RESTORE answers "DUMP payload version or checksum are wrong"; run again without --no-fallback to copy type by type, or upgrade the target.`;
  }
  if (error instanceof WriteRefused) {
    if (/OOM/.test(error.message)) {
      return `The target ran out of memory writing "${error.key}" after ${copied} keys: raise its maxmemory, or copy fewer keys with --match.`;
    }
    // A replica and a user without a command refuse every write, whatever the key: the advice is about the endpoint.
    if (/^READONLY/.test(error.message)) {
      return `The target is a read-only replica (${error.message}): point --to at its primary.`;
    }
    if (/no permissions to run|can't run this command/i.test(error.message)) {
      return `The target's user may not run what the copy needs (${error.message}): grant it RESTORE, EVALSHA and EVAL (or connect as a user that has them), then run again.`;
    }
    if (/no permissions to access/i.test(error.message)) {
      return `The target's user may not write "${error.key}" (${error.message}): copy only the keys it may write with --match, or widen its key patterns.`;
    }
    return `The target refused to write "${error.key}" (${error.message}): fix that key or leave it out with --match, then run again.`;
  }
  if (error instanceof Error && /Connection is closed|timed out|Socket timeout|ECONNRESET|EPIPE|max retries/i.test(error.message)) {
    return `A connection was lost after ${copied} keys (${error.message}): run the same command again; keys already copied are overwritten, not duplicated (raise --timeout or lower --batch for large values).`;
  }
  return undefined;
}

/** What the copy needs beyond its two sides, read from the command line. */
interface CommandLineSettings {
  match: string;
  batchSize: number;
  window: number;
  ttlToleranceMs: number;
}

/** Says what a copy would do, writing nothing. */
async function dryRun(source: MigrationEnd, target: MigrationEnd, { match, batchSize }: CommandLineSettings): Promise<void> {
  const plan = await planCopy(source.client, target.client, match, batchSize);
  const types = [...plan.byType].map(([type, count]) => `${type} ${count}`).join(', ');
  say(`dry run: would copy ${plan.keys} keys matching "${match}"${types ? ` (${types})` : ''}, ${plan.withTtl} of them with a TTL;`);
  say(`  ${plan.existingOnTarget} already exist on the target and would be replaced. Nothing was written.`);
}

/** Copies the keys, with progress when asked or on a terminal: 0, or 1 after a failure it can explain. */
async function copy(source: MigrationEnd, target: MigrationEnd, values: Values, { match, batchSize, window }: CommandLineSettings): Promise<number> {
  const showProgress = values.progress === true || process.stderr.isTTY === true;
  const progress = showProgress ? startProgress(match === '*' ? keysIn(source) : undefined) : undefined;
  const started = Date.now();
  let stats: CopyStats = { copied: 0, expired: 0, copiedByType: 0 };
  try {
    stats = await copyKeys(source.client, target.client, {
      match,
      batchSize,
      window,
      method: values['fallback-copy'] ? 'by-type' : 'restore',
      fallbackToTypes: !values['no-fallback'],
      onProgress: (now) => {
        stats = now;
        progress?.update(now.copied);
      },
      onFallback: (rdbVersion) =>
        complain(
          `! The target (Redis ${versionOf(target)}) cannot read DUMP payloads of RDB format ${rdbVersion} from the source (Redis ${versionOf(source)}): copying type by type instead.`,
        ),
    });
  } catch (error) {
    progress?.finish();
    const sentence = explainCopyFailure(error, source, target, stats.copied);
    if (sentence === undefined) throw error;
    complain(`✗ ${sentence}`);
    return 1;
  }
  progress?.finish();
  const [nodesAfter, sourceNodesAfter] = await Promise.all([serverInfo(target.client), serverInfo(source.client)]);
  const lost = keysLostDuringCopy(target, nodesAfter);
  if (lost !== undefined) {
    complain(`✗ ${lost}`);
    return 1;
  }
  say(summary(stats, (Date.now() - started) / 1000));
  const compare = values.verify ? '' : '; run again with --dry-run --verify to compare';
  if (mastersChanged(target, nodesAfter)) {
    complain(`! The target's masters changed during the copy (a failover or a resharding): a failover may have lost keys${compare}.`);
  } else if (!lossesVisible(target)) {
    complain(`! The target's INFO does not show its evictions and restarts: keys it may have dropped during the copy cannot be detected${compare}.`);
  }
  const sourceMoved = sourceSlotsMoved(source, sourceNodesAfter);
  if (sourceMoved !== undefined) complain(`! ${sourceMoved}`);
  return 0;
}

/** Compares the target with the source: 0 when equal, 3 when they differ. */
async function verify(source: MigrationEnd, target: MigrationEnd, { match, batchSize, ttlToleranceMs }: CommandLineSettings): Promise<number> {
  const result = await verifyCopy(source.client, target.client, { match, batchSize, ttlToleranceMs });
  if (result.differences === 0) {
    say(`verify: equal (${result.compared} keys compared; the target holds ${result.targetKeys} keys matching "${match}")`);
    return 0;
  }
  say(`verify: ${result.differences} difference${result.differences === 1 ? '' : 's'} in ${result.compared} keys compared:`);
  for (const example of result.examples) say(`  - ${example}`);
  complain(
    `✗ The copy differs from the source in ${result.differences} keys: run the migration again (it overwrites), then verify again; keys missing again mean the target drops them (its maxmemory and eviction policy).`,
  );
  return 3;
}

async function run(values: Values): Promise<number> {
  const options: CommandLineSettings = {
    match: values.match,
    batchSize: wholeNumber(values, 'batch', 1, 100_000),
    window: wholeNumber(values, 'parallel', 1, 64),
    ttlToleranceMs: wholeNumber(values, 'ttl-tolerance', 0, 86_400_000),
  };
  const commandTimeoutMs = wholeNumber(values, 'timeout', 100, 600_000);
  if (values['fallback-copy'] && values['no-fallback']) throw new UsageError('--fallback-copy and --no-fallback exclude each other');
  const [fromEndpoint, toEndpoint] = await Promise.all([endpointOf(values, 'from'), endpointOf(values, 'to')]);

  const source = await openEnd(fromEndpoint, commandTimeoutMs);
  let target: MigrationEnd | undefined;
  try {
    target = await openEnd(toEndpoint, commandTimeoutMs);
    say(describeEnd('from', source));
    say(describeEnd('to  ', target));
    const ends = await sameness(source, target, { mayWrite: !values['dry-run'] });
    if (ends === 'same') throw new UsageError('--from and --to name the same server and database: there is nothing to copy');
    if (ends === 'unknown') {
      const why = values['dry-run'] ? 'INFO hides run_id, and a dry run writes no probe key' : 'INFO hides run_id, and a probe key may not be written or read';
      complain(`! Whether --from and --to are one database cannot be checked (${why}): make sure they differ.`);
    }
    if (values['dry-run']) {
      await dryRun(source, target, options);
    } else {
      const copied = await copy(source, target, values, options);
      if (copied !== 0) return copied;
    }
    return values.verify ? await verify(source, target, options) : 0;
  } finally {
    source.client.disconnect();
    target?.client.disconnect();
  }
}

async function main(): Promise<number> {
  let values: Values;
  try {
    values = parseArgs({ options: OPTIONS }).values;
  } catch (error) {
    complain(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    say(USAGE);
    return 0;
  }
  try {
    return await run(values);
  } catch (error) {
    if (error instanceof UsageError) {
      complain(`${error.message}\n\n${USAGE}`);
      return 2;
    }
    complain(`✗ ${await explainFailure(error)}`);
    return 1;
  }
}

runTool(main);
