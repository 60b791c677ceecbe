/**
 * CDS client JWTs for tests: key pairs made with jose, tokens minted at the frozen clock, a trusted
 * issuers file in a temporary folder, an app with authentication on, and a loopback JWKS server that
 * counts its requests and can be made slow or broken.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTHeaderParameters,
  SignJWT,
} from 'jose';
import type { AppOverrides } from '../../src/app.js';
import type { Config } from '../../src/config.js';
import { buildTestApp, NOW, type TestApp } from './app.js';

/** The base URL the test clients call. */
export const PUBLIC_URL = 'https://cds.example.org';
export const ISSUER = 'https://ehr.example.org';
export const DISCOVERY = '/cds-services';
export const SERVICE = '/cds-services/melanoma-lesion-triage';
export const NOW_S = Math.floor(NOW.getTime() / 1000);

export interface TestKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** A fresh key pair; the public half as a JWK with kid, alg and use. */
export async function makeKey(alg: string, kid = `${alg.toLowerCase()}-${randomUUID()}`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export const jwksOf = (...keys: TestKey[]) => ({ keys: keys.map((k) => k.publicJwk) });

export interface MintOptions {
  iss?: string;
  /** The path called (joined to PUBLIC_URL), or a full URL, or an array of URLs. */
  aud?: string | string[];
  /** Seconds relative to NOW; null leaves the claim out. */
  iat?: number | null;
  exp?: number | null;
  jti?: string | null;
  tenant?: string;
  sub?: string;
  /** Extra or overriding protected header parameters (jku, kid, typ…). */
  header?: Partial<JWTHeaderParameters>;
  claims?: Record<string, unknown>;
}

const audience = (aud: string) => (aud.startsWith('/') ? PUBLIC_URL + aud : aud);

/** A signed token, valid by default for discovery at NOW: iat = NOW, exp = NOW + 300 s, random jti. */
export async function mint(key: TestKey, options: MintOptions = {}): Promise<string> {
  const payload: Record<string, unknown> = { ...options.claims };
  const aud = options.aud ?? DISCOVERY;
  payload.aud = Array.isArray(aud) ? aud.map(audience) : audience(aud);
  const iat = options.iat === undefined ? 0 : options.iat;
  const exp = options.exp === undefined ? 300 : options.exp;
  if (iat !== null) payload.iat = NOW_S + iat;
  if (exp !== null) payload.exp = NOW_S + exp;
  const jti = options.jti === undefined ? randomUUID() : options.jti;
  if (jti !== null) payload.jti = jti;
  if (options.tenant !== undefined) payload.tenant = options.tenant;
  if (options.sub !== undefined) payload.sub = options.sub;
  payload.iss = options.iss ?? ISSUER;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid, ...options.header })
    .sign(key.privateKey);
}

/** Unsigned pieces, for tokens jose would refuse to produce. */
export const b64url = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A standard payload at NOW for hand-built tokens. */
export const claimsAt = (aud = DISCOVERY) => ({
  iss: ISSUER,
  aud: PUBLIC_URL + aud,
  iat: NOW_S,
  exp: NOW_S + 300,
  jti: randomUUID(),
});

export interface AuthTestApp extends TestApp {
  /** Path of the trusted issuers file written for this app. */
  issuersFile: string;
}

/** Writes `issuers` to a temporary trusted issuers file (removed at teardown by the caller's `cleanup`). */
export function writeIssuers(issuers: unknown, name = 'issuers.json'): { file: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'cds-auth-'));
  const file = join(dir, name);
  writeFileSync(file, typeof issuers === 'string' ? issuers : JSON.stringify(issuers));
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The test app with authentication on, trusting `issuers`. Close it with `app.close()`. */
export async function buildAuthApp(
  issuers: unknown[],
  config: Partial<Config> = {},
  overrides: AppOverrides = {},
): Promise<AuthTestApp> {
  const { file, cleanup } = writeIssuers(issuers);
  try {
    const test = await buildTestApp(
      { authDisabled: false, publicUrl: PUBLIC_URL, trustedIssuersFile: file, ...config },
      overrides,
    );
    test.app.addHook('onClose', async () => cleanup());
    return { ...test, issuersFile: file };
  } catch (error) {
    cleanup();
    throw error;
  }
}

/** The reasons of the auth refusal log lines, in order. */
export function refusals(test: TestApp): unknown[] {
  return test.logs().flatMap((l) => ('reason' in l ? [l.reason] : []));
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export interface JwksServer {
  url: string;
  /** Requests received so far. */
  count: () => number;
  /** Replaces the served JWK Set. */
  serve: (jwks: unknown) => void;
  /** `ok` serves the set; `hang` never answers; `error` answers 500. */
  mode: (mode: 'ok' | 'hang' | 'error') => void;
  close: () => Promise<void>;
}

/** A JWKS endpoint on loopback. */
export async function startJwksServer(jwks: unknown): Promise<JwksServer> {
  let current = jwks;
  let currentMode: 'ok' | 'hang' | 'error' = 'ok';
  let requests = 0;
  const hanging = new Set<ServerResponse>();
  const server = createServer((_req, res) => {
    requests++;
    if (currentMode === 'hang') {
      hanging.add(res);
      return;
    }
    if (currentMode === 'error') {
      res.writeHead(500).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(current));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    count: () => requests,
    serve: (next) => {
      current = next;
    },
    mode: (next) => {
      currentMode = next;
    },
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
