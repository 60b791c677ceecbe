/**
 * The governance team's endpoints: their own credential, the figures against the feedback that was
 * sent, the HTML page, and the patient's export.
 */
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { renderReportPage } from '../../src/analytics/page.js';
import { SYSTEM } from '../../src/codes.js';
import { PAGE_CSP, presentedCredential } from '../../src/http/analytics.js';
import { openStore } from '../../src/audit/store.js';
import { callEvent } from '../helpers/audit-events.js';
import { assertConforms, buildTestApp, tempDir, testSqliteWorker } from '../helpers/app.js';
import { type LesionSpec, lesion, patientView, searchset } from '../helpers/hook-request.js';

const TOKEN = 'governance-token-0123456789abcdef';
const URL = '/cds-services/melanoma-lesion-triage';
const bearer = { authorization: `Bearer ${TOKEN}` };

async function analyticsApp(t: Test, config: Record<string, unknown> = {}) {
  const built = await buildTestApp({ analyticsToken: TOKEN, ...config });
  t.teardown(() => built.app.close());
  return built;
}

async function issue(app: FastifyInstance, patientId: string, items: LesionSpec['items']) {
  const request = patientView({ lesions: searchset([lesion({ items })]) });
  request.context.patientId = patientId;
  const res = await app.inject({ method: 'POST', url: URL, payload: request });
  return res.json().cards[0];
}

const reason = (code: string) => ({ reason: { system: SYSTEM.overrideReason, code } });

t.test('without a configured token every analytics route answers 404', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  for (const [method, url] of [
    ['GET', '/analytics'],
    ['GET', '/analytics/page'],
    ['POST', '/analytics/patient-export'],
  ] as const) {
    const res = await app.inject({
      method,
      url,
      headers: bearer,
      payload: method === 'POST' ? {} : undefined,
    });
    t.equal(res.statusCode, 404, url);
    t.equal(res.json().issue[0].details.coding[0].code, 'CDS_ERR_ANALYTICS_DISABLED');
  }
});

t.test(
  'a missing or wrong credential is a 401 naming the schemes; a CDS client JWT is not one',
  async (t) => {
    const { app } = await analyticsApp(t);
    for (const authorization of [
      undefined,
      'Bearer wrong',
      `Bearer ${TOKEN}x`,
      `bearer  ${TOKEN.slice(1)}`,
      'Bearer eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2ln',
      `Basic ${Buffer.from(`gov:${TOKEN}x`).toString('base64')}`,
      `Token ${TOKEN}`,
    ]) {
      const res = await app.inject({
        method: 'GET',
        url: '/analytics',
        headers: authorization ? { authorization } : {},
      });
      t.equal(res.statusCode, 401, String(authorization));
      t.equal(res.json().issue[0].details.coding[0].code, 'CDS_ERR_ANALYTICS_UNAUTHORIZED');
      t.same(
        res.headers['www-authenticate'],
        ['Bearer realm="cds-analytics"', 'Basic realm="cds-analytics", charset="UTF-8"'],
        'one challenge per header, Bearer first to an API client',
      );
      t.equal(res.headers['cache-control'], 'no-store');
    }
  },
);

t.test('the credential is accepted as a Bearer token or a Basic password (for a browser)', async (t) => {
  t.equal(presentedCredential(`Bearer ${TOKEN}`), TOKEN);
  t.equal(presentedCredential(`bearer ${TOKEN}`), TOKEN);
  t.equal(presentedCredential(`Basic ${Buffer.from(`anyone:${TOKEN}`).toString('base64')}`), TOKEN);
  t.equal(presentedCredential(`Basic ${Buffer.from(`:${TOKEN}`).toString('base64')}`), TOKEN);
  t.equal(presentedCredential(`Basic ${Buffer.from(TOKEN).toString('base64')}`), undefined, 'no colon');
  t.equal(presentedCredential(undefined), undefined);
  t.equal(presentedCredential('Bearer'), undefined);
  const { app } = await analyticsApp(t);
  const basic = `Basic ${Buffer.from(`gov:${TOKEN}`).toString('base64')}`;
  t.equal(
    (await app.inject({ method: 'GET', url: '/analytics/page', headers: { authorization: basic } }))
      .statusCode,
    200,
  );
});

