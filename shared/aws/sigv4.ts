// AWS Signature Version 4 for one request (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4.html):
// what lets the functions call Secrets Manager without loading the AWS SDK, whose module graph
// costs a cold start more than everything else the functions import together.
//
//   canonical request ─ sha256 ─┐
//   date/region/service scope ──┴─ string to sign ─ HMAC with the derived key ─ Authorization

import { createHash, createHmac } from 'node:crypto';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials (a Lambda's role) come with a session token. */
  sessionToken?: string | undefined;
}

export interface RequestToSign {
  method: string;
  host: string;
  path: string;
  /** Already in canonical form (sorted, URI-encoded), '' when there is none. */
  query?: string;
  headers: Record<string, string>;
  body: string;
  region: string;
  service: string;
  credentials: AwsCredentials;
  date?: Date;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function hmac(key: string | Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text, 'utf8').digest();
}

/** `20150830T123600Z`: ISO 8601 basic format, whole seconds, UTC. */
function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/** The request's headers with `host`, `x-amz-date`, the session token and `authorization` added. */
export function signRequest(request: RequestToSign): Record<string, string> {
  const stamp = amzDate(request.date ?? new Date());
  const day = stamp.slice(0, 8);
  const { accessKeyId, secretAccessKey, sessionToken } = request.credentials;
  const headers: Record<string, string> = { ...request.headers, host: request.host, 'x-amz-date': stamp };
  if (sessionToken) headers['x-amz-security-token'] = sessionToken;

  const names = Object.keys(headers)
    .map((name) => name.toLowerCase())
    .sort();
  const lowerCased = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
  const canonicalHeaders = names.map((name) => `${name}:${lowerCased[name]!.trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [request.method, request.path, request.query ?? '', canonicalHeaders, signedHeaders, sha256Hex(request.body)].join('\n');

  const scope = `${day}/${request.region}/${request.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', stamp, scope, sha256Hex(canonicalRequest)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, day), request.region), request.service), 'aws4_request');
  const signature = createHmac('sha256', signingKey).update(stringToSign, 'utf8').digest('hex');

  headers['authorization'] = `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}
