import t from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import type { NotScoredOutcome, ScoredOutcome } from '../../src/scoring/score.js';
import { loadModels } from '../../src/scoring/load.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { auditedCard, feedbackEvent, objectionEvent, serviceCallEvent } from '../../src/audit/events.js';
import { NOW } from '../helpers/app.js';
import { patientView } from '../helpers/hook-request.js';
import { MODEL, SCORED } from '../helpers/scored-outcome.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const service = loadServices(
  'cds-services',
  engine,
  loadValueSets('fhir-profiles'),
  await loadModels('models', engine),
).find((s) => s.definition.id === 'melanoma-lesion-triage')!;
const pseudonymise = (id: string) => `pseudo(${id})`;
const caller = { issuer: 'https://ehr.example', tenant: 't-1' };

const card = (extra: Partial<Card> = {}): Card => ({
  uuid: 'card-1',
  summary: 'Refer',
  detail: 'Long detail with the lesion site',
  indicator: 'warning',
  source: { label: 'NICE' },
  ...extra,
});

t.test(
  'a service call event holds the rule set, inputs, cards and latency; the patient only as a pseudonym',
  async (t) => {
    const event = serviceCallEvent(
      {
        service,
        request: patientView(),
        cards: [
          { card: card({ suggestions: [{ label: 'a', uuid: 's-1' }, { label: 'b' }] }), model: undefined },
        ],
        inputs: { sha256: 'f'.repeat(64), method: 'sha256-raw', references: ['Observation/lesion-1'] },
        caller,
        at: NOW,
        latencyMs: 1.23456,
      },
      pseudonymise,
    );
    t.same(event, {
      kind: 'service-call',
      at: '2026-11-22T09:30:00.000Z',
      serviceId: 'melanoma-lesion-triage',
      pseudonym: 'pseudo(pat-123)',
      payload: {
        hook: 'patient-view',
        hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
        caller,
        service: {
          id: 'melanoma-lesion-triage',
          version: service.definition.version,
          sha256: service.sha256,
        },
        models: [],
        inputs: { sha256: 'f'.repeat(64), method: 'sha256-raw', references: ['Observation/lesion-1'] },
        cards: [{ uuid: 'card-1', indicator: 'warning', summary: 'Refer', suggestions: ['s-1'] }],
        latencyMs: 1.235,
      },
    });
    t.notMatch(JSON.stringify(event), /pat-123"|Long detail/, 'no patient id in clear, no card detail');
  },
);

t.test('a call without a patient has no pseudonym; models given are recorded', async (t) => {
  const request = patientView();
  delete request.context.patientId;
  const models = [{ id: 'm', version: '1', sha256: 'c'.repeat(64) }];
  const event = serviceCallEvent(
    {
      service,
      request,
      cards: [],
      inputs: { sha256: '', method: 'sha256-canonical', references: [] },
      caller,
      at: NOW,
      latencyMs: 1,
      models,
    },
    pseudonymise,
  );
  t.equal(event.pseudonym, null);
  t.same((event.payload as { models: unknown }).models, models);
});

t.test('risk and top factors are taken from the model estimate the card is about', async (t) => {
  const [first, second, third] = SCORED.contributions.slice(0, 3);
  const contributions = [
    { ...first!, id: 'age', value: 70, contribution: 0.1 },
    { ...second!, id: 'bmi', value: 36, contribution: -0.5 },
    { ...third!, id: 'pain', value: 9, contribution: 1.2 },
  ];
  const scored: ScoredOutcome = { ...SCORED, probability: 0.31, contributions };
  t.same(auditedCard({ card: card(), model: scored }), {
    uuid: 'card-1',
    indicator: 'warning',
    summary: 'Refer',
    suggestions: [],
    risk: 0.31,
    // Largest absolute contributions first, as id, value and contribution only.
    topFactors: [
      { id: 'pain', value: 9, contribution: 1.2 },
      { id: 'bmi', value: 36, contribution: -0.5 },
      { id: 'age', value: 70, contribution: 0.1 },
    ],
  });
  const notScored: NotScoredOutcome = {
    status: 'not-scored',
    model: MODEL,
    reasons: [],
    values: [],
    population: SCORED.population,
  };
  const refused = auditedCard({ card: card(), model: notScored });
  t.notOk('risk' in refused || 'topFactors' in refused);
  const rulesOnly = auditedCard({ card: card(), model: undefined });
  t.notOk('risk' in rulesOnly || 'topFactors' in rulesOnly);
  t.equal(auditedCard({ card: { ...card(), uuid: undefined } as Card, model: undefined }).uuid, '');
});

t.test('an objection event names the Consent and no clinical data', async (t) => {
  t.same(
    objectionEvent({ service, request: patientView(), consentId: 'c-9', caller, at: NOW }, pseudonymise),
    {
      kind: 'objection',
      at: '2026-11-22T09:30:00.000Z',
      serviceId: 'melanoma-lesion-triage',
      pseudonym: 'pseudo(pat-123)',
      payload: {
        hook: 'patient-view',
        hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
        consent: 'Consent/c-9',
        caller,
      },
    },
  );
});

t.test('a feedback event keeps what the clinician said and the card pseudonym', async (t) => {
  const reason = { reason: { system: 's', code: 'already-handled' }, userComment: 'done' };
  t.same(
    feedbackEvent(
      'svc',
      { card: 'c', outcome: 'overridden', overrideReason: reason, outcomeTimestamp: 'ts' },
      'p',
      caller,
      NOW,
    ),
    {
      kind: 'feedback',
      at: '2026-11-22T09:30:00.000Z',
      serviceId: 'svc',
      pseudonym: 'p',
      payload: {
        card: 'c',
        outcome: 'overridden',
        acceptedSuggestions: [],
        overrideReason: reason,
        outcomeTimestamp: 'ts',
        caller,
      },
    },
  );
  const accepted = feedbackEvent(
    'svc',
    { card: 'c', outcome: 'accepted', acceptedSuggestions: [{ id: 's' }], outcomeTimestamp: 'ts' },
    null,
    caller,
    NOW,
  );
  t.same((accepted.payload as { acceptedSuggestions: string[] }).acceptedSuggestions, ['s']);
  t.notOk('overrideReason' in accepted.payload);
});
