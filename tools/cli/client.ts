/**
 * HTTP side of the hook CLI: CDS Hooks client JWTs (one per call, `aud` = the exact URL called) and
 * JSON requests with a time measurement. The network, the clock and the jti source are injected.
 */
import { readFile } from 'node:fs/promises';
import { type CryptoKey, importJWK, importPKCS8, type JWK, type KeyObject, SignJWT } from 'jose';

/** What the CLI needs to sign tokens. */
export interface Signer {
  key: CryptoKey | KeyObject | Uint8Array;
  alg: string;
  iss: string;
  kid: string | undefined;
}

/** A key file that cannot be used; the message says why (a usage error for the CLI). */
export class KeyError extends Error {
  override name = 'KeyError';
}

/** Reads a PKCS#8 PEM or a private JWK (JSON) file. */
export async function loadSigner(path: string, alg: string, iss: string, kid?: string): Promise<Signer> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new KeyError(`cannot read key file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    if (text.trimStart().startsWith('{')) {
      const jwk = JSON.parse(text) as JWK;
      if (jwk.d === undefined) throw new Error('the JWK has no private part ("d")');
      return { key: await importJWK(jwk, alg), alg, iss, kid: kid ?? jwk.kid };
    }
    return { key: await importPKCS8(text, alg), alg, iss, kid };
  } catch (error) {
    throw new KeyError(`cannot use key file ${path} with ${alg}: ${(error as Error).message}`);
  }
}

export interface ClientDeps {
  fetch: typeof globalThis.fetch;
  now: () => Date;
  /** A fresh random id (jti, hookInstance). */
  uuid: () => string;
  /** Monotonic milliseconds, for latencies. */
  clockMs: () => number;
}

/** A CDS Hooks client JWT for one call: iat now, exp iat + 5 min, random jti, aud the exact URL. */
export async function signToken(signer: Signer, aud: string, deps: Pick<ClientDeps, 'now' | 'uuid'>) {
  const iat = Math.floor(deps.now().getTime() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: signer.alg, typ: 'JWT', ...(signer.kid ? { kid: signer.kid } : {}) })
    .setIssuer(signer.iss)
    .setAudience(aud)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 300)
    .setJti(deps.uuid())
    .sign(signer.key);
}

export interface JsonReply {
  status: number;
  body: unknown;
  ms: number;
}

/** GET or POST JSON, signed when a signer is given. Network errors reject. */
export async function callJson(
  url: string,
  body: unknown,
  signer: Signer | undefined,
  deps: ClientDeps,
  extraHeaders: Record<string, string> = {},
): Promise<JsonReply> {
  const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (signer) headers.authorization = `Bearer ${await signToken(signer, url, deps)}`;
  const start = deps.clockMs();
  const res = await deps.fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  const ms = deps.clockMs() - start;
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // Not JSON: keep the text, for the error message.
  }
  return { status: res.status, body: parsed, ms };
}
