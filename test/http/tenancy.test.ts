/**
 * Tenancy (issue 16 §8), on both stores, with authentication on: a card takes feedback only from the
 * client (issuer and tenant) it was issued to, and the analytics can be read for one issuer or tenant.
 * Before, any trusted issuer could post feedback on another's cards (200 {"stored":1}), corrupting that
 * tenant's override figures.
 */
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import { SYSTEM } from '../../src/codes.js';
import { CdsError, toOperationOutcome } from '../../src/errors.js';
import { assertConforms } from '../helpers/app.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';
import { bearer, buildAuthApp, jwksOf, makeKey, mint, type TestKey } from '../helpers/jwt.js';
import { eachStore, type StoreKind } from '../helpers/stores.js';

const SERVICE = '/cds-services/melanoma-lesion-triage';
const FEEDBACK = `${SERVICE}/feedback`;
const ANALYTICS_TOKEN = 'governance-token-0123456789abcdef';
const HOSPITAL = 'https://ehr.hospital-a.example.org';
const VENDOR = 'https://ehr.vendor.example.org';

let key: TestKey;
t.before(async () => {
  key = await makeKey('ES384');
});

async function setUp(t: Test, kind: StoreKind) {
  const { store } = await kind.open();
  const test = await buildAuthApp(
    [
      { iss: HOSPITAL, jwks: jwksOf(key), tenant: 'hospital-a' },
      // One EHR vendor speaking for two clinics.
      { iss: VENDOR, jwks: jwksOf(key), tenant: ['clinic-north', 'clinic-south'] },
    ],
    { analyticsToken: ANALYTICS_TOKEN },
    { store },
  );
  t.teardown(() => test.app.close());
  return test.app;
}

async function issue(app: FastifyInstance, iss: string, tenant: string): Promise<Card> {
  const request = patientView({
    lesions: searchset([lesion({ items: { changeSize: true, irregularColour: true } })]),
    patient: null,
  });
  const res = await app.inject({
    method: 'POST',
    url: SERVICE,
    headers: bearer(await mint(key, { iss, tenant, aud: SERVICE })),
    payload: request,
  });
  if (res.statusCode !== 200) throw new Error(`service call answered ${res.statusCode}: ${res.body}`);
  return res.json().cards[0];
}

async function feedback(
  app: FastifyInstance,
  iss: string,
  tenant: string,
  card: Card,
  code = 'already-handled',
) {
  return app.inject({
    method: 'POST',
    url: FEEDBACK,
    headers: bearer(await mint(key, { iss, tenant, aud: FEEDBACK })),
    payload: {
      feedback: [
        {
          card: card.uuid,
          outcome: 'overridden',
          overrideReason: { reason: { system: SYSTEM.overrideReason, code } },
          outcomeTimestamp: '2026-11-22T09:35:00Z',
        },
      ],
    },
  });
}

const unknownCard = (card: Card) =>
  toOperationOutcome(
    new CdsError(
      'CDS_ERR_FEEDBACK_UNKNOWN_CARD',
      { index: 0, serviceId: 'melanoma-lesion-triage', card: card.uuid! },
      { expression: ['feedback[0].card'] },
    ),
  );

async function analytics(app: FastifyInstance, query = '') {
  const res = await app.inject({
    method: 'GET',
    url: `/analytics${query}`,
    headers: { authorization: `Bearer ${ANALYTICS_TOKEN}` },
  });
  return res;
}

const totals = (report: { groups: { cardsIssued: number; overridden: number }[] }) => ({
  cardsIssued: report.groups.reduce((n, g) => n + g.cardsIssued, 0),
  overridden: report.groups.reduce((n, g) => n + g.overridden, 0),
});

