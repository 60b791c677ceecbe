import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { PAGE_CSP } from '../../src/http/analytics.js';
import { NOT_FOUND_PAGE } from '../../src/http/explanations.js';
import { buildTestApp, NOW } from '../helpers/app.js';
import { bearer, buildAuthApp, ISSUER, jwksOf, makeKey, mint } from '../helpers/jwt.js';
import { HIGH_RISK, KNEE_OA_URL, kneeOaCall } from '../helpers/knee-oa-call.js';

const PUBLIC = 'https://cds.example.org';
const KEY = 'e'.repeat(32);

interface Link {
  label: string;
  url: string;
  type: string;
}

async function cardOf(app: FastifyInstance, payload: object, language = 'en') {
  const res = await app.inject({
    method: 'POST',
    url: KNEE_OA_URL,
    payload,
    headers: { 'accept-language': language },
  });
  t.equal(res.statusCode, 200);
  return res.json().cards[0];
}

/** The path and query of the card's explanation link (app.inject takes no origin). */
function explanationLink(
  card: { uuid: string; links: Link[] },
  label = 'Explanation (chart, data, model card)',
): string {
  const link = card.links.find((l) => l.label === label)!;
  t.equal(link.type, 'absolute');
  t.ok(link.url.startsWith(`${PUBLIC}/explanations/${card.uuid}?`));
  return link.url.slice(PUBLIC.length);
}

t.test('a model card links to its signed explanation page, which shows the figures', async (t) => {
  const { app, logText } = await buildTestApp({ publicUrl: PUBLIC, explanationKey: KEY });
  t.teardown(() => app.close());
  const card = await cardOf(app, kneeOaCall(HIGH_RISK));
  const model = card.extension[EXPLANATION_EXTENSION].model;
  t.equal(model.status, 'scored');
  t.same(
    card.links.map((l: Link) => l.label),
    ['Explanation (chart, data, model card)', 'Model card: Knee OA progression (demonstration model)'],
  );
  const path = explanationLink(card);
  const url = new URL(path, PUBLIC);
  t.equal(url.searchParams.get('exp'), String(NOW.getTime() / 1000 + 86_400), 'default TTL: a day');
  t.match(url.searchParams.get('sig'), /^[A-Za-z0-9_-]{43}$/);
  t.notMatch(path, /risk|bmi|%/i, 'no content in the URL');

  const res = await app.inject({ method: 'GET', url: path });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(res.headers['content-security-policy'], PAGE_CSP);
  t.equal(res.headers['cache-control'], 'no-store');
  const html = res.body;
  const risk = Math.round(model.probability * 100);
  t.match(html, `<strong>Estimated risk: ${risk}%</strong>`);
  t.match(html, 'within 24 months. Band: <strong>higher risk</strong>');
  t.equal(html.match(/<rect class="bar contribution"/g)?.length, model.contributions.length);
  t.match(html, /Body mass index: 36 kg\/m²/);
  t.match(
    html,
    /<td>Body mass index<\/td><td class="n">36 kg\/m²<\/td><td>[^<]*<\/td><td>\d{4}-\d{2}-\d{2}<\/td><td>recorded<\/td>/,
  );
  t.match(html, 'Demonstration model trained on simulated data. Not validated; not for clinical use.');
  t.match(html, `<a href="${PUBLIC}/models/knee-oa-progression/model-card">Full model card</a>`);
  t.match(html, `<code>${model.model.sha256}</code>`);
  t.match(html, 'To show, on simulated data, how a CDS Hooks service', 'intended use from the model card');
  // One language per page: the patient sentence of the page's language only.
  t.match(html, `<p class="patient">${model.patientSentence.en}`);
  t.notMatch(html, model.patientSentence.fr);
  t.match(html, 'This link expires on 2026-11-23 09:30 UTC.');

  const fr = await app.inject({ method: 'GET', url: `${path}&lang=fr` });
  t.equal(fr.statusCode, 200);
  t.match(fr.body, '<html lang="fr">');
  t.match(fr.body, `<strong>Risque estimé\u00a0: ${risk}\u00a0%</strong>`);
  t.match(fr.body, 'Montrer, sur des données simulées', 'intended use from the French model card');
  t.notMatch(fr.body, 'To show, on simulated data');
  t.notMatch(logText(), url.searchParams.get('sig')!, 'the signature is not logged');
});

