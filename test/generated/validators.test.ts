/**
 * The validators of src/generated/ (ajv standalone code, `npm run schemas`): each file is exactly what
 * the generator writes from today's schemas, and each validator gives the verdict and the errors (and,
 * for the configuration, the defaults and coercions) of the validator ajv compiles in memory from the
 * same schema with the options the site used before (written out here, independently of the generator):
 * on the real definitions, models, value sets and requests, and on mutated copies of them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Ajv, type ValidateFunction } from 'ajv';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { createAjv } from '../../tools/schemas/ajv.js';
import { KNOWN_HOOKS } from '../../src/cds-hooks.js';
import { CONFIG_SCHEMA } from '../../src/config.js';
import { TRUSTED_ISSUERS_SCHEMA } from '../../src/auth/issuers.js';
import * as configModule from '../../src/generated/config.js';
import * as issuersModule from '../../src/generated/issuers.js';
import * as modelsModule from '../../src/generated/models.js';
import * as requestModule from '../../src/generated/request.js';
import * as definitionModule from '../../src/generated/service-definition.js';
import * as valueSetModule from '../../src/generated/value-set.js';
import { CONTEXT_SCHEMAS, contextExportName, SCHEMAS } from '../../src/request/schemas.js';
import { APPROVED_MODELS_SCHEMA } from '../../src/scoring/load.js';
import { MANIFEST_SCHEMA } from '../../src/scoring/manifest.js';
import { MODEL_CARD_SCHEMA } from '../../src/scoring/model-card.js';
import { DEFINITION_SCHEMA } from '../../src/services/definition-schema.js';
import { VALUE_SET_SCHEMA } from '../../src/services/value-sets.js';
import { generate, SITES } from '../../tools/schemas/standalone.js';
import { medicationRequest, orderSelectRequest, orderSignRequest } from '../../tools/synthetic/orders.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';

t.test('each generated file is what `npm run schemas` writes from the schemas', async (t) => {
  t.same(
    readdirSync('src/generated').sort(),
    SITES.map((site) => site.file.replace('src/generated/', '')).sort(),
    'every file of src/generated/ comes from a site of the generator',
  );
  for (const site of SITES) {
    const expected = generate(site);
    const committed = readFileSync(site.file, 'utf8');
    let at = 0;
    while (at < expected.length && expected[at] === committed[at]) at += 1;
    t.ok(
      committed === expected,
      `${site.file} is what \`npm run schemas\` writes (when not: a schema changed, run it and commit the file)`,
      committed === expected
        ? {}
        : {
            firstDifferenceAt: at,
            committed: committed.slice(at, at + 80),
            expected: expected.slice(at, at + 80),
          },
    );
  }
});

/** What the validators are compared on: a valid document, and its mutations. */
type Check = (data: unknown) => { valid: boolean; errors: unknown; data: unknown };

function checkWith(validate: (data: unknown) => boolean, errorsOf: () => unknown): Check {
  return (data) => {
    const copy = structuredClone(data);
    const valid = validate(copy);
    return { valid, errors: errorsOf(), data: copy };
  };
}

const generatedCheck = (fn: unknown): Check => {
  const validate = fn as ValidateFunction;
  return checkWith(
    (data) => validate(data),
    () => validate.errors,
  );
};
const referenceCheck = (validate: ValidateFunction): Check =>
  checkWith(
    (data) => validate(data),
    () => validate.errors,
  );

/**
 * Invalid (and some still valid) copies of `value`: at each place, the member removed, a value of
 * another type, an unknown member, an empty or overlong string, a negative or fractional number, an
 * emptied array. At most `limit`, spread evenly over the document, always the same ones.
 */
