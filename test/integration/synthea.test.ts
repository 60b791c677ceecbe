/**
 * The ../shared/synthea patients (41 Synthea R4 records, read in place, never copied into the repo)
 * through the whole service: with the prefetch built from each record, and with no prefetch at all so
 * that every key is fetched from a loopback FHIR server holding all records. Skipped, visibly, when
 * the folder is not beside the checkout.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Condition, Observation, Resource } from 'fhir/r4.js';
import t from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { patientOf, resourcesOf, searchset, toServerForm } from '../../tools/synthetic/bundle.js';
import { assertConforms, buildTestApp } from '../helpers/app.js';
import { startFhirServer } from '../helpers/fhir-server.js';
import { lesion, triageCards } from '../helpers/hook-request.js';

const SYNTHEA = join('..', 'shared', 'synthea');
const URL = '/cds-services/melanoma-lesion-triage';

if (!existsSync(SYNTHEA)) {
  t.comment(`SKIPPED: ${SYNTHEA} not found; the Synthea integration tests need it beside the checkout`);
  t.test('Synthea patients through the service', { skip: `${SYNTHEA} not found` }, () => {});
} else {
  const patients = readdirSync(SYNTHEA)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => toServerForm(JSON.parse(readFileSync(join(SYNTHEA, f), 'utf8')) as Bundle));

  const request = (patientId: string, prefetch?: Record<string, Resource | null>) => ({
    hook: 'patient-view',
    hookInstance: `hook-${patientId}`,
    context: { userId: 'Practitioner/COREPRACTITIONER1', patientId },
    ...(prefetch ? { prefetch } : {}),
  });
  const isLesionExam = (r: Resource) =>
    r.resourceType === 'Observation' &&
    ((r as Observation).code.coding ?? []).some(
      (c) => c.system === SYSTEM.localObservation && c.code === 'lesion-examination',
    );

  t.test(
    'all 41 Synthea patients get a valid answer with the prefetch built from their record',
    async (t) => {
      t.equal(patients.length, 41);
      const { app } = await buildTestApp();
      t.teardown(() => app.close());
      const statuses: number[] = [];
      let cards = 0;
      for (const bundle of patients) {
        const lesions = searchset(resourcesOf(bundle).filter(isLesionExam));
        const res = await app.inject({
          method: 'POST',
          url: URL,
          payload: request(patientOf(bundle).id!, { lesions }),
        });
        statuses.push(res.statusCode);
        assertConforms('HookResponse', res.json());
        cards += res.json().cards.length;
      }
      t.same([...new Set(statuses)], [200]);
      // Synthea records hold no lesion examination: nothing to triage, so no card.
      t.equal(cards, 0);
    },
  );

  t.test(
    'knee OA progression: every knee-OA patient gets a risk card or the reason why not; the others none',
    async (t) => {
      const { app } = await buildTestApp();
      t.teardown(() => app.close());
      const KNEE_CODES = ['39156-5', '29463-7', '8302-2', '72514-3', 'kl-grade'];
      const isKneeOa = (r: Resource) =>
        r.resourceType === 'Condition' &&
        ((r as Condition).code?.coding ?? []).some(
          (c) => (c.system === SYSTEM.snomed && c.code === '239873007') || c.code?.startsWith('M17'),
        );
      const outcomes: Record<string, number> = {};
      const reasons: Record<string, number> = {};
      let kneePatients = 0;
      for (const bundle of patients) {
        const resources = resourcesOf(bundle);
        const of = (type: string) => resources.filter((r) => r.resourceType === type);
        const observations = (of('Observation') as Observation[]).filter((o) =>
          (o.code.coding ?? []).some((c) => KNEE_CODES.includes(c.code ?? '')),
        );
        const res = await app.inject({
          method: 'POST',
          url: '/cds-services/knee-oa-progression',
          payload: request(patientOf(bundle).id!, {
            patient: patientOf(bundle),
            conditions: searchset(of('Condition')),
            observations: searchset(observations),
            consent: searchset(of('Consent')),
          }),
        });
        t.equal(res.statusCode, 200);
        assertConforms('HookResponse', res.json());
        const cards = res.json().cards;
        if (!resources.some(isKneeOa)) {
          t.equal(cards.length, 0, 'no knee OA, no card');
          continue;
        }
        kneePatients += 1;
        t.equal(cards.length, 1, 'one card per knee-OA patient');
        const model = cards[0].extension[EXPLANATION_EXTENSION].model;
        outcomes[model.status] = (outcomes[model.status] ?? 0) + 1;
        if (model.status === 'scored') {
          const sum = model.contributions.reduce(
            (a: number, c: { contribution: number }) => a + c.contribution,
            0,
          );
          t.ok(
            Math.abs(1 / (1 + Math.exp(-(model.baselineLogit + sum))) - model.probability) < 1e-6,
            'additive',
          );
        } else {
          t.equal(model.status, 'not-scored');
          t.ok(model.reasons.length > 0, 'a not-scored card names its reasons');
          for (const r of model.reasons) reasons[r.code] = (reasons[r.code] ?? 0) + 1;
          t.match(cards[0].detail, /\*\*No estimate\*\*: /);
        }
      }
      t.ok(kneePatients > 0, `${kneePatients} knee-OA patients`);
      // The records end years before the test clock, so most inputs are stale today. Seen on the day after
      // each record's last observation, the same patients are scored unless outside the population.
      const atRecordEnd: Record<string, number> = {};
      for (const bundle of patients) {
        const resources = resourcesOf(bundle);
        if (!resources.some(isKneeOa)) continue;
        const of = (type: string) => resources.filter((r) => r.resourceType === type);
        const observations = of('Observation') as Observation[];
        const last = observations
          .map((o) => o.effectiveDateTime ?? '')
          .sort()
          .at(-1)!;
        const { app: then } = await buildTestApp({}, { now: () => new Date(Date.parse(last) + 86_400_000) });
        const res = await then.inject({
          method: 'POST',
          url: '/cds-services/knee-oa-progression',
          payload: request(patientOf(bundle).id!, {
            patient: patientOf(bundle),
            conditions: searchset(of('Condition')),
            observations: searchset(
              observations.filter((o) =>
                (o.code.coding ?? []).some((c) => KNEE_CODES.includes(c.code ?? '')),
              ),
            ),
            consent: searchset(of('Consent')),
          }),
        });
        await then.close();
        const [card, ...rest] = res.json().cards;
        t.equal(rest.length, 0);
        const model = card.extension[EXPLANATION_EXTENSION].model;
        const key =
          model.status === 'scored'
            ? `scored ${model.band.id}`
            : model.reasons.map((r: { code: string }) => r.code).join('+');
        atRecordEnd[key] = (atRecordEnd[key] ?? 0) + 1;
      }
      t.ok(
        (atRecordEnd['scored lower'] ?? 0) +
          (atRecordEnd['scored intermediate'] ?? 0) +
          (atRecordEnd['scored higher'] ?? 0) >
          0,
        'some are scored',
      );
      t.comment(`at each record's end: ${JSON.stringify(atRecordEnd)}`);
      t.comment(
        `knee-OA patients: ${kneePatients}; outcomes ${JSON.stringify(outcomes)}; reasons ${JSON.stringify(reasons)}`,
      );
    },
  );

  t.test('without prefetch, every key is fetched from the FHIR server with the bearer token', async (t) => {
    // Organizations and practitioners recur across records: keep one copy of each.
    const unique = new Map(
      patients.flatMap((b) => resourcesOf(b)).map((r) => [`${r.resourceType}/${r.id}`, r]),
    );
    const resources = [...unique.values()];
    // Give five of the patients a recent lesion examination that reaches the referral threshold.
    const withLesion = patients.slice(0, 5).map((b) => patientOf(b).id!);
    for (const [i, id] of withLesion.entries()) {
      const exam: Observation = lesion({
        id: `synthea-lesion-${i}`,
        items: { changeSize: true, irregularShape: true },
      });
      resources.push({ ...exam, subject: { reference: `Patient/${id}` } } as Observation);
    }
    const server = await startFhirServer({ resources, token: 'synthea-token' });
    t.teardown(() => server.close());
    const { app } = await buildTestApp();
    t.teardown(() => app.close());
    const carded: string[] = [];
    for (const bundle of patients) {
      const id = patientOf(bundle).id!;
      const res = await app.inject({
        method: 'POST',
        url: URL,
        payload: {
          ...request(id),
          fhirServer: server.url,
          fhirAuthorization: {
            access_token: 'synthea-token',
            token_type: 'Bearer',
            expires_in: 300,
            scope: 'patient/Observation.read',
            subject: 'cds',
          },
        },
      });
      t.equal(res.statusCode, 200, id);
      assertConforms('HookResponse', res.json());
      if (triageCards(res.json().cards).length > 0) carded.push(id);
    }
    t.same(carded.sort(), [...withLesion].sort());
    // One request per prefetch key of the service (lesions, patient, conditions, skin, consent).
    t.equal(server.requests.length, 41 * 5);
    t.ok(server.requests.every((r) => r.authorization === 'Bearer synthea-token'));
  });
}
