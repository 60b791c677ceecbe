/**
 * Generated patients (tools/synthetic) through the whole service, fetched from a loopback FHIR server:
 * every lesion examination of the last 90 days gets exactly one card, and the card agrees with a
 * direct count of the checklist items in the record.
 */
import type { Observation } from 'fhir/r4.js';
import t from 'tap';
import { triageCards } from '../helpers/hook-request.js';
import { LESION, SYSTEM } from '../../src/codes.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { patientOf, resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import { generateCohort } from '../../tools/synthetic/patients.js';
import { assertConforms, buildTestApp, NOW } from '../helpers/app.js';
import { startFhirServer } from '../helpers/fhir-server.js';

const MAJOR = new Set<string>([
  LESION.sevenPoint.changeSize,
  LESION.sevenPoint.irregularShape,
  LESION.sevenPoint.irregularColour,
]);
const SEVEN_POINT = new Set<string>(Object.values(LESION.sevenPoint));

/** The weighted 7-point score counted directly from the record (items recorded true). */
function weightedScore(exam: Observation): number | undefined {
  const items = (exam.component ?? []).filter((c) => SEVEN_POINT.has(c.code.coding?.[0]?.code ?? ''));
  const diameter = (exam.component ?? []).find((c) => c.code.coding?.[0]?.code === LESION.maxDiameter);
  const hasDiameterItem = items.some((c) => c.code.coding?.[0]?.code === LESION.sevenPoint.diameter7mm);
  if (items.length === 0 && !diameter) return undefined;
  let score = items.reduce(
    (sum, c) => sum + (c.valueBoolean ? (MAJOR.has(c.code.coding![0]!.code!) ? 2 : 1) : 0),
    0,
  );
  if (!hasDiameterItem && (diameter?.valueQuantity?.value ?? 0) >= 7) score += 1;
  return score;
}

t.test(
  '60 generated patients with lesions: one card per recent examination, scores match the record',
  async (t) => {
    const cohort = generateCohort({ seed: 7, count: 60, now: NOW, lesions: 2 }).map((b) => toServerForm(b));
    const unique = new Map(
      cohort.flatMap((b) => resourcesOf(b)).map((r) => [`${r.resourceType}/${r.id}`, r]),
    );
    const server = await startFhirServer({ resources: [...unique.values()], token: 'gen-token' });
    t.teardown(() => server.close());
    const { app } = await buildTestApp();
    t.teardown(() => app.close());

    let exams = 0;
    let mismatches = 0;
    const indicators: Record<string, number> = {};
    for (const bundle of cohort) {
      const patientId = patientOf(bundle).id!;
      const recent = resourcesOf(bundle).filter(
        (r): r is Observation =>
          r.resourceType === 'Observation' &&
          (r as Observation).code.coding?.some(
            (c) => c.system === SYSTEM.localObservation && c.code === LESION.panel,
          ) === true &&
          Date.parse((r as Observation).effectiveDateTime!) >= NOW.getTime() - 90 * 86_400_000,
      );
      const res = await app.inject({
        method: 'POST',
        url: '/cds-services/melanoma-lesion-triage',
        payload: {
          hook: 'patient-view',
          hookInstance: `gen-${patientId}`,
          context: { userId: 'Practitioner/p1', patientId },
          fhirServer: server.url,
          fhirAuthorization: {
            access_token: 'gen-token',
            token_type: 'Bearer',
            expires_in: 60,
            scope: 's',
            subject: 'c',
          },
        },
      });
      t.equal(res.statusCode, 200);
      assertConforms('HookResponse', res.json());
      const cards = triageCards(res.json().cards);
      exams += recent.length;
      if (cards.length !== recent.length) mismatches += 1;
      for (const card of cards) {
        indicators[card.indicator] = (indicators[card.indicator] ?? 0) + 1;
        const explanation = card.extension[EXPLANATION_EXTENSION];
        const exam = recent.find((e) => `Observation/${e.id}` === explanation.focus.reference)!;
        const expected = weightedScore(exam);
        if (explanation.rules[0].score !== expected) mismatches += 1;
        if ((expected !== undefined && expected >= 3) !== (explanation.rules[0].status === 'fired'))
          mismatches += 1;
      }
    }
    t.equal(mismatches, 0);
    t.ok(exams > 30, `${exams} recent examinations`);
    t.ok((indicators.warning ?? 0) > 5 && (indicators.info ?? 0) > 0, JSON.stringify(indicators));
  },
);
