// A local Secrets Manager speaking the AWS JSON 1.1 protocol (GetSecretValue, PutSecretValue), so
// the real @aws-sdk/client-secrets-manager runs against it via AWS_ENDPOINT_URL_SECRETS_MANAGER.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text as bodyText } from 'node:stream/consumers';

export interface SecretsManagerDouble {
  endpoint: string;
  /** Environment that points the real SDK at this double. */
  env: Record<string, string>;
  setSecret(id: string, value: string): void;
  /** GetSecretValue calls received, by secret id. */
  reads(id: string): number;
  /** While true every call answers 500 InternalServiceError. */
  failing: boolean;
  /** The next `count` calls answer 500 InternalServiceError. */
  failNext(count: number): void;
  /** Milliseconds every call waits before it is answered (a slow or distant Secrets Manager). */
  delayMs: number;
  /** Holds every call's answer from now until the returned function is called. */
  hold(): () => void;
  /** Headers of the last call (signature, session token, target). */
  lastHeaders: IncomingHttpHeaders | undefined;
  /** Reads of this secret answer AccessDeniedException, as for a role without GetSecretValue on it. */
  denyAccess(id: string): void;
  close(): Promise<void>;
}


function reply(response: ServerResponse, status: number, payload: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/x-amz-json-1.1' });
  response.end(JSON.stringify(payload));
}

export async function startSecretsManagerDouble(): Promise<SecretsManagerDouble> {
  const secrets = new Map<string, { value: string; version: string }>();
  const readCounts = new Map<string, number>();
  const denied = new Set<string>();
  const double = { failing: false, lastHeaders: undefined, delayMs: 0 } as SecretsManagerDouble;
  let failures = 0;
  let held: Promise<void> | undefined;

  const server = createServer(async (request, response) => {
    const target = String(request.headers['x-amz-target'] ?? '');
    const input = JSON.parse((await bodyText(request)) || '{}') as { SecretId?: string; SecretString?: string };
    double.lastHeaders = request.headers;
    if (double.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, double.delayMs));
    if (held !== undefined) await held;
    if (double.failing || failures > 0) {
      failures = Math.max(0, failures - 1);
      return reply(response, 500, { __type: 'InternalServiceError', message: 'unavailable' });
    }
    const id = input.SecretId ?? '';
    if (target.endsWith('.GetSecretValue')) {
      readCounts.set(id, (readCounts.get(id) ?? 0) + 1);
      if (denied.has(id)) {
        return reply(response, 400, { __type: 'AccessDeniedException', message: 'User is not authorized to perform: secretsmanager:GetSecretValue' });
      }
      const secret = secrets.get(id);
      if (!secret) {
        return reply(response, 400, { __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." });
      }
      return reply(response, 200, {
        ARN: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${id}`,
        Name: id,
        SecretString: secret.value,
        VersionId: secret.version,
        VersionStages: ['AWSCURRENT'],
        CreatedDate: Date.now() / 1000,
      });
    }
    if (target.endsWith('.PutSecretValue')) {
      const version = randomUUID();
      secrets.set(id, { value: input.SecretString ?? '', version });
      return reply(response, 200, { ARN: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${id}`, Name: id, VersionId: version });
    }
    return reply(response, 400, { __type: 'UnknownOperationException', message: `unsupported ${target}` });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;

  return Object.assign(double, {
    endpoint,
    env: {
      AWS_ENDPOINT_URL_SECRETS_MANAGER: endpoint,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIDLOCALTEST',
      AWS_SECRET_ACCESS_KEY: 'local-test-secret',
    },
    setSecret: (id: string, value: string) => secrets.set(id, { value, version: randomUUID() }),
    reads: (id: string) => readCounts.get(id) ?? 0,
    denyAccess: (id: string) => denied.add(id),
    failNext: (count: number) => {
      failures = count;
    },
    hold: () => {
      let release!: () => void;
      held = new Promise<void>((resolve) => (release = resolve));
      return () => {
        held = undefined;
        release();
      };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
