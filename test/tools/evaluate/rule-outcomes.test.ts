/**
 * The PPV of a rule's card (issue 19): melanoma referral cards (`refer`, whose template defines a
 * histology outcome) are issued to a seeded cohort, accepted or overridden, and linked by
 * `npm run evaluate` to follow-up histology drawn by tools/synthetic/follow-up.ts, whose truth the test
 * knows: the PPV, overall and by feedback, equals a count made here from the responses and that truth;
 * small cells are suppressed; nothing identifying reaches the report.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Resource } from 'fhir/r4.js';
import t from 'tap';
import type { Card } from '../../../src/cds-hooks.js';
import { SYSTEM } from '../../../src/codes.js';
import type { GovernanceReport, RuleSection } from '../../../src/governance/report.js';
import { createFhirPath } from '../../../src/rules/fhirpath.js';
import { loadModel } from '../../../src/scoring/load.js';
import { evidenceOf } from '../../../tools/evaluate/linkage.js';
import { runEvaluate } from '../../../tools/evaluate/main.js';
import { readCardOutcomes, ruleStatsOf, type RuleCard } from '../../../tools/evaluate/rule-outcomes.js';
import { answerLocally, fillTemplate } from '../../../tools/cli/prefetch.js';
import { resourcesOf, toServerForm } from '../../../tools/synthetic/bundle.js';
import { followUpOf, type FollowUp } from '../../../tools/synthetic/follow-up.js';
import { generatePatient } from '../../../tools/synthetic/patients.js';
import { createRng } from '../../../tools/synthetic/random.js';
import { buildTestApp, NOW, tempDir } from '../../helpers/app.js';

const SEED = 20261206;
const PATIENTS = 60;
const URL = '/cds-services/melanoma-lesion-triage';

const capture = () => {
  let text = '';
  return { write: (s: string) => (text += s), text: () => text };
};

/** The melanoma patient-view call of a generated patient, its prefetch answered from its own record. */
function melanomaRequest(bundle: Bundle, templates: Record<string, string>) {
  const resources = resourcesOf(toServerForm(bundle));
  const patientId = resources.find((r: Resource) => r.resourceType === 'Patient')!.id!;
  const context = { userId: 'Practitioner/p1', patientId };
  const prefetch: Record<string, unknown> = {};
  for (const [key, template] of Object.entries(templates)) {
    const answer = answerLocally(fillTemplate(template, context)!, resources);
    if (answer.ok) prefetch[key] = answer.value;
  }
  return { hook: 'patient-view', hookInstance: '2c3d1f0e-8d4b-4f5e-9d7a-0b1c2d3e4f50', context, prefetch };
}

interface Issued {
  patientId: string;
  feedback: 'accepted' | 'overridden' | null;
}