function mutations(value: unknown, limit = 300): unknown[] {
  const out: unknown[] = [];
  const visit = (node: unknown, replace: (next: unknown) => unknown, remove?: () => unknown): void => {
    if (remove) out.push(remove());
    if (typeof node === 'string') {
      out.push(replace(''), replace(42), replace('x'.repeat(300)), replace('Not a valid value!'));
    } else if (typeof node === 'number') {
      out.push(replace(-1), replace(1.5), replace(String(node)), replace(null));
    } else if (typeof node === 'boolean') {
      out.push(replace(String(node)), replace(0));
    } else if (Array.isArray(node)) {
      out.push(replace([]), replace({}), replace([...node, 'extra']));
      node.forEach((item, i) =>
        visit(
          item,
          (next) => replace(node.map((x, j) => (j === i ? next : x))),
          () => replace(node.filter((_, j) => j !== i)),
        ),
      );
    } else if (node !== null && typeof node === 'object') {
      const record = node as Record<string, unknown>;
      out.push(replace([]), replace('object'), replace({ ...record, unexpectedMember: true }));
      for (const key of Object.keys(record)) {
        visit(
          record[key],
          (next) => replace({ ...record, [key]: next }),
          () => {
            const { [key]: _removed, ...rest } = record;
            return replace(rest);
          },
        );
      }
    }
  };
  visit(value, (next) => next);
  if (out.length <= limit) return out;
  return Array.from({ length: limit }, (_, i) => out[Math.floor((i * out.length) / limit)]);
}

/**
 * Compares two validators on each document and its mutations.
 * @returns how many inputs were invalid (so that a test can require the comparison to be about errors)
 */
function compare(
  t: Test,
  label: string,
  generated: Check,
  reference: Check,
  documents: readonly unknown[],
): number {
  const mismatches: { input: unknown; generated: unknown; reference: unknown }[] = [];
  let invalid = 0;
  let total = 0;
  for (const document of documents) {
    for (const input of [document, ...mutations(document)]) {
      const g = generated(input);
      const r = reference(input);
      total += 1;
      if (!r.valid) invalid += 1;
      if (!isDeepStrictEqual(g, r)) mismatches.push({ input, generated: g, reference: r });
    }
  }
  t.same(mismatches.slice(0, 3), [], `${label}: same verdict, errors and data on ${total} inputs`);
  return invalid;
}

const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));
const filesIn = (dir: string, pattern: RegExp): string[] =>
  readdirSync(dir)
    .filter((name) => pattern.test(name))
    .sort()
    .map((name) => join(dir, name));

t.test('configuration: draft-07 ajv with useDefaults, coerceTypes and allErrors', async (t) => {
  const reference = new Ajv({ useDefaults: true, coerceTypes: true, allErrors: true }).compile(CONFIG_SCHEMA);
  const defaults: Record<string, unknown> = {};
  t.ok(reference(defaults));
  t.equal(defaults.port, 8080, 'the reference fills in defaults');
  const fromEnvironment = {
    host: '0.0.0.0',
    port: '9000',
    workers: '2',
    logLevel: 'debug',
    authDisabled: 'true',
    fhirServerAllowlist: ['https://fhir.example.org/r4'],
  };
  const invalid = compare(t, 'config', generatedCheck(configModule.config), referenceCheck(reference), [
    {},
    fromEnvironment,
    defaults,
  ]);
  t.ok(invalid > 50, `most mutations are invalid (${invalid})`);
  const coerced = generatedCheck(configModule.config)(fromEnvironment);
  t.equal(coerced.valid, true);
  t.equal((coerced.data as { port: unknown }).port, 9000, 'the generated code coerces too');
});

