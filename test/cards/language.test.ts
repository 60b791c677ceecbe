/**
 * One language per card (issue 15): every bundled service is called through app.inject() in French and
 * in English on a generated cohort, and every text a card carries (summary, detail, source and topic,
 * links, suggestion labels, action descriptions, the texts of suggested resources, override reasons),
 * its explanation page and the model card pages must hold no frequent word of the other language
 * (test/helpers/lexicon.ts). Texts copied from the record (drug names, body sites a service cannot
 * translate, coded displays) are the EHR's, not the card's: they are removed before the check. French
 * texts must also put a no-break space before : ; ? ! (src/language.ts).
 */
import type { Resource } from 'fhir/r4.js';
import t from 'tap';
import type { HookRequest } from '../../src/cds-hooks.js';
import type { Language } from '../../src/language.js';
import { loadModels } from '../../src/scoring/load.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { prefetchFrom } from '../../tools/bench/helpers.js';
import { patientOf, resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import {
  type DrugKey,
  medicationRequest,
  orderPrefetch,
  orderSelectRequest,
  orderSignRequest,
} from '../../tools/synthetic/orders.js';
import { generateCohort } from '../../tools/synthetic/patients.js';
import { buildTestApp, NOW } from '../helpers/app.js';
import { foreignWords, frenchSpacingErrors, htmlText } from '../helpers/lexicon.js';

t.setTimeout(300_000);

const engine = createFhirPath();
const DRAFTS: readonly (readonly DrugKey[])[] = [
  ['ibuprofen'],
  ['celecoxib'],
  ['valproate'],
  ['cyproterone'],
  ['naproxen', 'apixaban'],
];

interface CardLike {
  summary: string;
  detail?: string;
  source: { label: string; topic?: { display?: string } };
  overrideReasons?: { display?: string }[];
  links?: { label: string; url: string }[];
  suggestions?: { label: string; actions?: { description: string; resource?: unknown }[] }[];
}

/** A draft topiramate order (the generator has no topiramate; its service needs one). */
function topiramate(patientId: string) {
  const draft = medicationRequest({ id: 'draft-topiramate', drug: 'valproate', patientId });
  draft.medicationCodeableConcept = {
    coding: [
      {
        system: 'http://www.nlm.nih.gov/research/umls/rxnorm',
        code: '199888',
        display: 'topiramate 25 MG Oral Tablet',
      },
    ],
    text: 'Topiramate 25 mg tablet',
  };
  return draft;
}

/** Every `text` and `display` string of a request: the record's own words. */
function recordTexts(value: unknown, out: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const v of value) recordTexts(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if ((k === 'text' || k === 'display') && typeof v === 'string') out.add(v);
      else recordTexts(v, out);
    }
  }
  return out;
}

/** The strings of a suggested resource a clinician reads, without coded displays (the code system's). */
function resourceTexts(value: unknown, key = ''): string[] {
  if (typeof value === 'string') return key === 'display' || key === 'reference' ? [] : [value];
  if (Array.isArray(value)) return value.flatMap((v) => resourceTexts(v, key));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) =>
      k === 'coding' || k === 'system' || k === 'code' || k === 'subject' ? [] : resourceTexts(v, k),
    );
  }
  return [];
}

/** The texts of a card a clinician reads, with where each comes from. */
function cardTexts(card: CardLike): [string, string][] {
  const texts: [string, string][] = [
    ['summary', card.summary],
    ['detail', card.detail ?? ''],
    ['source.label', card.source.label],
    ['source.topic', card.source.topic?.display ?? ''],
  ];
  for (const r of card.overrideReasons ?? []) texts.push(['overrideReasons', r.display ?? '']);
  for (const l of card.links ?? []) texts.push(['links', l.label]);
  for (const s of card.suggestions ?? []) {
    texts.push(['suggestion.label', s.label]);
    for (const a of s.actions ?? []) {
      texts.push(['action.description', a.description]);
      for (const r of resourceTexts(a.resource)) texts.push(['action.resource', r]);
    }
  }
  return texts;
}

function without(text: string, record: ReadonlySet<string>): string {
  let out = text;
  for (const r of [...record].sort((a, b) => b.length - a.length))
    if (r.length > 2) out = out.replaceAll(r, ' ');
  // Escaped copies of record values in markdown.
  return out.replace(/\\(.)/g, '$1');
}

