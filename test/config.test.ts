import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { envName, loadConfig, loadSettings } from '../src/config.js';

/** The settings authentication needs (on by default); loadConfig refuses to start without them. */
const AUTH = { CDS_PUBLIC_URL: 'https://cds.example.org', CDS_TRUSTED_ISSUERS_FILE: 'issuers.yaml' };

t.test('defaults apply when nothing is set, and the result is frozen', async (t) => {
  const config = loadConfig(AUTH);
  t.equal(config.port, 8080);
  t.equal(config.fhirFetchTimeoutMs, 2500);
  t.same(config.corsOrigins, ['*']);
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.corsOrigins));
  t.throws(() => {
    (config as { port: number }).port = 1;
  });
});

t.test('environment variables are named after the keys and coerced by the schema', async (t) => {
  t.equal(envName('fhirFetchTimeoutMs'), 'CDS_FHIR_FETCH_TIMEOUT_MS');
  const config = loadConfig({
    ...AUTH,
    CDS_PORT: '9000',
    CDS_FHIR_SERVER_ALLOW_HTTP: 'true',
    CDS_CORS_ORIGINS: 'https://a.example, https://b.example',
    CDS_DEFAULT_LANGUAGE: 'fr',
  });
  t.equal(config.port, 9000);
  t.equal(config.fhirServerAllowHttp, true);
  t.same(config.corsOrigins, ['https://a.example', 'https://b.example']);
  t.equal(config.defaultLanguage, 'fr');
});

t.test('a configuration file is read, and environment variables win over it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'port: 7000\nlogLevel: warn\n');
  const config = loadConfig({ ...AUTH, CDS_CONFIG_FILE: file, CDS_PORT: '7001' });
  t.equal(config.port, 7001);
  t.equal(config.logLevel, 'warn');
});

