/**
 * With DATABASE_URL, the JWT replay cache is the shared PostgreSQL store: a token accepted by one
 * instance is refused when replayed on another. Skipped with a message without PostgreSQL, failed
 * under CI=true (where .ci/run starts it).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import { bearer, buildAuthApp, DISCOVERY, ISSUER, jwksOf, makeKey, mint, refusals } from '../helpers/jwt.js';
import { PG_URL, postgresProblem } from '../helpers/stores.js';

const problem = await postgresProblem();
if (problem && process.env.CI !== 'true') {
  t.comment(`SKIPPED: PostgreSQL not reachable at ${PG_URL} (${problem})`);
  t.test('shared replay cache', { skip: `PostgreSQL not reachable: ${problem}` }, () => {});
} else {
  t.test('a token accepted by one instance is refused when replayed on another', async (t) => {
    t.equal(problem, null, 'PostgreSQL is reachable');
    const schema = `replay_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    t.teardown(async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    });
    const databaseUrl = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    const key = await makeKey('ES384');
    const issuers = [{ iss: ISSUER, jwks: jwksOf(key) }];
    const config = { databaseUrl, auditPseudonymKey: 'p'.repeat(32) };
    const a = await buildAuthApp(issuers, config);
    t.teardown(() => a.app.close());
    const b = await buildAuthApp(issuers, config);
    t.teardown(() => b.app.close());

    const token = await mint(key, { aud: DISCOVERY });
    const first = await a.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(token) });
    t.equal(first.statusCode, 200, 'instance A accepts the token');
    const replayed = await b.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(token) });
    t.equal(replayed.statusCode, 401, 'instance B refuses the replay');
    t.same(refusals(b), ['jti_replayed']);
    const fresh = await mint(key, { aud: DISCOVERY });
    t.equal(
      (await b.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(fresh) })).statusCode,
      200,
      'a fresh token is accepted on B',
    );
  });
}