await eachStore(t, async (t, kind) => {
  t.test(
    'feedback from another issuer is refused as for an unknown card, and nothing is stored',
    async (t) => {
      const app = await setUp(t, kind);
      const card = await issue(app, HOSPITAL, 'hospital-a');
      const res = await feedback(app, VENDOR, 'clinic-north', card);
      t.equal(res.statusCode, 404);
      t.match(res.headers['content-type'], /^application\/fhir\+json/);
      assertConforms('OperationOutcome', res.json());
      t.same(res.json(), unknownCard(card), 'the same body as for a card that does not exist');
      // The issuer's own feedback is still taken, once.
      const own = await feedback(app, HOSPITAL, 'hospital-a', card);
      t.equal(own.statusCode, 200, own.body);
      t.same(own.json(), { stored: 1, duplicates: 0 });
    },
  );

  t.test('feedback from another tenant of the same issuer is refused', async (t) => {
    const app = await setUp(t, kind);
    const card = await issue(app, VENDOR, 'clinic-north');
    const res = await feedback(app, VENDOR, 'clinic-south', card);
    t.equal(res.statusCode, 404);
    t.same(res.json(), unknownCard(card));
    t.equal((await feedback(app, VENDOR, 'clinic-north', card)).statusCode, 200);
  });

  t.test('analytics scoped by issuer and by tenant', async (t) => {
    const app = await setUp(t, kind);
    const a = await issue(app, HOSPITAL, 'hospital-a');
    await issue(app, HOSPITAL, 'hospital-a');
    const north = await issue(app, VENDOR, 'clinic-north');
    await issue(app, VENDOR, 'clinic-south');
    await issue(app, VENDOR, 'clinic-south');
    t.equal((await feedback(app, HOSPITAL, 'hospital-a', a)).statusCode, 200);
    t.equal((await feedback(app, VENDOR, 'clinic-north', north, 'not-relevant-now')).statusCode, 200);

    const all = await analytics(app);
    t.equal(all.statusCode, 200);
    assertConforms('AnalyticsReport', all.json());
    // Each call issues one card: the checklist reaches the referral threshold (2 + 2 points), and one
    // voice per lesion keeps the model's estimate off beside it.
    t.same(totals(all.json()), { cardsIssued: 5, overridden: 2 });
    t.same(all.json().scope, {});

    const hospital = await analytics(app, `?issuer=${encodeURIComponent(HOSPITAL)}`);
    assertConforms('AnalyticsReport', hospital.json());
    t.same(totals(hospital.json()), { cardsIssued: 2, overridden: 1 });
    t.same(hospital.json().scope, { issuer: HOSPITAL });
    const reasons = hospital.json().groups.map((g: { overrideReasons: object }) => g.overrideReasons);
    t.same(Object.assign({}, ...reasons), { 'already-handled': 1 }, "only the hospital's override");

    const vendor = await analytics(app, `?issuer=${encodeURIComponent(VENDOR)}`);
    t.same(totals(vendor.json()), { cardsIssued: 3, overridden: 1 });
    const south = await analytics(app, `?issuer=${encodeURIComponent(VENDOR)}&tenant=clinic-south`);
    t.same(totals(south.json()), { cardsIssued: 2, overridden: 0 });
    t.same(south.json().scope, { issuer: VENDOR, tenant: 'clinic-south' });
    const page = await app.inject({
      method: 'GET',
      url: `/analytics/page?issuer=${encodeURIComponent(VENDOR)}&tenant=clinic-north`,
      headers: { authorization: `Bearer ${ANALYTICS_TOKEN}` },
    });
    t.equal(page.statusCode, 200);
    const none = await analytics(app, '?issuer=https%3A%2F%2Fnobody.example.org');
    t.same(none.json().groups, []);
  });

  t.test('a tenant without its issuer, or an empty issuer, is a 400', async (t) => {
    const app = await setUp(t, kind);
    for (const query of ['?tenant=clinic-south', '?issuer=']) {
      const res = await analytics(app, query);
      t.equal(res.statusCode, 400, query);
      t.equal(res.json().issue[0].details.coding[0].code, 'CDS_ERR_REQUEST_INVALID', query);
    }
  });
});
