import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addressAllowed, addressRules, serverAllowed } from '../../src/prefetch/egress.js';
import t from 'tap';
import { loadTrustedIssuers, parseTrustedIssuers } from '../../src/auth/issuers.js';
import { jwksOf, makeKey, writeIssuers } from '../helpers/jwt.js';

const key = await makeKey('ES384', 'k1');
const JWKS = jwksOf(key);
const parse = (value: unknown) => parseTrustedIssuers(value, 'issuers.yaml', tmpdir());
const error = (value: unknown) => {
  try {
    parse(value);
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

t.test('a YAML file with the public CDS Hooks sandbox, a keys file and a jku allowlist', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-issuers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ehr.jwks.json'), JSON.stringify(JWKS));
  writeFileSync(
    join(dir, 'issuers.yaml'),
    `- iss: https://sandbox.cds-hooks.org
  jwksUrl: https://sandbox.cds-hooks.org/.well-known/jwks.json
- iss: https://ehr.example.org
  jwksFile: ehr.jwks.json
  jkuAllowlist: [https://ehr.example.org/keys, "https://EHR.example.org:443/keys2"]
  tenant: hospital-a
  fhirServers: [https://fhir.ehr.example.org/r4]
  fhirAllowedNetworks: [10.20.0.0/16]
- iss: https://idp.example.org
  jkuAllowlist: [https://idp.example.org/jwks]
  tenant: [north, south]
`,
  );
  const loaded = loadTrustedIssuers(join(dir, 'issuers.yaml'));
  const egress = loaded.map((issuer) => issuer.egress!);
  t.same(
    egress.map((e) => serverAllowed(e, new URL('https://fhir.ehr.example.org/r4/'))),
    [false, true, false],
    'fhirServers: only the EHR may send the service to its FHIR server',
  );
  t.same(
    egress.map((e) => addressAllowed(addressRules(), e, { address: '10.20.1.1', family: 4 })),
    [false, true, false],
    'fhirAllowedNetworks: only for the EHR',
  );
  t.same(
    loaded.map(({ egress: _e, ...issuer }) => issuer),
    [
      {
        iss: 'https://sandbox.cds-hooks.org',
        jwks: null,
        jwksUrl: 'https://sandbox.cds-hooks.org/.well-known/jwks.json',
        jkuAllowlist: ['https://sandbox.cds-hooks.org/.well-known/jwks.json'],
        tenants: null,
      },
      {
        iss: 'https://ehr.example.org',
        jwks: JWKS,
        jwksUrl: null,
        jkuAllowlist: ['https://ehr.example.org/keys', 'https://ehr.example.org/keys2'],
        tenants: ['hospital-a'],
      },
      {
        iss: 'https://idp.example.org',
        jwks: null,
        jwksUrl: null,
        jkuAllowlist: ['https://idp.example.org/jwks'],
        tenants: ['north', 'south'],
      },
    ],
  );
});

t.test('a JSON file with inline keys', async (t) => {
  const { file, cleanup } = writeIssuers([{ iss: 'https://ehr.example.org', jwks: JWKS }]);
  t.teardown(cleanup);
  t.same(loadTrustedIssuers(file)[0]!.jwks, JWKS);
});

t.test('the file must be a non-empty list of issuers', async (t) => {
  t.equal(
    error({ iss: 'x' }),
    'Invalid trusted issuers file issuers.yaml: the file must hold a list of issuers (must be array)',
  );
  t.equal(error([]), 'Invalid trusted issuers file issuers.yaml: the list of issuers is empty');
  const { file, cleanup } = writeIssuers('- iss: [unclosed');
  t.teardown(cleanup);
  t.throws(() => loadTrustedIssuers(file), {
    message: /^Cannot read trusted issuers file .*issuers\.json: /,
  });
});

t.test('each bad entry is named by index and iss, with the problem', async (t) => {
  const ok = { iss: 'https://a.example.org', jwks: JWKS };
  const cases: [unknown, string][] = [
    [{ jwks: JWKS }, "entry 1: must have required property 'iss'"],
    [
      { ...ok, jwksUrl: 'not a url' },
      'entry 1 (iss "https://a.example.org"): jwksUrl must match format "uri"',
    ],
    [
      { ...ok, kid: 'x' },
      'entry 1 (iss "https://a.example.org"): must NOT have additional properties ("kid")',
    ],
    [
      { ...ok, tenant: '' },
      'entry 1 (iss "https://a.example.org"): tenant must NOT have fewer than 1 characters',
    ],
    [
      { ...ok, jwksUrl: 'https://a.example.org/jwks' },
      'entry 1 (iss "https://a.example.org"): give one of jwks, jwksFile, jwksUrl, not jwks and jwksUrl',
    ],
    [
      { iss: 'https://a.example.org' },
      'entry 1 (iss "https://a.example.org"): no keys: give jwks, jwksFile or jwksUrl, or a jkuAllowlist',
    ],
    [
      { iss: 'https://a.example.org', jwksUrl: 'http://a.example.org/jwks' },
      'entry 1 (iss "https://a.example.org"): jwksUrl must be an https URL (plain http only on loopback): http://a.example.org/jwks',
    ],
    [
      { iss: 'https://a.example.org', jkuAllowlist: ['https://a.example.org/k', 'ftp://a.example.org/k'] },
      'entry 1 (iss "https://a.example.org"): jkuAllowlist[1] must be an https URL (plain http only on loopback): ftp://a.example.org/k',
    ],
    [
      { iss: 'https://a.example.org', jwksFile: 'missing.json' },
      'entry 1 (iss "https://a.example.org"): cannot read jwksFile',
    ],
  ];
  for (const [entry, message] of cases) {
    t.match(
      error([{ iss: 'https://first.example.org', jwks: JWKS }, entry]),
      `Invalid trusted issuers file issuers.yaml: ${message}`,
    );
  }
  t.match(error([ok, ok]), 'entry 1 (iss "https://a.example.org"): this iss is listed twice');
});

t.test('http is accepted for loopback key URLs only', async (t) => {
  for (const url of ['http://127.0.0.1:8081/jwks', 'http://localhost/jwks', 'http://[::1]:9/jwks']) {
    t.equal(parse([{ iss: 'a', jwksUrl: url }])[0]!.jwksUrl, new URL(url).href);
  }
});

t.test('configured keys must be public asymmetric signature keys with unique kids', async (t) => {
  const pub = key.publicJwk;
  const cases: [unknown, string][] = [
    [{ keys: [] }, 'a JWK Set needs a non-empty "keys" array'],
    [{}, 'a JWK Set needs a non-empty "keys" array'],
    [{ keys: ['x'] }, 'keys[0] is not an object'],
    [
      { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 's' }] },
      'keys[0]: kty must be RSA or EC (asymmetric keys only)',
    ],
    [
      { keys: [{ ...pub, d: 'private' }] },
      'keys[0] holds private or secret key material ("d"); publish public keys only',
    ],
    [{ keys: [{ ...pub, kid: undefined }] }, 'keys[0] has no "kid"'],
    [{ keys: [pub, pub] }, 'keys[1]: kid "k1" is not unique'],
    [{ keys: [{ ...pub, alg: 'HS256' }] }, 'keys[0]: alg "HS256" is not one of RS256, RS384'],
    [{ keys: [{ ...pub, use: 'enc' }] }, 'keys[0]: use must be "sig"'],
    [{ keys: [{ ...pub, y: undefined }] }, 'keys[0]: "y" is missing'],
    [{ keys: [{ kty: 'RSA', kid: 'r', e: 'AQAB' }] }, 'keys[0]: "n" is missing'],
    [{ keys: [{ ...pub, crv: 'secp256k1' }] }, 'keys[0]: crv must be one of P-256,P-384,P-521'],
  ];
  for (const [jwks, problem] of cases) {
    t.match(
      error([{ iss: 'https://a.example.org', jwks }]),
      `entry 0 (iss "https://a.example.org"): jwks: ${problem}`,
    );
  }
});

t.test('a keys file is read relative to the issuers file and checked the same way', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-issuers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'private.json'), JSON.stringify({ keys: [{ ...key.publicJwk, d: 'x' }] }));
  writeFileSync(join(dir, 'broken.json'), '{');
  const at = (jwksFile: string) => () => parseTrustedIssuers([{ iss: 'a', jwksFile }], 'i.yaml', dir);
  t.throws(at('private.json'), { message: /entry 0 \(iss "a"\): jwksFile: keys\[0\] holds private/ });
  t.throws(at('broken.json'), { message: /entry 0 \(iss "a"\): jwksFile .*broken\.json is not JSON$/ });
});
