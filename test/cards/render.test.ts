import t from 'tap';
import { escapeMarkdown } from '../../src/cards/detail.js';
import {
  changedFocus,
  conditionHolds,
  fillResource,
  fillText,
  issueCards,
  renderCards,
  SUMMARY_MAX,
} from '../../src/cards/render.js';
import { explainFinding } from '../../src/explain/explain.js';
import type { Finding } from '../../src/finding.js';
import { pickLanguage } from '../../src/http/service-call.js';
import type { FocusResult, RuleResult } from '../../src/rules/evaluate.js';
import { evaluateRules } from '../../src/rules/evaluate.js';
import { loadModels } from '../../src/scoring/load.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { createRng } from '../../tools/synthetic/random.js';
import type { CompiledService } from '../../src/services/load.js';
import { assertConforms, buildTestApp, NOW } from '../helpers/app.js';
import { SCORED } from '../helpers/scored-outcome.js';
import { type LesionSpec, lesion, patientView, searchset } from '../helpers/hook-request.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const melanoma = loadServices(
  'cds-services',
  engine,
  loadValueSets('fhir-profiles'),
  await loadModels('models', engine),
).find((s) => s.definition.id === 'melanoma-lesion-triage')!;

function focusWith(statuses: Record<string, RuleResult['status']>): FocusResult & { models: [] } {
  return {
    models: [],
    subject: {},
    reference: undefined,
    resource: undefined,
    label: undefined,
    date: undefined,
    rules: Object.entries(statuses).map(([id, status]) => ({
      id,
      kind: 'condition',
      title: { en: id, fr: id },
      source: { label: 's' },
      status,
    })),
  };
}

/** Findings of a rules-only run: no model outcome, the explanations a card about rules carries. */
function findingsOf(focuses: readonly FocusResult[]): Finding[] {
  return focuses.map((focus) => {
    const scored = { ...focus, models: [] };
    return { ...scored, explanations: explainFinding(melanoma, scored, []) };
  });
}

t.test('card conditions: every clause listed must hold', async (t) => {
  const focus = focusWith({ a: 'fired', b: 'not-fired', c: 'not-evaluable' });
  t.equal(conditionHolds({ anyFired: ['a', 'b'] }, focus), true);
  t.equal(conditionHolds({ anyFired: ['b', 'c'] }, focus), false);
  t.equal(conditionHolds({ allFired: ['a', 'b'] }, focus), false);
  t.equal(conditionHolds({ allFired: ['a'] }, focus), true);
  t.equal(conditionHolds({ noneFired: ['b', 'c'] }, focus), true);
  t.equal(conditionHolds({ noneFired: ['a'] }, focus), false);
  t.equal(conditionHolds({ anyEvaluated: ['c'] }, focus), false);
  t.equal(conditionHolds({ anyEvaluated: ['b', 'c'] }, focus), true);
  t.equal(conditionHolds({ noneFired: ['b'], anyEvaluated: ['c'] }, focus), false);
  t.equal(conditionHolds({ noneEvaluated: ['c'] }, focus), true);
  t.equal(conditionHolds({ noneEvaluated: ['b', 'c'] }, focus), false);
});

t.test('incomplete clauses: a checklist whose missing items could reach its threshold', async (t) => {
  const focus = focusWith({ a: 'not-fired', b: 'not-fired', c: 'fired' });
  const rules = focus.rules.map((r) => (r.id === 'a' ? { ...r, incomplete: true as const } : r));
  const incomplete = { ...focus, rules };
  t.equal(conditionHolds({ anyIncomplete: ['a', 'b'] }, incomplete), true);
  t.equal(conditionHolds({ anyIncomplete: ['b', 'c'] }, incomplete), false);
  t.equal(conditionHolds({ noneIncomplete: ['b', 'c'] }, incomplete), true);
  t.equal(conditionHolds({ noneIncomplete: ['a'] }, incomplete), false);
  t.equal(conditionHolds({ anyEvaluated: ['a'], noneIncomplete: ['a'] }, incomplete), false);
});