t.test(
  'figures match the feedback sent: issued, accepted, overridden, reasons, input-data-wrong',
  async (t) => {
    const { app } = await analyticsApp(t);
    const referral = { changeSize: true, irregularColour: true };
    const cards = [];
    for (let i = 0; i < 6; i++) cards.push(await issue(app, `pat-${i}`, referral));
    cards.push(await issue(app, 'pat-7', { changeSize: false }));
    const ts = (m: number) => `2026-11-22T09:${String(m).padStart(2, '0')}:00Z`;
    const feedback = [
      {
        card: cards[0].uuid,
        outcome: 'accepted',
        acceptedSuggestions: [{ id: cards[0].suggestions[0].uuid }],
        outcomeTimestamp: ts(31),
      },
      {
        card: cards[1].uuid,
        outcome: 'overridden',
        overrideReason: reason('input-data-wrong'),
        outcomeTimestamp: ts(32),
      },
      {
        card: cards[2].uuid,
        outcome: 'overridden',
        overrideReason: reason('input-data-wrong'),
        outcomeTimestamp: ts(33),
      },
      {
        card: cards[3].uuid,
        outcome: 'overridden',
        overrideReason: reason('patient-preference'),
        outcomeTimestamp: ts(34),
      },
      {
        card: cards[4].uuid,
        outcome: 'overridden',
        overrideReason: { userComment: 'seen' },
        outcomeTimestamp: ts(35),
      },
      // Card 3 again, later: the clinician changed their mind and took the referral.
      {
        card: cards[3].uuid,
        outcome: 'accepted',
        acceptedSuggestions: [{ id: cards[3].suggestions[0].uuid }],
        outcomeTimestamp: ts(40),
      },
    ];
    const sent = await app.inject({ method: 'POST', url: `${URL}/feedback`, payload: { feedback } });
    t.same(sent.json(), { stored: 6, duplicates: 0 });
    // A retry must not count twice.
    await app.inject({ method: 'POST', url: `${URL}/feedback`, payload: { feedback } });

    const res = await app.inject({ method: 'GET', url: '/analytics', headers: bearer });
    t.equal(res.statusCode, 200);
    t.equal(res.headers['cache-control'], 'no-store');
    const report = res.json();
    assertConforms('AnalyticsReport', report);
    t.equal(report.generatedAt, '2026-11-22T09:30:00.000Z');
    t.same(report.groups, [
      {
        serviceId: 'melanoma-lesion-triage',
        serviceVersion: report.groups[0].serviceVersion,
        // Each lesion call issues one card: the referral alone (one voice per lesion), and for pat-7
        // (one item recorded) the incomplete-checklist card, with no model card beside either.
        models: [{ id: 'melanoma-risk', version: '1.0.0' }],
        cardsIssued: 7,
        accepted: 2,
        overridden: 3,
        noFeedback: 2,
        acceptanceRate: 0.2857,
        overrideRate: 0.4286,
        overrideReasons: { 'input-data-wrong': 2, uncoded: 1 },
        inputDataWrongRate: 0.6667,
        cardsSuppressed: 0,
        suppressedReasons: {},
        risk: [],
      },
    ]);
    t.match(report.groups[0].serviceVersion, /^\d+\.\d+\.\d+$/);
  },
);

t.test('risk values of scored cards are shown week by week (drift)', async (t) => {
  const dataDir = tempDir();
  const store = await openStore({ dataDir }, { worker: testSqliteWorker });
  const model = [{ id: 'melanoma-risk', version: '0.1.0', sha256: 'c'.repeat(64) }];
  await store.append([
    callEvent({
      at: '2026-11-09T10:00:00.000Z',
      models: model,
      cards: [
        { uuid: 'a', risk: 0.05 },
        { uuid: 'b', risk: 0.15 },
      ],
    }),
    callEvent({
      at: '2026-11-16T10:00:00.000Z',
      models: model,
      cards: [
        { uuid: 'c', risk: 0.95 },
        { uuid: 'd', risk: 0.85 },
        { uuid: 'e', risk: 0.9 },
      ],
    }),
  ]);
  await store.close();
  const { app } = await analyticsApp(t, { dataDir });
  const report = (await app.inject({ method: 'GET', url: '/analytics', headers: bearer })).json();
  assertConforms('AnalyticsReport', report);
  t.same(report.groups[0].models, [{ id: 'melanoma-risk', version: '0.1.0' }]);
  t.same(report.groups[0].risk, [
    { week: '2026-11-09', n: 2, mean: 0.1, histogram: [1, 1, 0, 0, 0, 0, 0, 0, 0, 0] },
    { week: '2026-11-16', n: 3, mean: 0.9, histogram: [0, 0, 0, 0, 0, 0, 0, 0, 1, 2] },
  ]);
  t.same(report.groups[0].acceptanceRate, 0);
  t.equal(report.groups[0].inputDataWrongRate, null, 'no override, no rate');
});