t.test('invalid settings stop start-up naming the setting and its variable', async (t) => {
  t.throws(() => loadConfig({ CDS_PORT: 'eighty' }), {
    message: 'Invalid configuration: port (CDS_PORT) must be integer',
  });
  t.throws(() => loadConfig({ CDS_LOG_LEVEL: 'loud' }), {
    message: /^Invalid configuration: logLevel \(CDS_LOG_LEVEL\) must be equal to one of the allowed values/,
  });
  t.throws(() => loadConfig({ CDS_CONFIG_FILE: 'missing.yaml' }), {
    message: /^Cannot read configuration file missing.yaml/,
  });
  const dir = mkdtempSync(join(tmpdir(), 'cds-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'list.yaml'), '- 1\n- 2\n');
  t.throws(() => loadConfig({ CDS_CONFIG_FILE: join(dir, 'list.yaml') }), { message: /must hold a mapping/ });
  writeFileSync(join(dir, 'typo.yaml'), 'prot: 1\n');
  t.throws(() => loadConfig({ CDS_CONFIG_FILE: join(dir, 'typo.yaml') }), {
    message: 'Invalid configuration: prot (CDS_PROT) must NOT have additional properties',
  });
});

t.test('authentication and edge settings: defaults, variables and checks', async (t) => {
  const defaults = loadSettings({});
  t.equal(defaults.authDisabled, false, 'authentication is on unless switched off');
  t.equal(defaults.publicUrl, undefined);
  t.equal(defaults.trustedIssuersFile, undefined);
  t.same(
    [defaults.jwtClockSkewS, defaults.jwtMaxLifetimeS, defaults.jwtMaxBytes, defaults.jtiCacheMaxEntries],
    [60, 300, 8192, 100_000],
  );
  t.same([defaults.jwksTimeoutMs, defaults.jwksCooldownMs, defaults.jwksMaxAgeMs], [2000, 30_000, 600_000]);
  t.same([defaults.rateLimitMax, defaults.rateLimitWindowMs], [3000, 60_000]);
  const set = loadConfig({
    CDS_AUTH_DISABLED: 'true',
    CDS_PUBLIC_URL: 'https://cds.example.org/base',
    CDS_TRUSTED_ISSUERS_FILE: 'issuers.yaml',
    CDS_JWT_CLOCK_SKEW_S: '5',
    CDS_RATE_LIMIT_MAX: '10',
    CDS_TLS_KEY_FILE: 'key.pem',
    CDS_TLS_CERT_FILE: 'cert.pem',
  });
  t.equal(set.authDisabled, true);
  t.equal(set.publicUrl, 'https://cds.example.org/base');
  t.equal(set.trustedIssuersFile, 'issuers.yaml');
  t.equal(set.jwtClockSkewS, 5);
  t.equal(set.rateLimitMax, 10);
  t.same([set.tlsKeyFile, set.tlsCertFile], ['key.pem', 'cert.pem']);
  t.throws(() => loadConfig({ CDS_AUTH_DISABLED: 'maybe' }), {
    message: /authDisabled \(CDS_AUTH_DISABLED\)/,
  });
  for (const url of [
    'cds.example.org',
    'https://cds.example.org/?x=1',
    'https://cds.example.org/#f',
    'ftp://x',
  ]) {
    t.throws(
      () => loadConfig({ CDS_PUBLIC_URL: url }),
      { message: /publicUrl \(CDS_PUBLIC_URL\) must match/ },
      url,
    );
  }
  t.throws(() => loadConfig({ CDS_JWT_MAX_LIFETIME_S: '7200' }), { message: /jwtMaxLifetimeS/ });
});

t.test(
  'DATABASE_URL, the usual name, sets databaseUrl; audit and analytics secrets have a floor',
  async (t) => {
    t.equal(envName('databaseUrl'), 'DATABASE_URL');
    t.equal(envName('auditPseudonymKey'), 'CDS_AUDIT_PSEUDONYM_KEY');
    const config = loadConfig({
      ...AUTH,
      DATABASE_URL: 'postgres://cds@db.internal/cds',
      CDS_AUDIT_PSEUDONYM_KEY: 'k'.repeat(32),
      CDS_ANALYTICS_TOKEN: 't'.repeat(32),
    });
    t.equal(config.databaseUrl, 'postgres://cds@db.internal/cds');
    t.equal(config.auditPseudonymKey, 'k'.repeat(32));
    t.equal(config.analyticsToken, 't'.repeat(32));
    t.equal(config.auditQueueMax, 10_000);
    t.equal(loadConfig(AUTH).databaseUrl, undefined, 'SQLite by default');
    t.throws(() => loadConfig({ DATABASE_URL: 'mysql://x' }), {
      message: /^Invalid configuration: databaseUrl \(DATABASE_URL\) must match pattern/,
    });
    t.throws(() => loadConfig({ CDS_ANALYTICS_TOKEN: 'short' }), {
      message:
        'Invalid configuration: analyticsToken (CDS_ANALYTICS_TOKEN) must NOT have fewer than 32 characters',
    });
    t.throws(() => loadConfig({ CDS_AUDIT_PSEUDONYM_KEY: 'short' }), {
      message: /auditPseudonymKey \(CDS_AUDIT_PSEUDONYM_KEY\) must NOT have fewer than 32 characters/,
    });
  },
);

t.test('explanation links: a key of at least 32 characters, a day by default', async (t) => {
  const defaults = loadConfig(AUTH);
  t.equal(defaults.explanationKey, undefined, 'unset: a random key per process');
  t.equal(defaults.explanationTtlS, 86_400);
  t.equal(defaults.explanationMaxEntries, 10_000);
  const config = loadConfig({
    ...AUTH,
    CDS_EXPLANATION_KEY: 'e'.repeat(32),
    CDS_EXPLANATION_TTL_S: '3600',
  });
  t.equal(config.explanationKey, 'e'.repeat(32));
  t.equal(config.explanationTtlS, 3600);
  t.throws(() => loadConfig({ CDS_EXPLANATION_KEY: 'short' }), {
    message:
      'Invalid configuration: explanationKey (CDS_EXPLANATION_KEY) must NOT have fewer than 32 characters',
  });
  t.throws(() => loadConfig({ CDS_EXPLANATION_TTL_S: '10' }), {
    message: /explanationTtlS \(CDS_EXPLANATION_TTL_S\) must be >= 60/,
  });
});

t.test('settings that go together are checked together, before anything is opened', async (t) => {
  t.throws(() => loadConfig({ ...AUTH, CDS_TLS_KEY_FILE: 'key.pem' }), {
    message:
      'Invalid configuration: tlsKeyFile (CDS_TLS_KEY_FILE) and tlsCertFile (CDS_TLS_CERT_FILE) go together',
  });
  t.throws(() => loadConfig({ ...AUTH, DATABASE_URL: 'postgres://cds@db.internal/cds' }), {
    message:
      'auditPseudonymKey (CDS_AUDIT_PSEUDONYM_KEY) must be set when DATABASE_URL is: every instance must pseudonymise patients with the same key',
  });
  t.throws(() => loadConfig({}), {
    message:
      'Client authentication is on but CDS_PUBLIC_URL (the base URL clients call, checked against the JWT aud) ' +
      'and CDS_TRUSTED_ISSUERS_FILE (the CDS clients to trust) are not set. ' +
      'Set CDS_AUTH_DISABLED=true to run without authentication, for local development only.',
  });
  t.throws(() => loadConfig({ CDS_PUBLIC_URL: AUTH.CDS_PUBLIC_URL }), {
    message:
      'Client authentication is on but CDS_TRUSTED_ISSUERS_FILE (the CDS clients to trust) is not set. ' +
      'Set CDS_AUTH_DISABLED=true to run without authentication, for local development only.',
  });
  t.throws(() => loadConfig({ CDS_TRUSTED_ISSUERS_FILE: AUTH.CDS_TRUSTED_ISSUERS_FILE }), {
    message:
      'Client authentication is on but CDS_PUBLIC_URL (the base URL clients call, checked against the JWT aud) ' +
      'is not set. Set CDS_AUTH_DISABLED=true to run without authentication, for local development only.',
  });
  t.equal(loadConfig({ CDS_AUTH_DISABLED: 'true' }).authDisabled, true, 'authentication off needs neither');
});

t.test("loadSettings, for tools, checks each setting but not the server's settings together", async (t) => {
  const settings = loadSettings({ DATABASE_URL: 'postgres://cds@db.internal/cds' });
  t.equal(settings.databaseUrl, 'postgres://cds@db.internal/cds');
  t.equal(settings.auditPseudonymKey, undefined);
  t.ok(Object.isFrozen(settings));
  t.throws(() => loadSettings({ CDS_PORT: 'eighty' }), {
    message: 'Invalid configuration: port (CDS_PORT) must be integer',
  });
});
