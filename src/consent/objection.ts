/**
 * A patient's objection to algorithmic processing, read from FHIR R4 Consent resources
 * (reference/clinical-codes.md §4). The rule: a Consent that is `active`, of scope `patient-privacy`,
 * whose `provision.type` is `deny` for the purpose of use "algorithmic processing" (local code system
 * cds-purpose-of-use), and whose provision period, if any, covers now. Anything else (draft, inactive,
 * rejected, expired, another purpose) is not an objection.
 */
import type { Consent } from 'fhir/r4.js';
import { SYSTEM } from '../codes.js';

/** Purpose-of-use code of an objection to algorithmic processing. */
export const OBJECTION_PURPOSE = 'algorithmic-decision-support';

function isConsent(value: unknown): value is Consent {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { resourceType?: unknown }).resourceType === 'Consent'
  );
}

function covers(period: { start?: string; end?: string } | undefined, now: Date): boolean {
  if (!period) return true;
  if (period.start && Date.parse(period.start) > now.getTime()) return false;
  if (period.end && Date.parse(period.end) < now.getTime()) return false;
  return true;
}

/** Resources of a prefetch value: a Bundle's entries, a single resource, or nothing. */
export function resourcesOf(value: unknown): unknown[] {
  if (typeof value !== 'object' || value === null) return [];
  const v = value as { resourceType?: unknown; entry?: { resource?: unknown }[] };
  if (v.resourceType === 'Bundle')
    return (v.entry ?? []).map((e) => e.resource).filter((r) => r !== undefined);
  return [value];
}

/** The first Consent recording an active objection, or null. */
export function findObjection(resources: readonly unknown[], now: Date): { consentId: string } | null {
  for (const consent of resources) {
    if (!isConsent(consent) || consent.status !== 'active') continue;
    const scoped = consent.scope?.coding?.some(
      (c) => c.system === SYSTEM.consentScope && c.code === 'patient-privacy',
    );
    const provision = consent.provision;
    if (!scoped || provision?.type !== 'deny' || !covers(provision.period, now)) continue;
    const purpose = provision.purpose?.some(
      (p) => p.system === SYSTEM.purposeOfUse && p.code === OBJECTION_PURPOSE,
    );
    if (purpose) return { consentId: consent.id ?? '(no id)' };
  }
  return null;
}
