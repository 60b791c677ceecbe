/**
 * A knee-OA `patient-view` call as large as asked: the patient, a knee OA Condition, an empty Consent
 * search and as many BMI Observations (LOINC 39156-5, one a day going back) as fill the size. Every
 * Observation is read by the rules and the model's features: the worst case of a body of that size.
 * Used to measure what a body costs in memory (`npm run bench:memory`) and by the test that a process
 * under the documented heap survives concurrent bodies of the largest size.
 */
const PATIENT_ID = 'large-body-patient';

function observation(i: number): string {
  const day = new Date(Date.UTC(2026, 10, 1) - i * 86_400_000).toISOString().slice(0, 10);
  return JSON.stringify({
    fullUrl: `Observation/bmi-${i}`,
    resource: {
      resourceType: 'Observation',
      id: `bmi-${i}`,
      status: 'final',
      category: [
        {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' },
          ],
        },
      ],
      code: { coding: [{ system: 'http://loinc.org', code: '39156-5', display: 'Body mass index' }] },
      subject: { reference: `Patient/${PATIENT_ID}` },
      effectiveDateTime: `${day}T09:00:00Z`,
      valueQuantity: {
        value: 27 + (i % 50) / 10,
        unit: 'kg/m2',
        system: 'http://unitsofmeasure.org',
        code: 'kg/m2',
      },
    },
  });
}

/** The JSON text of a call of about `bytes` bytes (never more). */
export function largeKneeOaBody(bytes: number, hookInstance = 'large-body'): string {
  const head = JSON.stringify({
    hook: 'patient-view',
    hookInstance,
    context: { userId: 'Practitioner/p1', patientId: PATIENT_ID },
    prefetch: {
      patient: { resourceType: 'Patient', id: PATIENT_ID, gender: 'female', birthDate: '1958-03-01' },
      conditions: {
        resourceType: 'Bundle',
        type: 'searchset',
        entry: [
          {
            resource: {
              resourceType: 'Condition',
              id: 'knee-oa',
              clinicalStatus: {
                coding: [
                  { system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' },
                ],
              },
              verificationStatus: {
                coding: [
                  { system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' },
                ],
              },
              code: { coding: [{ system: 'http://snomed.info/sct', code: '239873007' }] },
              subject: { reference: `Patient/${PATIENT_ID}` },
              onsetDateTime: '2019-05-01',
            },
          },
        ],
      },
      consent: { resourceType: 'Bundle', type: 'searchset', entry: [] },
      observations: { resourceType: 'Bundle', type: 'searchset', entry: [] },
    },
  });
  const open = head.slice(0, -']}}}'.length);
  const close = ']}}}';
  const parts: string[] = [];
  let size = Buffer.byteLength(open) + close.length;
  for (let i = 0; ; i += 1) {
    const next = observation(i);
    const added = Buffer.byteLength(next) + (i > 0 ? 1 : 0);
    if (size + added > bytes) break;
    parts.push(next);
    size += added;
  }
  return `${open}${parts.join(',')}${close}`;
}