t.test('bad, tampered, expired or unknown links: the same 404, never any content', async (t) => {
  let now = NOW;
  const { app } = await buildTestApp({ publicUrl: PUBLIC, explanationKey: KEY }, { now: () => now });
  t.teardown(() => app.close());
  const card = await cardOf(app, kneeOaCall(HIGH_RISK));
  const path = explanationLink(card);
  const url = new URL(path, PUBLIC);
  const exp = url.searchParams.get('exp')!;
  const sig = url.searchParams.get('sig')!;
  const other = '00000000-0000-4000-8000-999999999999';
  const bad = [
    `/explanations/${other}?exp=${exp}&sig=${sig}`,
    `/explanations/${card.uuid}?exp=${Number(exp) + 1}&sig=${sig}`,
    `/explanations/${card.uuid}?exp=${exp}&sig=${sig.slice(0, 42)}`,
    `/explanations/${card.uuid}?exp=${exp}&sig=${(sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)}`,
    `/explanations/${card.uuid}?exp=${exp}`,
    `/explanations/${card.uuid}?exp=${exp}&sig=${sig}&sig=${sig}`,
    `/explanations/${card.uuid}`,
    `/explanations/${'x'.repeat(65)}?exp=${exp}&sig=${sig}`,
  ];
  for (const u of bad) {
    const res = await app.inject({ method: 'GET', url: u });
    t.equal(res.statusCode, 404, u);
    t.equal(res.body, NOT_FOUND_PAGE, u);
    t.equal(res.headers['content-security-policy'], PAGE_CSP);
  }
  // A genuine link for a uuid this instance never stored (another instance, or after a restart).
  const forged = await buildTestApp({ publicUrl: PUBLIC, explanationKey: KEY });
  t.teardown(() => forged.app.close());
  const elsewhere = await forged.app.inject({ method: 'GET', url: path });
  t.equal(elsewhere.statusCode, 404);
  t.equal(elsewhere.body, NOT_FOUND_PAGE);

  t.equal((await app.inject({ method: 'GET', url: path })).statusCode, 200, 'the genuine link works');
  now = new Date(NOW.getTime() + 86_400_000);
  const expired = await app.inject({ method: 'GET', url: path });
  t.equal(expired.statusCode, 404);
  t.equal(expired.body, NOT_FOUND_PAGE);
});

t.test('the page needs no CDS client JWT: client authentication covers only /cds-services', async (t) => {
  const key = await makeKey('ES256');
  const test = await buildAuthApp([{ iss: ISSUER, jwks: jwksOf(key) }], { explanationKey: KEY });
  t.teardown(() => test.app.close());
  const payload = kneeOaCall(HIGH_RISK);
  const bare = await test.app.inject({ method: 'POST', url: KNEE_OA_URL, payload });
  t.equal(bare.statusCode, 401, 'the service call itself needs a token');
  const call = await test.app.inject({
    method: 'POST',
    url: KNEE_OA_URL,
    payload,
    headers: bearer(await mint(key, { aud: KNEE_OA_URL })),
  });
  t.equal(call.statusCode, 200);
  const page = await test.app.inject({ method: 'GET', url: explanationLink(call.json().cards[0]) });
  t.equal(page.statusCode, 200, 'opened in a browser, without any token');
  t.match(page.body, '<svg');
  const unknown = await test.app.inject({
    method: 'GET',
    url: '/explanations/00000000-0000-4000-8000-000000000001',
  });
  t.equal(unknown.statusCode, 404, 'not 401');
  t.equal(unknown.body, NOT_FOUND_PAGE);
  t.equal(unknown.headers['www-authenticate'], undefined);
});

t.test('a card without an estimate links to a page with the reasons', async (t) => {
  const { app } = await buildTestApp({ publicUrl: PUBLIC });
  t.teardown(() => app.close());
  const card = await cardOf(app, kneeOaCall({ ...HIGH_RISK, age: 82 }), 'fr');
  t.equal(card.extension[EXPLANATION_EXTENSION].model.status, 'not-scored');
  const res = await app.inject({
    method: 'GET',
    url: explanationLink(card, 'Explication (graphique, données, fiche du modèle)'),
  });
  t.equal(res.statusCode, 200);
  t.match(res.body, '<html lang="fr">');
  t.match(res.body, '<strong>Pas d’estimation</strong>');
  t.match(res.body, /<ul class="reasons"><li>[^<]*45[^<]*79/);
  t.notMatch(res.body, '<svg');
});