t.test('the PPV of the melanoma referral card equals the count of the known truth', async (t) => {
  const dataDir = tempDir('cds-rule-ppv-data-');
  const { app } = await buildTestApp({ dataDir });
  const model = await loadModel(join('models', 'melanoma-risk', '1.0.0'), createFhirPath());
  t.teardown(() => model.session.release());
  const discovery = (await app.inject({ method: 'GET', url: '/cds-services' })).json() as {
    services: { id: string; prefetch: Record<string, string> }[];
  };
  const templates = discovery.services.find((s) => s.id === 'melanoma-lesion-triage')!.prefetch;

  const issued: Issued[] = [];
  const truth = new Map<string, FollowUp>();
  const ids: string[] = [];
  for (let i = 0; i < PATIENTS; i += 1) {
    const bundle = generatePatient(createRng(SEED, i), { lesions: 1 + (i % 3), now: NOW });
    const payload = melanomaRequest(bundle, templates);
    ids.push(payload.context.patientId);
    const res = await app.inject({ method: 'POST', url: URL, payload });
    t.equal(res.statusCode, 200);
    const referrals = (res.json().cards as Card[]).filter((c) => c.indicator === 'warning');
    for (const card of referrals) {
      // Feedback by turn: accepted, overridden, none.
      const turn = issued.length % 3;
      const feedback = turn === 0 ? 'accepted' : turn === 1 ? 'overridden' : null;
      if (feedback) {
        const item =
          feedback === 'accepted'
            ? { acceptedSuggestions: [{ id: card.suggestions![0]!.uuid }] }
            : { overrideReason: { reason: { system: SYSTEM.overrideReason, code: 'patient-preference' } } };
        const fb = await app.inject({
          method: 'POST',
          url: `${URL}/feedback`,
          payload: {
            feedback: [
              { card: card.uuid, outcome: feedback, outcomeTimestamp: '2026-11-22T09:35:00Z', ...item },
            ],
          },
        });
        t.equal(fb.statusCode, 200);
      }
      issued.push({ patientId: payload.context.patientId, feedback });
    }
    const followUp = await followUpOf(model, bundle, SEED, i, NOW);
    if (followUp) truth.set(followUp.patientId, followUp);
  }
  await app.close();

  // One referred patient's follow-up is left out: the outcome of their cards is unknown.
  const missing = issued.find((c) => truth.has(c.patientId))!.patientId;
  const recorded = [...truth.values()].filter((f) => f.patientId !== missing);
  const fhir = tempDir('cds-rule-ppv-fhir-');
  writeFileSync(
    join(fhir, 'DiagnosticReport.ndjson'),
    recorded.flatMap((f) => f.resources.map((r) => `${JSON.stringify(r)}\n`)).join(''),
  );

  // The independent count: per card, the truth of its patient's follow-up.
  const count = (feedback?: 'accepted' | 'overridden') => {
    const cards = issued.filter(
      (c) => (feedback === undefined || c.feedback === feedback) && c.patientId !== missing,
    );
    const known = cards.filter((c) => truth.has(c.patientId));
    const positive = known.filter((c) => truth.get(c.patientId)!.outcome === 1).length;
    return { known: known.length, positive };
  };
  const all = count();
  const accepted = count('accepted');
  const overridden = count('overridden');
  t.ok(issued.length >= 15, `${issued.length} referral cards`);
  t.ok(all.positive > 0 && all.positive < all.known, `${all.positive} of ${all.known} with melanoma`);
  t.ok(accepted.known > 0 && overridden.known > 0);
  t.comment(
    `referral cards ${issued.length}; known ${all.known} (melanoma ${all.positive}); accepted ${accepted.known} (${accepted.positive}); overridden ${overridden.known} (${overridden.positive})`,
  );

  const evaluate = async (minCell: number) => {
    const out = tempDir('cds-rule-ppv-out-');
    const stderr = capture();
    const code = await runEvaluate(
      [
        '--store',
        join(dataDir, 'audit.sqlite'),
        '--fhir',
        fhir,
        '--from',
        '2026-11-01',
        '--to',
        '2026-12-01',
        '--out',
        out,
        '--min-cell',
        String(minCell),
      ],
      {},
      capture(),
      stderr,
      () => NOW,
    );
    t.equal(code, 0, stderr.text());
    const json = readFileSync(join(out, 'report.json'), 'utf8');
    const report = JSON.parse(json) as GovernanceReport;
    const refer = report.rules.find(
      (r) => r.serviceId === 'melanoma-lesion-triage' && r.template === 'refer',
    ) as RuleSection;
    const html = readFileSync(join(out, 'report.en.html'), 'utf8');
    return {
      refer,
      json,
      html,
      fr: readFileSync(join(out, 'report.fr.html'), 'utf8'),
      stderr: stderr.text(),
    };
  };

  const value = (rate: RuleSection['ppv']) => (rate !== null && rate !== 'suppressed' ? rate.value : rate);
  const shown = await evaluate(1);
  t.equal(shown.refer.cardsShown, issued.length);
  t.equal(shown.refer.outcomeKnown, all.known);
  t.equal(value(shown.refer.ppv), all.positive / all.known);
  t.equal(value(shown.refer.ppvAccepted), accepted.positive / accepted.known);
  t.equal(value(shown.refer.ppvOverridden), overridden.positive / overridden.known);
  t.same(shown.refer.outcome, {
    label: {
      en: 'melanoma confirmed by histology (ICD-10 C43) within 3 months',
      fr: 'mélanome confirmé par l’histologie (CIM-10 C43) dans les 3 mois',
    },
    horizonMonths: 3,
  });
  // Every rule card counts (the checklist cards below the threshold too); the referrals have an outcome.
  t.match(
    shown.stderr,
    new RegExp(
      `evaluate: \\d+ rule cards, ${issued.length} of templates with an outcome, ${all.known} with a known outcome`,
    ),
  );
  // The other templates define no outcome.
  for (const r of JSON.parse(shown.json).rules as RuleSection[])
    if (r.template !== 'refer') t.same([r.outcome, r.ppv, r.ppvAccepted], [null, null, null], r.template);
  t.match(shown.html, 'melanoma confirmed by histology (ICD-10 C43) within 3 months');
  t.match(shown.html, `${((100 * all.positive) / all.known).toFixed(1)} %`);
  t.match(shown.fr, 'cartes écartées');

  // Nothing identifying: no patient id, pseudonym or date other than the period and the report's day.
  for (const text of [shown.json, shown.html]) {
    for (const id of ids) t.notOk(text.includes(id), 'no patient id');
    t.notMatch(text, /[0-9a-f]{64}|pseudonym/);
    const dates = new Set(text.match(/\d{4}-\d{2}-\d{2}/g));
    t.same([...dates].sort(), ['2026-11-01', '2026-11-22', '2026-12-01']);
  }

  // A minimum cell of the melanomas found: the overall PPV is shown; the accepted cards hold fewer of
  // them, so their PPV is suppressed, and the overridden cards' with it (complementary suppression).
  const min = all.positive;
  t.ok(min <= all.known - all.positive, `min cell ${min} leaves the overall shown`);
  t.ok(accepted.positive > 0 && accepted.positive < min, `${accepted.positive} melanomas after acceptance`);
  const small = await evaluate(min);
  t.equal(value(small.refer.ppv), all.positive / all.known);
  t.equal(small.refer.ppvAccepted, 'suppressed');
  t.equal(small.refer.ppvOverridden, 'suppressed');
  t.match(small.html, /accepted cards: <span class="suppressed">suppressed<\/span>/);
  const broken = tempDir('cds-rule-ppv-broken-');
  writeFileSync(join(broken, 'a.yaml'), 'id: [unclosed');
  const err = capture();
  const bad = await runEvaluate(
    [
      ...['--store', join(dataDir, 'audit.sqlite'), '--fhir', fhir, '--from', '2026-11-01'],
      ...['--to', '2026-12-01', '--out', tempDir(), '--services-dir', broken],
    ],
    {},
    capture(),
    err,
    () => NOW,
  );
  t.equal(bad, 2);
  t.match(err.text(), /evaluate: cannot read the service definitions: a\.yaml: YAML: /);
  const none = await evaluate(all.known + 1);
  t.same([none.refer.ppv, none.refer.outcomeKnown], ['suppressed', 'suppressed']);
});