t.test(
  'one voice per focus: a lower-band estimate is never issued beside a checklist that fired, whatever the template',
  async (t) => {
    // A site's template that would show the estimate whatever the checklists say.
    const service: CompiledService = {
      ...melanoma,
      definition: {
        ...melanoma.definition,
        cards: [
          {
            id: 'estimate',
            when: { model: 'melanoma-risk', scored: true },
            indicator: 'info',
            summary: { en: '{{model.risk}} ({{model.band}})', fr: '{{model.risk}} ({{model.band}})' },
          },
        ],
      },
    };
    const model = { ...SCORED.model, id: 'melanoma-risk' };
    const lower = {
      ...SCORED,
      model,
      probability: 0.004,
      aboveThreshold: false,
      band: { id: 'lower', label: { en: 'lower risk', fr: 'risque plus faible' } },
    };
    const higher = { ...SCORED, model, probability: 0.2, aboveThreshold: true };
    const checklist = (status: RuleResult['status']): RuleResult => ({
      id: 'weighted7pcl',
      kind: 'checklist',
      title: { en: 'Weighted 7-point checklist', fr: 'Liste des 7 points pondérée' },
      source: { label: 'NICE NG12' },
      status,
      score: status === 'fired' ? 3 : 0,
      threshold: 3,
    });
    const summaries = (status: RuleResult['status'], outcome: typeof lower) => {
      const scored = { ...focusWith({}), rules: [checklist(status)], models: [outcome] };
      const findings = [{ ...scored, explanations: explainFinding(service, scored, []) }];
      const input = { service, findings, context: {}, language: 'en' as const, now: NOW, publicUrl: '' };
      return issueCards({ ...input, uuid: () => 'u' }).map((c) => c.card.summary);
    };
    t.same(summaries('fired', lower), [], 'no "<1% (lower risk)" beside a referral');
    t.same(summaries('fired', higher), ['20% (higher risk)'], 'an estimate above the threshold is shown');
    t.same(summaries('not-fired', lower), ['<1% (lower risk)'], 'below the threshold, the estimate is shown');
  },
);

t.test(
  'placeholders: text reads "not recorded" for a missing value; resources drop what is missing',
  async (t) => {
    t.equal(
      fillText('Lesion ({{focus.label}}) on {{ today }}', { today: '2026-11-22' }, 'en'),
      'Lesion (not recorded) on 2026-11-22',
    );
    t.equal(fillText('{{focus.label}}', {}, 'fr'), 'non renseigné');
    const resource = fillResource(
      {
        resourceType: 'ServiceRequest',
        subject: { reference: 'Patient/{{context.patientId}}' },
        reasonReference: [{ reference: '{{focus.reference}}' }],
        bodySite: [{ text: '{{focus.label}}' }],
        note: [{ text: 'seen {{today}}' }],
      },
      { 'context.patientId': 'p1', today: '2026-11-22' },
      'en',
    );
    t.same(resource, {
      resourceType: 'ServiceRequest',
      subject: { reference: 'Patient/p1' },
      note: [{ text: 'seen 2026-11-22' }],
    });
  },
);

t.test(
  'a resource template text in each language is taken in the card language, keys in any order',
  async (t) => {
    const template = {
      note: [
        { text: { en: 'seen {{today}}', fr: 'vu le {{today}}' } },
        { text: { fr: 'à revoir', en: 'to review' } },
      ],
      // Not a text in each language: a third key, a key missing, a value that is not a string.
      code: { en: 'a', fr: 'b', es: 'c' },
      category: { en: 'a' },
      extension: { en: 'a', fr: 1 },
    };
    const values = { today: '2026-11-22' };
    t.same(fillResource(template, values, 'fr'), {
      note: [{ text: 'vu le 2026-11-22' }, { text: 'à revoir' }],
      code: { en: 'a', fr: 'b', es: 'c' },
      category: { en: 'a' },
      extension: { en: 'a', fr: 1 },
    });
    t.same((fillResource(template, values, 'en') as { note: unknown }).note, [
      { text: 'seen 2026-11-22' },
      { text: 'to review' },
    ]);
  },
);

t.test('record values are escaped in markdown', async (t) => {
  t.equal(
    escapeMarkdown('<img src=x onerror=alert(1)> *a*\n[b](c)'),
    '\\<img src=x onerror=alert\\(1\\)\\> \\*a\\* \\[b\\]\\(c\\)',
  );
});

t.test('Accept-Language picks fr or en by preference, else the default', async (t) => {
  t.equal(pickLanguage(undefined, 'en'), 'en');
  t.equal(pickLanguage('fr-FR,fr;q=0.9,en;q=0.8', 'en'), 'fr');
  t.equal(pickLanguage('de-DE,en;q=0.5,fr;q=0.7', 'en'), 'fr');
  t.equal(pickLanguage('de-DE', 'fr'), 'fr');
  t.equal(pickLanguage('fr;q=0, en', 'fr'), 'en');
  t.equal(pickLanguage('en;q=abc, fr;q=0.1', 'en'), 'fr');
});

t.test('a long site is cut so the summary stays under 140 characters', async (t) => {
  const focuses = evaluateRules(
    melanoma.rules,
    melanoma.focus,
    {
      lesions: searchset([lesion({ site: 'x'.repeat(300), items: { changeSize: true, oozing: true } })]),
      hookContext: {},
    },
    NOW,
    () => {},
  );
  const [card] = renderCards({
    service: melanoma,
    findings: findingsOf(focuses),
    context: { patientId: 'p' },
    language: 'en',
    now: NOW,
    publicUrl: 'https://cds.example.org',
    uuid: () => '00000000-0000-4000-8000-000000000001',
  });
  t.equal([...card!.summary].length, SUMMARY_MAX);
  t.ok(card!.summary.endsWith('…'));
});

