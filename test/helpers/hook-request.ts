/**
 * Builders for CDS Hooks requests and the FHIR resources the bundled services read, so each test
 * states only what it is about.
 */
import type { Bundle, FhirResource, Observation } from 'fhir/r4.js';
import type { HookRequest } from '../../src/cds-hooks.js';
import { LESION, SYSTEM } from '../../src/codes.js';

export const PATIENT_ID = 'pat-123';

export function patientView(
  prefetch?: HookRequest['prefetch'],
  extra: Partial<HookRequest> = {},
): HookRequest {
  return {
    hook: 'patient-view',
    hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
    context: { userId: 'Practitioner/prac-1', patientId: PATIENT_ID },
    ...(prefetch === undefined ? {} : { prefetch }),
    ...extra,
  };
}

export function searchset(resources: FhirResource[]): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: resources.length,
    entry: resources.map((resource) => ({ fullUrl: `${resource.resourceType}/${resource.id}`, resource })),
  };
}

type SevenPoint = keyof typeof LESION.sevenPoint;
type Dermoscopy = keyof typeof LESION.dermoscopy;

export interface LesionSpec {
  id?: string;
  site?: string;
  date?: string;
  /** Items recorded: true present, false absent; items left out are not recorded. */
  items?: Partial<Record<SevenPoint | Dermoscopy, boolean>>;
  diameterMm?: number;
  status?: Observation['status'];
}

/** One lesion examination Observation as documented in src/codes.ts. */
export function lesion(spec: LesionSpec = {}): Observation {
  const code = (c: string) => ({ coding: [{ system: SYSTEM.localObservation, code: c }] });
  const components: NonNullable<Observation['component']> = [];
  for (const [name, present] of Object.entries(spec.items ?? {})) {
    const c =
      (LESION.sevenPoint as Record<string, string>)[name] ??
      (LESION.dermoscopy as Record<string, string>)[name];
    components.push({ code: code(c!), valueBoolean: present });
  }
  if (spec.diameterMm !== undefined) {
    components.push({
      code: code(LESION.maxDiameter),
      valueQuantity: { value: spec.diameterMm, unit: 'mm', system: SYSTEM.ucum, code: 'mm' },
    });
  }
  return {
    resourceType: 'Observation',
    id: spec.id ?? 'lesion-1',
    status: spec.status ?? 'final',
    category: [{ coding: [{ system: SYSTEM.observationCategory, code: 'exam' }] }],
    code: code(LESION.panel),
    subject: { reference: `Patient/${PATIENT_ID}` },
    effectiveDateTime: spec.date ?? '2026-11-20T10:00:00Z',
    bodySite: { text: spec.site ?? 'left forearm' },
    component: components,
  };
}

/**
 * The checklist cards of the melanoma service (topic melanoma-triage): tests about the published
 * checklists leave out the separate card of the demonstration risk model.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- cards parsed from JSON in tests
export function triageCards(cards: readonly any[]): any[] {
  return cards.filter(
    (c) => (c as { source?: { topic?: { code?: string } } }).source?.topic?.code === 'melanoma-triage',
  );
}
