import type { Observation, Patient } from 'fhir/r4.js';
import { createHash } from 'node:crypto';
import t from 'tap';
import { canonicalJson, sha256Hex } from '../../src/audit/hash-chain.js';
import { digestInputs } from '../../src/audit/inputs.js';
import { lesion, searchset } from '../helpers/hook-request.js';

t.test(
  'without the bytes, the hash is SHA-256 of the canonical JSON of the data, whatever the key order',
  async (t) => {
    const data = { lesions: searchset([lesion()]), patient: null };
    const digest = digestInputs(data);
    t.equal(digest.sha256, sha256Hex(canonicalJson(data)));
    t.equal(digest.method, 'sha256-canonical');
    t.equal(digest.fetched, undefined);
    const reordered = JSON.parse(JSON.stringify({ patient: null, lesions: data.lesions }));
    t.equal(digestInputs(reordered).sha256, digest.sha256);
    const changed = { ...data, lesions: searchset([lesion({ diameterMm: 8 })]) };
    t.not(digestInputs(changed).sha256, digest.sha256, 'one value changed, another hash');
  },
);

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

t.test(
  'references repeated across keys and bundles are listed once, in UTF-16 code unit order, versions apart',
  async (t) => {
    const versioned: Observation = { ...lesion({ id: 'b' }), meta: { versionId: '2' } };
    const digest = digestInputs({
      first: searchset([lesion({ id: 'b' }), lesion({ id: 'a' }), lesion({ id: 'b' }), versioned]),
      second: searchset([lesion({ id: 'Z' }), lesion({ id: 'a' }), versioned, lesion({ id: 'b' })]),
      single: lesion({ id: 'a' }),
    });
    t.same(digest.references, [
      'Observation/Z',
      'Observation/a',
      'Observation/b',
      'Observation/b/_history/2',
    ]);
  },
);

t.test('with the bytes, the hash is SHA-256 of the body then each fetched page, as received', async (t) => {
  const data = { lesions: searchset([lesion()]), patient: null };
  const body = '{"hook":"patient-view" }';
  const bodyOnly = digestInputs(data, { body: Buffer.from(body), fetched: [] });
  t.same(bodyOnly, {
    sha256: createHash('sha256').update(body).digest('hex'),
    method: 'sha256-raw',
    references: ['Observation/lesion-1'],
  });
  t.equal(digestInputs(data, { body, fetched: [] }).sha256, bodyOnly.sha256, 'a string is hashed as UTF-8');
  const withPages = digestInputs(data, {
    body: Buffer.from(body),
    fetched: [
      { key: 'patient', pages: [Buffer.from('{"resourceType":"Patient"}')] },
      { key: 'lesions', pages: [Buffer.from('{"page":1}'), Buffer.from('{"page":2}')] },
    ],
  });
  t.equal(
    withPages.sha256,
    createHash('sha256').update(`${body}{"resourceType":"Patient"}{"page":1}{"page":2}`).digest('hex'),
    'the parts concatenated, nothing between them (cat body page… | sha256sum)',
  );
  t.same(withPages.fetched, ['patient', 'lesions']);
  const spaced = digestInputs(data, { body: Buffer.from(`${body} `), fetched: [] });
  t.not(spaced.sha256, bodyOnly.sha256, 'one more byte, another hash: the bytes, not the data, are hashed');
});
