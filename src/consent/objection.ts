/**
 * A patient's objection to algorithmic processing, recorded as a FHIR R4 Consent
 * (reference/clinical-codes.md §4). When the record holds one, the service produces no risk card for the
 * patient and the audit records the objection (service, time, pseudonym, Consent id), not clinical data.
 *
 * The rule: a Consent is an objection when
 * - `status` is `active`;
 * - `scope` has the code `patient-privacy` of http://terminology.hl7.org/CodeSystem/consentscope;
 * - `patient` references the patient of the call (when the caller names one);
 * - a provision, top-level or nested, has `type` `deny` and a `purpose` coded
 *   `{base}/CodeSystem/cds-purpose-of-use#algorithmic-decision-support`;
 * - and that provision's `period`, and the periods of the provisions it is nested in, are absent or
 *   cover now (a date without time covers the whole day, month or year it names, in UTC; a bound that
 *   cannot be read does not limit the period, so that an objection is honoured rather than ignored).
 * Anything else (a draft or inactive Consent, a permit, another purpose, an expired period) is not an
 * objection.
 */
import type { Bundle, Consent, ConsentProvision, Period, Resource } from 'fhir/r4.js';
import { SYSTEM } from '../codes.js';

/** Purpose of use of the objection (reference/clinical-codes.md §4, §5). */
export const OBJECTION_PURPOSE = 'algorithmic-decision-support';

/** The earliest and latest instants a FHIR date or dateTime can mean. */
export function instantBounds(value: string): [number, number] {
  const partial = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$/.exec(value);
  if (!partial) {
    const t = Date.parse(value);
    return [t, t];
  }
  const [, y, m, d] = partial;
  const year = Number(y);
  const start = Date.UTC(year, m ? Number(m) - 1 : 0, d ? Number(d) : 1);
  const end = d
    ? Date.UTC(year, Number(m) - 1, Number(d) + 1)
    : m
      ? Date.UTC(year, Number(m), 1)
      : Date.UTC(year + 1, 0, 1);
  return [start, end - 1];
}

/** An unreadable bound does not limit the period: an objection is honoured rather than ignored. */
function covers(period: Period | undefined, now: number): boolean {
  if (period?.start && instantBounds(period.start)[0] > now) return false;
  if (period?.end && instantBounds(period.end)[1] < now) return false;
  return true;
}

function deniesAlgorithmicUse(provision: ConsentProvision | undefined, now: number): boolean {
  if (!provision || !covers(provision.period, now)) return false;
  const denies =
    provision.type === 'deny' &&
    (provision.purpose ?? []).some((p) => p.system === SYSTEM.purposeOfUse && p.code === OBJECTION_PURPOSE);
  return denies || (provision.provision ?? []).some((nested) => deniesAlgorithmicUse(nested, now));
}

function isForPatient(consent: Consent, patientId: string | undefined): boolean {
  if (patientId === undefined) return true;
  const reference = consent.patient?.reference ?? '';
  return reference === `Patient/${patientId}` || reference.endsWith(`/Patient/${patientId}`);
}

function* resourcesIn(items: readonly (Resource | null | undefined)[]): Generator<Resource> {
  for (const item of items) {
    if (!item) continue;
    if (item.resourceType === 'Bundle') {
      yield* resourcesIn(((item as Bundle).entry ?? []).map((e) => e.resource));
    } else yield item;
  }
}

/**
 * Finds the first Consent that records the patient's objection.
 * @param resources resources and Bundles (e.g. the prefetch values)
 * @param now the service clock
 * @param patientId the patient of the call; when given, a Consent about another patient does not count
 * @returns the Consent's id, or null when there is no objection
 */
export function findObjection(
  resources: readonly (Resource | null | undefined)[],
  now: Date,
  patientId?: string,
): { consentId: string } | null {
  const t = now.getTime();
  for (const resource of resourcesIn(resources)) {
    if (resource.resourceType !== 'Consent') continue;
    const consent = resource as Consent;
    const privacy = (consent.scope?.coding ?? []).some(
      (c) => c.system === SYSTEM.consentScope && c.code === 'patient-privacy',
    );
    if (
      consent.status === 'active' &&
      privacy &&
      isForPatient(consent, patientId) &&
      deniesAlgorithmicUse(consent.provision, t)
    ) {
      return { consentId: consent.id ?? '' };
    }
  }
  return null;
}