t.test('French cards: summary, detail, suggestions and override reasons in French', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject({
    method: 'POST',
    url: '/cds-services/melanoma-lesion-triage',
    headers: { 'accept-language': 'fr-FR,fr;q=0.9' },
    payload: patientView({
      lesions: searchset([lesion({ items: { irregularShape: true, sensation: true } })]),
    }),
  });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-language'], 'fr');
  const [card] = res.json().cards;
  t.equal(
    card.summary,
    // The body site in French (the service's labelTranslations), no-break spaces before : and ;.
    'Lésion (avant-bras gauche)\u00a0: une liste des 7 points atteint le seuil\u00a0; envisager un avis dermatologique urgent',
  );
  t.match(
    card.detail,
    /\*\*Liste des 7 points pondérée\u00a0: 3 \(seuil 3\), seuil d’adressage atteint\*\* — Forme irrégulière 2,/,
  );
  t.equal(card.suggestions[0].label, 'Adresser en dermatologie en urgence (suspicion de mélanome)');
  t.equal(card.overrideReasons[0].display, 'Préférence du patient / décision partagée');
  t.match(card.detail, /Aide à la décision seulement/);
});

t.test('over 300 random lesions: every card conforms, stays short, and never says benign', async (t) => {
  const rng = createRng(20261122);
  const names = [
    'changeSize',
    'irregularShape',
    'irregularColour',
    'diameter7mm',
    'inflammation',
    'oozing',
    'sensation',
  ];
  const derm = [
    'atypicalNetwork',
    'blueWhitishVeil',
    'atypicalVascular',
    'irregularStreaks',
    'irregularPigmentation',
  ];
  const exams = Array.from({ length: 300 }, (_, i) => {
    const items: Record<string, boolean> = {};
    for (const n of [...names, ...(rng.bool(0.5) ? derm : [])]) if (rng.bool(0.8)) items[n] = rng.bool(0.3);
    return lesion({ id: `l${i}`, site: `site ${i}`, items: items as LesionSpec['items'] });
  });
  const focuses = evaluateRules(
    melanoma.rules,
    melanoma.focus,
    { lesions: searchset(exams), hookContext: {} },
    NOW,
    () => {},
  );
  let n = 0;
  const counts = { warning: 0, info: 0, none: 0 };
  for (const language of ['en', 'fr'] as const) {
    const cards = renderCards({
      service: melanoma,
      findings: findingsOf(focuses),
      context: { patientId: 'p', userId: 'Practitioner/x' },
      language,
      now: NOW,
      publicUrl: 'https://cds.example.org',
      uuid: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    });
    assertConforms('HookResponse', { cards });
    const text = JSON.stringify(cards);
    t.notMatch(text, /benign|bénin/i, `no "benign" wording in ${language}`);
    if (language === 'en') {
      for (const c of cards) counts[c.indicator as 'warning' | 'info'] += 1;
      counts.none = focuses.length - cards.length;
    }
  }
  // Each examination yields exactly one card: referral, below threshold, or not assessable.
  t.equal(counts.warning + counts.info, 300);
  t.equal(counts.none, 0);
  t.ok(counts.warning > 50 && counts.info > 10, JSON.stringify(counts));
});

t.test(
  'an action built from the focus: a deep copy with top-level changes; create drops identity',
  async (t) => {
    const draft = {
      resourceType: 'MedicationRequest',
      id: 'd1',
      meta: { versionId: '3' },
      identifier: [{ value: 'rx-1' }],
      status: 'draft',
      subject: { reference: 'Patient/p' },
      medicationCodeableConcept: { text: 'Ibuprofen' },
      dispenseRequest: { numberOfRepeatsAllowed: 0 },
    };
    const before = structuredClone(draft);
    const changes = {
      medicationCodeableConcept: { text: 'Gel for {{context.patientId}}' },
      dispenseRequest: null,
      authoredOn: '{{today}}',
      note: '{{focus.label}}',
    };
    const values = { 'context.patientId': 'p', today: '2026-11-22', 'focus.label': undefined };
    const updated = changedFocus(draft, changes, values, 'update', 'en');
    t.same(updated, {
      resourceType: 'MedicationRequest',
      id: 'd1',
      meta: { versionId: '3' },
      identifier: [{ value: 'rx-1' }],
      status: 'draft',
      subject: { reference: 'Patient/p' },
      medicationCodeableConcept: { text: 'Gel for p' },
      authoredOn: '2026-11-22',
    });
    const created = changedFocus(draft, changes, values, 'create', 'en');
    t.same(Object.keys(created), [
      'resourceType',
      'status',
      'subject',
      'medicationCodeableConcept',
      'authoredOn',
    ]);
    t.same(draft, before, 'the focus resource is not modified');
    (updated.subject as { reference: string }).reference = 'Patient/other';
    t.equal(draft.subject.reference, 'Patient/p', 'a deep copy');
  },
);
