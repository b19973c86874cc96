// Turns a failure to reach Redis into one sentence an operator can act on. Some causes look alike
// from the client (a TLS client on a plain port just times out; a plain client on a TLS port sees
// a reset), so those are told apart by a second, tiny probe of the same host and port.

import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { ConfigError, config } from '#shared/config.ts';
import { hostAndPort, UNDECODABLE_CREDENTIALS, UndecodableRedisCredentials } from '#shared/redis-url.ts';
import { HttpProblem } from '#shared/problem.ts';
import { isAuthFailure } from '#shared/redis-errors.ts';
import { SecretReadFailure } from '#shared/secrets.ts';
import { ClusterNotServing, ConnectionFailure } from './connection.ts';
import { describeEndpoint, SecretFailure, type OperatorEndpoint } from './endpoint.ts';

/** The sentence for any failure of an operator tool; never contains a password. */
export async function explainFailure(error: unknown): Promise<string> {
  if (error instanceof SecretFailure) return explainSecretFailure(error);
  if (error instanceof ConnectionFailure) return explainConnectionFailure(error);
  if (error instanceof UndecodableRedisCredentials) return undecodableCredentials(error.source);
  if (error instanceof ConfigError) return `The configuration is invalid: ${error.message}.`;
  const message = (error instanceof Error ? error.message : String(error)).replace(/\.+$/, '');
  return `Unexpected failure: ${message}.`;
}

const CERTIFICATE_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

function errorCode(error: Error): string {
  return String((error as { code?: unknown }).code ?? '');
}

function where(endpoint: OperatorEndpoint): { host: string; port: number; tls: boolean } {
  const url = new URL(endpoint.url);
  return { ...hostAndPort(url), tls: url.protocol === 'rediss:' };
}

async function explainConnectionFailure(failure: ConnectionFailure): Promise<string> {
  const { endpoint, reason } = failure;
  const { host, port, tls } = where(endpoint);
  const at = `${host}:${port}`;
  const code = errorCode(reason);
  const text = `${reason.message} ${code}`;
  const timeoutMs = config().redis.connectTimeoutMs;

  if (reason instanceof ClusterNotServing) {
    return `The Redis Cluster at ${at} is not serving: ${reason.message} before sending traffic.`;
  }
  if (/ENOTFOUND|EAI_NONAME/.test(text)) {
    return `The host name "${host}" does not resolve: check the host in ${endpoint.origin} (a typo, or an endpoint that resolves only inside its VPC).`;
  }
  if (/EAI_AGAIN/.test(text)) {
    return `The host name "${host}" could not be resolved right now (DNS did not answer): check this machine's DNS, then try again.`;
  }
  if (/ECONNREFUSED/.test(text)) {
    return `Nothing accepts connections on ${at} (connection refused): check the port in ${endpoint.origin} and that Redis is running there.`;
  }
  if (CERTIFICATE_CODES.has(code)) {
    return `The TLS certificate of ${at} is not trusted (${reason.message}): set REDIS_TLS_CA_FILE to the PEM file of the CA that signed it.`;
  }
  if (code === 'CERT_HAS_EXPIRED') {
    return `The TLS certificate of ${at} has expired: renew the server's certificate.`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `The TLS certificate of ${at} is not issued for "${host}": connect by the host name the certificate names.`;
  }
  if (/NOAUTH/i.test(text)) {
    return `Redis at ${at} requires a password and none was sent: add the password to ${endpoint.origin} (in the URL, or as "password" in a secret's JSON).`;
  }
  if (isAuthFailure(reason)) {
    return `Redis at ${at} rejected the user name or password: put the current credentials in ${endpoint.origin}.`;
  }
  if (/cluster support disabled/i.test(text)) {
    return `${at} is not a Redis Cluster but was reached as one: unset REDIS_CLUSTER (or drop the cluster flag).`;
  }
  if (/LOADING/.test(text)) {
    return `Redis at ${at} is still loading its data set into memory: wait until it has finished, then try again.`;
  }
  if (/EPROTO|wrong version number|packet length too long|ERR_SSL/i.test(text) && tls) {
    return `${at} does not speak TLS: use redis:// instead of rediss:// in ${endpoint.origin}.`;
  }
  if (/ETIMEDOUT|timed out|timeout/i.test(text)) {
    if (tls && (await speaksPlainRedis(host, port, timeoutMs))) {
      return `${at} speaks plain-text Redis, not TLS: use redis:// instead of rediss:// in ${endpoint.origin}.`;
    }
    // A firewall that drops packets leaves the connection unopened; a silent server opens it.
    if (await acceptsConnections(host, port, timeoutMs)) {
      // ioredis's connect time-out runs until a TLS handshake completes; then commands have theirs.
      const waited = /connect ETIMEDOUT/i.test(reason.message) ? `complete the TLS handshake within ${timeoutMs} ms` : `answer within ${failure.commandTimeoutMs} ms`;
      return `${at} accepted the connection but did not ${waited}: the Redis there may be paused or overloaded, or another service listens on that port; check the host and port in ${endpoint.origin}.`;
    }
    return `${at} did not accept a connection within ${timeoutMs} ms: check that a security group or firewall lets this machine reach port ${port}, and that the host and port in ${endpoint.origin} are right.`;
  }
  // A TLS port answers plain Redis with a TLS alert (protocol error) or by closing the connection.
  const garbledOrClosed = /Protocol error|Unknown RESP type|ECONNRESET|socket disconnected|EPIPE|closed/i.test(text);
  if (garbledOrClosed && !tls && (await speaksTls(host, port, timeoutMs))) {
    return `${at} expects TLS: use rediss:// instead of redis:// in ${endpoint.origin} (and REDIS_TLS_CA_FILE if its CA is private).`;
  }
  if (/Protocol error|Unknown RESP type/i.test(text)) {
    return `${at} answered, but not in the Redis protocol (another service listens there, HTTP for one): check the host and port in ${endpoint.origin}.`;
  }
  if (/ECONNRESET|socket disconnected|EPIPE|closed/i.test(text)) {
    return `${at} closed the connection (${reason.message}): check that ${endpoint.origin} names a Redis server and that it accepts clients from this machine.`;
  }
  return `Redis at ${describeEndpoint(endpoint)} failed: ${reason.message}.`;
}

