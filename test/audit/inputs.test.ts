import type { Observation, Patient } from 'fhir/r4.js';
import t from 'tap';
import { canonicalJson, sha256Hex } from '../../src/audit/hash-chain.js';
import { digestInputs } from '../../src/audit/inputs.js';
import { lesion, searchset } from '../helpers/hook-request.js';

t.test('the hash is SHA-256 of the canonical JSON of the data, whatever the key order', async (t) => {
  const data = { lesions: searchset([lesion()]), patient: null };
  const digest = digestInputs(data);
  t.equal(digest.sha256, sha256Hex(canonicalJson(data)));
  const reordered = JSON.parse(JSON.stringify({ patient: null, lesions: data.lesions }));
  t.equal(digestInputs(reordered).sha256, digest.sha256);
  const changed = { ...data, lesions: searchset([lesion({ diameterMm: 8 })]) };
  t.not(digestInputs(changed).sha256, digest.sha256, 'one value changed, another hash');
});

t.test(
  'references name each resource, in bundles too, with its version when known; sorted and unique',
  async (t) => {
    const versioned: Patient = { resourceType: 'Patient', id: 'pat-123', meta: { versionId: '4' } };
    const noId: Observation = { resourceType: 'Observation', status: 'final', code: {} };
    const digest = digestInputs({
      lesions: searchset([
        lesion({ id: 'lesion-2' }),
        lesion({ id: 'lesion-1' }),
        lesion({ id: 'lesion-1' }),
        noId,
      ]),
      patient: versioned,
      empty: null,
      emptyBundle: { resourceType: 'Bundle', type: 'searchset' },
    });
    // The Patient is left out: the audit names the patient by pseudonym only.
    t.same(digest.references, ['Observation/lesion-1', 'Observation/lesion-2']);
  },
);