t.test('request: the wire schemas through a $ref, and each hook context', async (t) => {
  const ajv = createAjv({ allErrors: false, strictRequired: false });
  ajv.addKeyword('components');
  ajv.addSchema({ $id: 'cds-hooks.json', components: { schemas: SCHEMAS } });
  const drafts = [
    medicationRequest({ id: 'a', drug: 'ibuprofen', patientId: 'p1' }),
    medicationRequest({ id: 'b', drug: 'paracetamol', patientId: 'p1' }),
  ];
  const select = orderSelectRequest({ patientId: 'p1', drafts, encounterId: 'e1' });
  const sign = orderSignRequest({ patientId: 'p1', drafts, hookInstance: 'h-1' });
  const view = patientView(
    { patient: { resourceType: 'Patient', id: 'pat-123' }, lesions: searchset([lesion()]) },
    {
      fhirServer: 'https://fhir.example.org/r4',
      fhirAuthorization: {
        access_token: 'abc',
        token_type: 'Bearer',
        expires_in: 300,
        scope: 'patient/*.read',
        subject: 'cds-service',
      },
    },
  );
  const card = {
    uuid: '2b4c9b4e-5f5a-4a4e-9d0b-1c2d3e4f5a6b',
    summary: 'Ibuprofen with an eGFR below 30',
    detail: 'Avoid NSAIDs.',
    indicator: 'critical',
    source: {
      label: 'AGS Beers Criteria 2023',
      url: 'https://example.org/beers',
      topic: { system: 'http://example.org', code: 'nsaid', display: 'NSAID' },
    },
    suggestions: [
      {
        label: 'Remove the order',
        uuid: '3c4c9b4e-5f5a-4a4e-9d0b-1c2d3e4f5a6b',
        isRecommended: true,
        actions: [{ type: 'delete', description: 'Remove ibuprofen', resourceId: 'MedicationRequest/a' }],
      },
    ],
    selectionBehavior: 'at-most-one',
    overrideReasons: [
      { system: 'http://example.org/reasons', code: 'benefit', display: 'Benefit outweighs risk' },
    ],
    links: [{ label: 'Explanation', url: 'https://cds.example.org/x', type: 'absolute' }],
  };
  const documents: Partial<Record<keyof typeof SCHEMAS, unknown[]>> = {
    HookRequest: [select, sign, view],
    HookResponse: [{ cards: [card] }, { cards: [] }],
    Card: [card],
    DiscoveryResponse: [
      {
        services: [
          {
            hook: 'patient-view',
            title: 'Triage',
            description: 'Lesion triage',
            id: 'melanoma-lesion-triage',
            prefetch: { patient: 'Patient/{{context.patientId}}' },
          },
        ],
      },
    ],
    FeedbackRequest: [
      {
        feedback: [
          {
            card: 'c-1',
            outcome: 'overridden',
            overrideReason: { reason: { system: 'http://example.org', code: 'benefit' }, userComment: 'ok' },
            outcomeTimestamp: '2026-11-22T09:30:00Z',
          },
          {
            card: 'c-2',
            outcome: 'accepted',
            acceptedSuggestions: [{ id: 's-1' }],
            outcomeTimestamp: '2026-11-22T09:31:00Z',
          },
        ],
      },
    ],
    OperationOutcome: [
      {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'invalid', diagnostics: 'bad', expression: ['context'] }],
      },
    ],
    PatientExportRequest: [{ patientId: 'pat-123' }],
    FeedbackResponse: [{ stored: 2, duplicates: 0 }],
    AnalyticsReport: [
      { generatedAt: '2026-11-22T09:30:00Z', scope: { issuer: 'https://ehr.example.org' }, groups: [] },
    ],
    PatientExport: [
      {
        generatedAt: '2026-11-22T09:30:00Z',
        pseudonym: 'c'.repeat(64),
        events: [
          {
            seq: 1,
            kind: 'feedback',
            at: '2026-11-22T09:30:00Z',
            serviceId: 's',
            pseudonym: 'p',
            payload: {},
          },
        ],
      },
    ],
    Resource: [{ resourceType: 'Patient', id: 'pat-123' }],
    Coding: [card.source.topic],
    Source: [card.source],
    Suggestion: card.suggestions,
    Action: [...card.suggestions[0]!.actions, { type: 'create', description: 'Add', resource: drafts[0] }],
    Link: [...card.links, { label: 'App', url: 'https://app.example.org', type: 'smart', appContext: '{}' }],
  };
  documents.Feedback = (documents.FeedbackRequest![0] as { feedback: unknown[] }).feedback;
  documents.DiscoveryService = (documents.DiscoveryResponse![0] as { services: unknown[] }).services;
  let invalid = 0;
  for (const name of Object.keys(SCHEMAS) as (keyof typeof SCHEMAS)[]) {
    const reference = ajv.compile({ $ref: `cds-hooks.json#/components/schemas/${name}` });
    const generated = (requestModule as Record<string, unknown>)[name];
    invalid += compare(t, name, generatedCheck(generated), referenceCheck(reference), [
      {},
      null,
      ...(documents[name] ?? []),
    ]);
  }
  const contexts = {
    'patient-view': view.context,
    'order-select': select.context,
    'order-sign': sign.context,
  };
  for (const hook of KNOWN_HOOKS) {
    const reference = ajv.compile(CONTEXT_SCHEMAS[hook]);
    const generated = (requestModule as Record<string, unknown>)[contextExportName(hook)];
    const own = hook in contexts ? [contexts[hook as keyof typeof contexts]] : [];
    invalid += compare(t, `${hook} context`, generatedCheck(generated), referenceCheck(reference), [
      {},
      { userId: 'Practitioner/p1', patientId: 'p1', encounterId: 'e1' },
      ...own,
    ]);
  }
  t.ok(invalid > 500, `most mutations are invalid (${invalid})`);
});