/** The sentence for a Redis URL, given in `origin`, whose user name or password does not decode. */
function undecodableCredentials(origin: string): string {
  return `The Redis URL in ${origin} cannot be decoded: ${UNDECODABLE_CREDENTIALS}.`;
}

/** The standalone client reached a cluster node: keys of other nodes' slots would answer MOVED. */
export function clusterExpected(endpoint: OperatorEndpoint): string {
  const { host, port } = where(endpoint);
  return `${host}:${port} is a Redis Cluster node but was reached as a single server: set REDIS_CLUSTER=true (or pass the cluster flag) so that keys on the other nodes can be reached.`;
}

/** What the functions' secret reader said went wrong, if it got that far. */
function readFailureOf(error: SecretFailure): SecretReadFailure | undefined {
  const cause = error.cause instanceof HttpProblem ? error.cause.cause : undefined;
  return cause instanceof SecretReadFailure ? cause : undefined;
}

function explainSecretFailure(error: SecretFailure): string {
  const id = error.secretId;
  const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'the default region';
  if (error.cause instanceof UndecodableRedisCredentials) return undecodableCredentials(`the secret "${id}"`);
  if (error.cause instanceof ConfigError) {
    return `The secret "${id}" does not hold a Redis endpoint: store a redis:// or rediss:// URL in it, or JSON {"url"} or {"host","port","username","password","tls"}.`;
  }
  const failure = readFailureOf(error);
  if (failure !== undefined && failure.awsError === undefined) {
    return `The secret "${id}" has no value: store the Redis URL in it.`;
  }
  const reason = failure?.awsError ?? '';
  if (reason === 'ResourceNotFoundException') {
    return `The secret "${id}" does not exist in ${region}: check ${error.setting} and AWS_REGION.`;
  }
  if (reason === 'AccessDeniedException' || reason === 'AccessDenied') {
    return `These AWS credentials may not read the secret "${id}": grant secretsmanager:GetSecretValue on it (and kms:Decrypt on its key).`;
  }
  // Credentials that could not be loaded: Secrets Manager was never asked.
  if (reason === 'CredentialsProviderError' && /from any providers/i.test(failure?.awsMessage ?? '')) {
    return `No AWS credentials were found to read the secret "${id}": set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role provides them.`;
  }
  if (reason === 'CredentialsProviderError') {
    return `The AWS credentials could not be loaded to read the secret "${id}" (${failure?.awsMessage ?? reason}): sign in again (aws sso login) or check AWS_PROFILE.`;
  }
  if (/Credentials|Token|Signature/i.test(reason)) {
    return `Secrets Manager refused these AWS credentials (${reason}): sign in again or set AWS_PROFILE.`;
  }
  return `Secrets Manager could not be reached to read "${id}"${reason ? ` (${reason})` : ''}: check AWS_REGION and the network path to Secrets Manager (VPC endpoint or NAT), then try again.`;
}

/** One probe of a new socket: `listen` says yes or no on an event; an error or `timeoutMs` of silence says no. */
function probe(socket: Socket, timeoutMs: number, listen: (done: (answer: boolean) => void) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    listen(done);
  });
}

/** Whether a TCP connection to the port opens at all. */
function acceptsConnections(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const socket = connectTcp({ host, port });
  return probe(socket, timeoutMs, (done) => socket.once('connect', () => done(true)));
}

/** A plain-text Redis answers `PING` (with PONG, or NOAUTH when it wants a password). */
function speaksPlainRedis(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const socket = connectTcp({ host, port });
  return probe(socket, timeoutMs, (done) => {
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk: Buffer) => done(/^[+-]/.test(chunk.toString('latin1'))));
  });
}

/** A TLS port completes a handshake (the certificate is not judged here, only the protocol). */
function speaksTls(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const socket = connectTls({ host, port, rejectUnauthorized: false, ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) });
  return probe(socket, timeoutMs, (done) => socket.once('secureConnect', () => done(true)));
}