t.test('every card, explanation page and model card page is in one language', async (t) => {
  const { app } = await buildTestApp({ rateLimitMax: 1_000_000 });
  t.teardown(() => app.close());
  const services = loadServices(
    'cds-services',
    engine,
    loadValueSets('fhir-profiles'),
    await loadModels('models', engine),
  );
  const records = [
    ...generateCohort({ seed: 7, count: 12, now: NOW, lesions: 2 }),
    // Knee osteoarthritis is rare in a small cohort: two patients with it, so its cards show.
    ...generateCohort({ seed: 8, count: 2, now: NOW, kneeOa: true }),
  ].map((b) => toServerForm(b));
  const problems: string[] = [];
  const seen = new Map<string, number>();
  const pages = new Set<string>();
  const check = (where: string, text: string, lang: Language) => {
    const foreign = foreignWords(text, lang);
    for (const word of foreign) {
      const at = new RegExp(`(?<![\\p{L}])${word}(?![\\p{L}])`, 'iu').exec(text)?.index ?? 0;
      problems.push(
        `${where}: "${word}" in «${text.slice(Math.max(0, at - 50), at + 50).replace(/\s+/g, ' ')}»`,
      );
    }
    if (lang === 'fr') {
      const spacing = frenchSpacingErrors(text);
      if (spacing.length > 0) problems.push(`${where}: French spacing at «${spacing.join('», «')}»`);
    }
  };
  for (const record of records) {
    const resources: Resource[] = resourcesOf(record);
    const patientId = patientOf(record).id!;
    for (const service of services) {
      const id = service.definition.id;
      const bodies: HookRequest[] = [];
      if (service.definition.hook === 'patient-view') {
        const prefetch: Record<string, unknown> = {};
        for (const { key, spec } of service.prefetch) {
          const value = prefetchFrom(spec.query.replaceAll('{{context.patientId}}', patientId), resources);
          if (value !== null) prefetch[key] = value;
        }
        bodies.push({
          hook: 'patient-view',
          hookInstance: `lang-${patientId}`,
          context: { userId: 'Practitioner/lang', patientId },
          prefetch: prefetch as HookRequest['prefetch'],
        });
      } else {
        const prefetch = orderPrefetch(resources, patientId) as HookRequest['prefetch'];
        const build = service.definition.hook === 'order-select' ? orderSelectRequest : orderSignRequest;
        for (const drugs of DRAFTS) {
          const drafts = drugs.map((drug) => medicationRequest({ id: `draft-${drug}`, drug, patientId }));
          if (drugs[0] === 'valproate') drafts.push(topiramate(patientId));
          bodies.push(build({ patientId, drafts, prefetch }));
        }
      }
      for (const body of bodies) {
        const record = recordTexts(body, new Set());
        for (const lang of ['en', 'fr'] as const) {
          const res = await app.inject({
            method: 'POST',
            url: `/cds-services/${id}`,
            headers: { 'accept-language': lang },
            payload: body,
          });
          t.equal(res.statusCode, 200, `${id} ${lang}`, { diagnostic: false });
          for (const card of (res.json() as { cards: CardLike[] }).cards) {
            seen.set(`${id} ${lang}`, (seen.get(`${id} ${lang}`) ?? 0) + 1);
            for (const [field, text] of cardTexts(card))
              check(`${id} ${lang} ${field}`, without(text, record), lang);
            for (const link of card.links ?? []) {
              const path = new URL(link.url).pathname + new URL(link.url).search;
              if (path.startsWith('/explanations/') && !pages.has(`${id} ${lang}`)) {
                pages.add(`${id} ${lang}`);
                const page = await app.inject({ method: 'GET', url: path, headers: { accept: 'text/html' } });
                t.equal(page.statusCode, 200, `explanation page ${id} ${lang}`);
                t.match(page.body, `<html lang="${lang}">`);
                check(`${id} ${lang} explanation page`, without(htmlText(page.body), record), lang);
              }
            }
          }
        }
      }
    }
  }
  // The cohort reaches every service, and the model cards of both bundled models, in both languages.
  for (const service of services)
    for (const lang of ['en', 'fr'])
      t.ok(
        (seen.get(`${service.definition.id} ${lang}`) ?? 0) > 0,
        `${service.definition.id} ${lang} has cards`,
      );
  t.same([...pages].sort(), [
    'knee-oa-progression en',
    'knee-oa-progression fr',
    'melanoma-lesion-triage en',
    'melanoma-lesion-triage fr',
  ]);
  for (const model of ['melanoma-risk', 'knee-oa-progression'])
    for (const lang of ['en', 'fr'] as const) {
      const res = await app.inject({
        method: 'GET',
        url: `/models/${model}/model-card`,
        headers: { accept: 'text/html', 'accept-language': lang },
      });
      t.equal(res.statusCode, 200);
      t.equal(res.headers['content-language'], lang);
      // References are cited in the language they were published in: the Sources section is left out.
      const prose = htmlText(res.body.replace(/<h2>Sources<\/h2>[\s\S]*?(?=<h2>)/, ''));
      check(`model card ${model} ${lang}`, prose, lang);
      t.notMatch(res.body, 'class="notice"', `the ${model} card exists in ${lang}`);
    }
  t.same(problems, [], 'no word of the other language, French spacing everywhere');
});