t.test('trusted issuers', async (t) => {
  const reference = createAjv({ allErrors: false }).compile(TRUSTED_ISSUERS_SCHEMA);
  const list = [
    {
      iss: 'https://sandbox.cds-hooks.org',
      jwksUrl: 'https://sandbox.cds-hooks.org/.well-known/jwks.json',
      jkuAllowlist: ['https://sandbox.cds-hooks.org/.well-known/jwks.json'],
      fhirServers: ['https://fhir.example.org/r4'],
      fhirAllowedNetworks: ['10.1.0.0/16'],
      tenant: ['a', 'b'],
    },
    { iss: 'https://ehr.example.org', jwks: { keys: [] }, tenant: 'a' },
    { iss: 'https://other.example.org', jwksFile: 'keys.json' },
  ];
  const invalid = compare(
    t,
    'issuers',
    generatedCheck(issuersModule.trustedIssuers),
    referenceCheck(reference),
    [list],
  );
  t.ok(invalid > 20, `most mutations are invalid (${invalid})`);
});

t.test('models: the manifests, model cards and approved list', async (t) => {
  const ajv = createAjv();
  const versions = (root: string) =>
    readdirSync(root, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .flatMap((entry) => filesIn(join(root, entry.name), /^\d+\.\d+\.\d+$/));
  const folders = [...versions('models'), ...versions('test/fixtures/models')];
  t.ok(folders.length >= 3, `the model folders: ${folders.join(', ')}`);
  const manifests = folders.map(
    (dir) => parseYaml(readFileSync(join(dir, 'manifest.yaml'), 'utf8')) as unknown,
  );
  const cards = folders.map((dir) => readJson(join(dir, 'model-card.json')));
  let invalid = compare(
    t,
    'manifest',
    generatedCheck(modelsModule.manifest),
    referenceCheck(ajv.compile(MANIFEST_SCHEMA)),
    manifests,
  );
  invalid += compare(
    t,
    'model card',
    generatedCheck(modelsModule.modelCard),
    referenceCheck(ajv.compile(MODEL_CARD_SCHEMA)),
    cards,
  );
  invalid += compare(
    t,
    'approved list',
    generatedCheck(modelsModule.approvedModels),
    referenceCheck(ajv.compile(APPROVED_MODELS_SCHEMA)),
    [
      [
        { id: 'knee-oa-progression', version: '1.0.0', sha256: 'a'.repeat(64) },
        {
          id: 'melanoma-risk',
          version: '1.0.0',
          sha256: 'b'.repeat(64),
          approvedBy: 'Clinical safety officer',
          approvedAt: '2026-11-01T10:00:00Z',
          report: 'melanoma-risk-1.0.0.html',
        },
      ],
    ],
  );
  t.ok(invalid > 500, `most mutations are invalid (${invalid})`);
});

t.test('service definitions: every file of cds-services/ and the fixtures', async (t) => {
  const files = [...filesIn('cds-services', /\.ya?ml$/), ...filesIn('test/fixtures/services', /\.ya?ml$/)];
  t.ok(files.length >= 7, `the definitions: ${files.length}`);
  const invalid = compare(
    t,
    'service definition',
    generatedCheck(definitionModule.serviceDefinition),
    referenceCheck(createAjv().compile(DEFINITION_SCHEMA)),
    files.map((file) => parseYaml(readFileSync(file, 'utf8')) as unknown),
  );
  t.ok(invalid > 1000, `most mutations are invalid (${invalid})`);
});

t.test('value sets: every ValueSet of fhir-profiles/', async (t) => {
  const files = filesIn('fhir-profiles', /^ValueSet-.*\.json$/);
  t.ok(files.length >= 10, `the value sets: ${files.length}`);
  const invalid = compare(
    t,
    'value set',
    generatedCheck(valueSetModule.valueSet),
    referenceCheck(createAjv().compile(VALUE_SET_SCHEMA)),
    files.map(readJson),
  );
  t.ok(invalid > 1000, `most mutations are invalid (${invalid})`);
});