t.test('the page is self-contained HTML with the same figures, escaped, under a strict CSP', async (t) => {
  const { app } = await analyticsApp(t);
  let res = await app.inject({ method: 'GET', url: '/analytics/page', headers: bearer });
  t.equal(res.statusCode, 200);
  t.match(res.body, /No card has been issued yet/);
  const card = await issue(app, 'pat-1', { changeSize: true, irregularColour: true });
  await app.inject({
    method: 'POST',
    url: `${URL}/feedback`,
    payload: {
      feedback: [
        {
          card: card.uuid,
          outcome: 'overridden',
          overrideReason: reason('input-data-wrong'),
          outcomeTimestamp: '2026-11-22T09:31:00Z',
        },
      ],
    },
  });
  res = await app.inject({ method: 'GET', url: '/analytics/page', headers: bearer });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(res.headers['content-security-policy'], PAGE_CSP);
  t.match(res.body, /^<!doctype html>/);
  // The call issued the referral card alone (one voice per lesion: no model card beside it).
  t.match(
    res.body,
    /<h2>melanoma-lesion-triage <small>version [\d.]+ · melanoma-risk 1\.0\.0<\/small><\/h2>/,
  );
  t.match(res.body, /<tr><th>Cards issued<\/th><td class="n">1<\/td><\/tr>/);
  t.match(res.body, /<tr><th>Overridden<\/th><td class="n">1 \(100\.0 %\)<\/td><\/tr>/);
  t.match(res.body, /<tr><td>Input data wrong or out of date<\/td><td class="n">1<\/td><\/tr>/);
  t.notMatch(res.body, /<script|src=|href=|@import|url\(/i, 'no script and nothing fetched');
});

t.test('page values are escaped', async (t) => {
  const html = renderReportPage({
    generatedAt: '<now>',
    groups: [
      {
        serviceId: '<script>alert(1)</script>',
        serviceVersion: '1"2',
        models: [{ id: 'm&m', version: "v'1" }],
        cardsIssued: 2,
        accepted: 0,
        overridden: 2,
        noFeedback: 0,
        acceptanceRate: 0,
        overrideRate: 1,
        overrideReasons: { '<b>odd</b>': 1, uncoded: 1 },
        inputDataWrongRate: 0,
        cardsSuppressed: 3,
        suppressedReasons: { 'override:already-handled': 2, '<i>x</i>': 1 },
        risk: [{ week: '2026-11-16', n: 2, mean: 0.5, histogram: [0, 0, 0, 0, 0, 2, 0, 0, 0, 0] }],
      },
    ],
  });
  t.notMatch(html, /<script>|<b>odd/);
  t.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  t.match(html, /version 1&quot;2 · m&amp;m v&#39;1/);
  t.match(html, /&lt;b&gt;odd&lt;\/b&gt;/);
  t.match(html, /<tr><td>Overridden earlier: Already handled<\/td><td class="n">2<\/td><\/tr>/);
  t.match(html, /&lt;i&gt;x&lt;\/i&gt;/);
  t.match(html, /No coded reason \(comment only\)/);
  t.match(html, /title="50–60 %: 2" style="height:40px"/);
  t.match(html, /Generated &lt;now&gt;/);
});

t.test(
  "a patient's export returns their events only, found through the pseudonym; the id is not logged",
  async (t) => {
    const { app, logText } = await analyticsApp(t);
    const mine = await issue(app, 'patient-abc-42', { changeSize: true, irregularColour: true });
    await issue(app, 'someone-else', { changeSize: true, irregularColour: true });
    await app.inject({
      method: 'POST',
      url: `${URL}/feedback`,
      payload: {
        feedback: [
          {
            card: mine.uuid,
            outcome: 'overridden',
            overrideReason: reason('already-handled'),
            outcomeTimestamp: '2026-11-22T09:31:00Z',
          },
        ],
      },
    });
    const res = await app.inject({
      method: 'POST',
      url: '/analytics/patient-export',
      headers: bearer,
      payload: { patientId: 'patient-abc-42' },
    });
    t.equal(res.statusCode, 200);
    const body = res.json();
    assertConforms('PatientExport', body);
    t.same(
      body.events.map((e: { seq: number; kind: string }) => [e.seq, e.kind]),
      [
        [1, 'service-call'],
        [3, 'feedback'],
      ],
    );
    t.equal(body.events[0].payload.cards[0].uuid, mine.uuid);
    t.equal(body.events[1].payload.card, mine.uuid);
    t.ok(body.events.every((e: { pseudonym: string }) => e.pseudonym === body.pseudonym));
    t.notMatch(logText(), /patient-abc-42/);

    const nobody = await app.inject({
      method: 'POST',
      url: '/analytics/patient-export',
      headers: bearer,
      payload: { patientId: 'unknown-1' },
    });
    t.same(nobody.json().events, []);
    const bad = await app.inject({
      method: 'POST',
      url: '/analytics/patient-export',
      headers: bearer,
      payload: { patient: 'x' },
    });
    t.equal(bad.statusCode, 400);
    t.equal(bad.json().issue[0].details.coding[0].code, 'CDS_ERR_REQUEST_INVALID');
    const unauthenticated = await app.inject({
      method: 'POST',
      url: '/analytics/patient-export',
      payload: { patientId: 'patient-abc-42' },
    });
    t.equal(unauthenticated.statusCode, 401);
  },
);