t.test('card outcomes: one per service of a file with several hooks; counts by feedback', async (t) => {
  const outcomes = readCardOutcomes('cds-services', createFhirPath());
  t.same([...outcomes.keys()].sort(), [
    'melanoma-lesion-triage|refer',
    'nsaid-safety-order-select|serious',
    'nsaid-safety-order-sign|serious',
  ]);
  const card = (
    pseudonym: string | null,
    feedback: RuleCard['feedback'],
    template = 'serious',
  ): RuleCard => ({
    serviceId: 'nsaid-safety-order-sign',
    template,
    pseudonym,
    issuedAt: '2026-11-22T09:30:00.000Z',
    feedback,
    reasonCode: feedback === 'overridden' ? 'patient-preference' : null,
  });
  const at = (iso: string) => Date.parse(iso);
  // a: the outcome in 2 months; b: follow-up after 3 months without it; c: only follow-up within 3 months.
  const evidence: Record<string, { at: number; shows: boolean }[]> = {
    a: [{ at: at('2027-01-22T00:00:00Z'), shows: true }],
    b: [{ at: at('2027-03-01T00:00:00Z'), shows: false }],
    c: [{ at: at('2026-12-22T00:00:00Z'), shows: false }],
  };
  const stats = ruleStatsOf(
    [
      card('a', 'overridden'),
      card('b', 'overridden'),
      card('a', 'accepted'),
      card('c', 'accepted'),
      card(null, null),
      card('d', null),
      card('b', null, 'caution'),
    ],
    outcomes,
    (pseudonym) => evidence[pseudonym],
  );
  const serious = stats.find((s) => s.template === 'serious')!;
  t.same(serious.withOutcome, {
    known: 3,
    positive: 2,
    accepted: { known: 1, positive: 1 },
    overridden: { known: 2, positive: 1 },
  });
  t.same([serious.cardsShown, serious.accepted, serious.overridden], [6, 2, 2]);
  t.same(serious.overrideReasons, { 'patient-preference': 2 });
  const caution = stats.find((s) => s.template === 'caution')!;
  t.same([caution.withOutcome, caution.outcome], [undefined, undefined]);

  // The NSAID card's outcome on the Conditions that may show it (the generator writes none).
  const nsaid = outcomes.get('nsaid-safety-order-sign|serious')!;
  const condition = (system: string, code: string, verification?: string) => ({
    resourceType: 'Condition' as const,
    subject: { reference: 'Patient/x' },
    code: { coding: [{ system, code }] },
    ...(verification && { verificationStatus: { coding: [{ code: verification }] } }),
    onsetDateTime: '2027-01-10T00:00:00Z',
  });
  const shows = (c: ReturnType<typeof condition>) => evidenceOf(c, nsaid, NOW)?.shows;
  t.same(
    [
      shows(condition(SYSTEM.icd10, 'N17.9')),
      shows(condition(SYSTEM.icd10, 'K92.2')),
      shows(condition(SYSTEM.snomed, '14669001')),
      shows(condition(SYSTEM.snomed, '37372002')),
      shows(condition(SYSTEM.icd10, 'N17.9', 'refuted')),
      shows(condition(SYSTEM.icd10, 'N18.3')),
      shows(condition(SYSTEM.snomed, '239873007')),
    ],
    [true, true, true, true, false, false, false],
  );
  t.equal(evidenceOf(condition(SYSTEM.icd10, 'N17.9'), nsaid, NOW)?.at, Date.parse('2027-01-10T00:00:00Z'));

  const broken = tempDir('cds-rule-ppv-services-');
  mkdirSync(join(broken, 'sub'));
  writeFileSync(join(broken, 'a.yaml'), 'id: x\n');
  t.throws(() => readCardOutcomes(broken, createFhirPath()), {
    message: /^a\.yaml#: must have required property/,
  });
  t.same(readCardOutcomes(join(broken, 'none'), createFhirPath()).size, 0, 'no folder, no outcome');
});
