/**
 * The ordering-hook services on the ../shared/synthea patients (41 Synthea R4 records, read in place):
 * for each patient, an oral NSAID, an anticoagulant and a paracetamol draft order in several
 * combinations, on order-sign and order-select. The cards must appear exactly when a rule fires, which
 * this test decides on its own from the record (a second implementation of the rules, in TypeScript,
 * reading the same value sets). Skipped, visibly, when the folder is not beside the checkout.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Coding, Condition, MedicationRequest, Observation, Resource } from 'fhir/r4.js';
import t from 'tap';
import type { Card, HookRequest } from '../../src/cds-hooks.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { patientOf, resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import {
  type DrugKey,
  medicationRequest,
  orderPrefetch,
  orderSelectRequest,
  orderSignRequest,
} from '../../tools/synthetic/orders.js';
import { assertConforms, buildTestApp, NOW } from '../helpers/app.js';
import { startFhirServer } from '../helpers/fhir-server.js';

const SYNTHEA = join('..', 'shared', 'synthea');

if (!existsSync(SYNTHEA)) {
  t.comment(`SKIPPED: ${SYNTHEA} not found; the Synthea ordering tests need it beside the checkout`);
  t.test('Synthea patients through the ordering services', { skip: `${SYNTHEA} not found` }, () => {});
} else {
  const patients = readdirSync(SYNTHEA)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => toServerForm(JSON.parse(readFileSync(join(SYNTHEA, f), 'utf8')) as Bundle));
  const VS = loadValueSets('fhir-profiles');
  const inSet = (set: string, codings: Coding[] | undefined) =>
    (codings ?? []).some((c) => VS.contains(set, c.system ?? '', c.code ?? ''));
  const statusIn = (concept: { coding?: Coding[] } | undefined, codes: string[]) =>
    (concept?.coding ?? []).some((c) => codes.includes(c.code ?? ''));

  /** A month of the services' freshness windows (src/rules/evaluate.ts). */
  const MONTH_MS = (365.25 / 12) * 86_400_000;

  /** The NSAID risk factors of a record, decided here without FHIRPath. */
  function expectedFactors(
    resources: Resource[],
    id: string,
  ): { factors: string[]; staleEgfr: boolean; staleEgfrAtRisk: boolean } {
    const own = resources.filter((r) => ((r as Observation).subject?.reference ?? '') === `Patient/${id}`);
    const birth = patientOf({
      resourceType: 'Bundle',
      type: 'collection',
      entry: resources.map((resource) => ({ resource })),
    }).birthDate!;
    const [y, m, d] = birth.split('-').map(Number) as [number, number, number];
    const [ny, nm, nd] = [NOW.getUTCFullYear(), NOW.getUTCMonth() + 1, NOW.getUTCDate()];
    const age = ny - y - (nm * 100 + nd < m * 100 + d ? 1 : 0);
    const egfrs = (own.filter((r) => r.resourceType === 'Observation') as Observation[])
      .filter(
        (o) =>
          ['final', 'amended', 'corrected'].includes(o.status) &&
          inSet('egfr', o.code.coding) &&
          o.effectiveDateTime !== undefined &&
          ['mL/min/{1.73_m2}', 'mL/min'].some(
            (u) => o.valueQuantity?.code === u || o.valueQuantity?.unit === u,
          ),
      )
      .sort((a, b) => Date.parse(b.effectiveDateTime!) - Date.parse(a.effectiveDateTime!));
    // The eGFR window of nsaid-safety.yaml: 12 months of 365.25/12 days. An older eGFR is stale: the eGFR
    // rules are not evaluated and the record's eGFR is no factor (the renal-function card says so).
    const latest = egfrs[0];
    const stale =
      latest !== undefined && NOW.getTime() - Date.parse(latest.effectiveDateTime!) > 12 * MONTH_MS;
    const egfr = stale ? undefined : latest?.valueQuantity?.value;
    const active = (own.filter((r) => r.resourceType === 'MedicationRequest') as MedicationRequest[]).filter(
      (m) => m.status === 'active',
    );
    const conditions = (own.filter((r) => r.resourceType === 'Condition') as Condition[]).filter(
      (c) => !statusIn(c.verificationStatus, ['refuted', 'entered-in-error']),
    );
    const activeIn = (set: string) => active.some((m) => inSet(set, m.medicationCodeableConcept?.coding));
    const stillActive = (c: Condition) => !statusIn(c.clinicalStatus, ['inactive', 'remission', 'resolved']);
    // In the order of the rules of cds-services/nsaid-safety.yaml (pregnancy and the diclofenac/coxib
    // contraindication cannot fire: the records hold no pregnancy data and the draft is naproxen).
    const factors: string[] = [];
    if (activeIn('anticoagulant')) factors.push('anticoagulant');
    if (egfr !== undefined && egfr < 30) factors.push('egfrBelow30');
    if (conditions.some((c) => stillActive(c) && inSet('heart-failure', c.code?.coding)))
      factors.push('heartFailure');
    if (activeIn('ace-inhibitor-arb') && activeIn('diuretic')) factors.push('tripleWhammy');
    if (egfr !== undefined && egfr >= 30 && egfr < 60) factors.push('egfr30to59');
    if (age >= 75) factors.push('age75');
    if (age >= 65 && age < 75) factors.push('age65to74');
    if (activeIn('antiplatelet')) factors.push('antiplatelet');
    if (activeIn('ssri-snri')) factors.push('ssriSnri');
    if (activeIn('systemic-corticosteroid')) factors.push('corticosteroid');
    if (conditions.some((c) => inSet('gi-bleed-history', c.code?.coding))) factors.push('giBleedHistory');
    // The stale-eGFR calibration of nsaid-safety.yaml (rule renalRecheck): an old eGFR asks for a new one
    // only when it was below 60 or with a renal risk factor (age 65 or over, heart failure, an ACE
    // inhibitor or ARB, a diuretic).
    const renalRisk =
      (latest?.valueQuantity?.value ?? 0) < 60 ||
      age >= 65 ||
      factors.includes('heartFailure') ||
      activeIn('ace-inhibitor-arb') ||
      activeIn('diuretic');
    return { factors, staleEgfr: stale, staleEgfrAtRisk: stale && renalRisk };
  }

  /** The risk factors that fired (the rules with role context only adapt the card). */
  const fired = (card: Card) =>
    (card.extension![EXPLANATION_EXTENSION] as { rules: { id: string; status: string }[] }).rules
      .filter(
        (r) =>
          r.status === 'fired' && !['vitaminKAntagonist', 'weightBelow50', 'renalRecheck'].includes(r.id),
      )
      .map((r) => r.id);
  const focusOf = (card: Card) =>
    (card.extension![EXPLANATION_EXTENSION] as { focus: { reference: string } }).focus.reference;
  const drafts = (id: string, drugs: DrugKey[]) =>
    drugs.map((drug, i) => medicationRequest({ id: `${drug}-${i}`, drug, patientId: id }));

  t.test('NSAID, anticoagulant and paracetamol drafts: cards exactly when a rule fires', async (t) => {
    t.equal(patients.length, 41);
    const { app } = await buildTestApp();
    t.teardown(() => app.close());
    const post = async (url: string, payload: HookRequest): Promise<Card[]> => {
      const res = await app.inject({ method: 'POST', url, payload });
      t.equal(res.statusCode, 200);
      assertConforms('HookResponse', res.json());
      return res.json().cards;
    };
    const tally = { withFactors: 0, critical: 0, warning: 0, none: 0, staleEgfr: 0, renalCards: 0, cards: 0 };
    for (const bundle of patients) {
      const id = patientOf(bundle).id!;
      const resources = resourcesOf(bundle);
      const prefetch = orderPrefetch(resources, id);
      const { factors: expected, staleEgfr, staleEgfrAtRisk } = expectedFactors(resources, id);
      const sign = (drugs: DrugKey[]) =>
        post(
          '/cds-services/nsaid-safety-order-sign',
          orderSignRequest({ patientId: id, drafts: drafts(id, drugs), prefetch }),
        );

      // An NSAID (the Synthea naproxen product) beside paracetamol: a card iff the record holds a factor.
      const all = await sign(['naproxenSodium', 'paracetamol']);
      const critical = ['anticoagulant', 'egfrBelow30', 'heartFailure', 'tripleWhammy'].some((f) =>
        expected.includes(f),
      );
      // A stale eGFR at renal risk beside no critical factor: a card of its own asks for a current one.
      const renal = all.filter((c) => c.summary.includes('renal function unknown'));
      t.equal(
        renal.length,
        staleEgfrAtRisk && !critical ? 1 : 0,
        `${id}: renal-function card iff stale eGFR at renal risk`,
      );
      if (staleEgfr) tally.staleEgfr += 1;
      if (renal.length > 0) {
        t.equal(renal[0]!.indicator, 'warning');
        tally.renalCards += 1;
      }
      tally.cards += all.length;
      const cards = all.filter((c) => !renal.includes(c));
      // Age 65-74 counts only with another factor (NICE CKS).
      if (expected.filter((f) => f !== 'age65to74').length === 0) {
        t.same(cards, [], `${id}: no factor, no card`);
        tally.none += 1;
      } else {
        t.equal(cards.length, 1, `${id}: one card`);
        t.same(fired(cards[0]!), expected, `${id}: the factors of the record`);
        t.equal(cards[0]!.indicator, critical ? 'critical' : 'warning', `${id}: indicator`);
        t.equal(focusOf(cards[0]!), 'MedicationRequest/naproxenSodium-0');
        tally.withFactors += 1;
        tally[critical ? 'critical' : 'warning'] += 1;
      }
      // Adding an anticoagulant draft to the same orders always makes the NSAID card critical.
      const withWarfarin = await sign(['ibuprofen', 'warfarin', 'paracetamol']);
      t.equal(withWarfarin.length, 1, `${id}: NSAID + anticoagulant`);
      t.equal(withWarfarin[0]!.indicator, 'critical');
      t.ok(fired(withWarfarin[0]!).includes('anticoagulant'));
      // Without an NSAID there is nothing to say.
      t.same(await sign(['warfarin', 'paracetamol']), [], `${id}: no NSAID, no card`);
      // order-select: only the selection is checked.
      const selectOrders = drafts(id, ['naproxenSodium', 'paracetamol']);
      t.same(
        await post(
          '/cds-services/nsaid-safety-order-select',
          orderSelectRequest({
            patientId: id,
            drafts: selectOrders,
            selections: ['MedicationRequest/paracetamol-1'],
            prefetch,
          }),
        ),
        [],
        `${id}: paracetamol selected`,
      );
    }
    t.comment(`Synthea patients with an NSAID risk factor: ${JSON.stringify(tally)}`);
    // The data hold both kinds: the check above is not vacuous.
    t.ok(tally.critical > 0 && tally.warning > 0 && tally.none > 0, JSON.stringify(tally));
  });

  t.test('without prefetch, the order services fetch what they need and answer the same', async (t) => {
    const unique = new Map(
      patients.flatMap((b) => resourcesOf(b)).map((r) => [`${r.resourceType}/${r.id}`, r]),
    );
    const server = await startFhirServer({ resources: [...unique.values()], token: 'synthea-token' });
    t.teardown(() => server.close());
    const { app } = await buildTestApp();
    t.teardown(() => app.close());
    let compared = 0;
    for (const bundle of patients.slice(0, 15)) {
      const id = patientOf(bundle).id!;
      const orders = drafts(id, ['ibuprofen', 'valproate', 'paracetamol']);
      for (const service of ['nsaid-safety-order-sign', 'valproate-pregnancy-prevention-order-sign']) {
        const url = `/cds-services/${service}`;
        const withPrefetch = await app.inject({
          method: 'POST',
          url,
          payload: orderSignRequest({
            patientId: id,
            drafts: orders,
            prefetch: orderPrefetch(resourcesOf(bundle), id),
          }),
        });
        const fetched = await app.inject({
          method: 'POST',
          url,
          payload: {
            ...orderSignRequest({ patientId: id, drafts: orders }),
            fhirServer: server.url,
            fhirAuthorization: {
              access_token: 'synthea-token',
              token_type: 'Bearer',
              expires_in: 300,
              scope: 'patient/*.read',
              subject: 'cds',
            },
          },
        });
        t.equal(fetched.statusCode, 200, `${service} ${id}`);
        const strip = (cards: Card[]) => cards.map((c) => [c.indicator, c.summary, fired(c)]);
        t.same(strip(fetched.json().cards), strip(withPrefetch.json().cards), `${service} ${id}`);
        compared += withPrefetch.json().cards.length;
      }
    }
    t.ok(compared > 0, 'some cards were compared');
    t.ok(server.requests.every((r) => r.authorization === 'Bearer synthea-token'));
  });
}
