import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { END, generatedSection, renderReadme, START } from '../../../tools/docs/services-table.js';

const REGENERATE =
  "README.md's prescribing tables are out of date with cds-services/ or fhir-profiles/: run `npm run docs` and commit the result";
const root = new URL('../../../', import.meta.url).pathname;
const readme = readFileSync(join(root, 'README.md'), 'utf8');
/** The section for the bundled services, generated once for the tests that read it. */
const bundled = generatedSection(root);

interface Rule {
  id: string;
  title: { en: string };
  source: { url?: string };
}

/** The row of a rule (or datum, or value set) in a generated section: the line starting with its id. */
function row(section: string, id: string, after = ''): string {
  const from = after === '' ? 0 : section.indexOf(after);
  const line = section
    .slice(from)
    .split('\n')
    .find((l) => l.startsWith(`| \`${id}\` `));
  return line ?? '';
}

t.test("README.md's generated section is exactly what npm run docs writes now", async (t) => {
  t.ok(readme.includes(START) && readme.includes(END), 'README.md has both markers');
  t.equal(readme, await renderReadme(readme, root), REGENERATE);
});

t.test('every rule of every prescribing service has its row, with its title and source', async (t) => {
  const section = bundled;
  for (const file of [
    'nsaid-safety.yaml',
    'valproate-pregnancy-prevention.yaml',
    'topiramate-pregnancy-prevention.yaml',
    'cyproterone-meningioma.yaml',
  ]) {
    const definition = parse(readFileSync(join(root, 'cds-services', file), 'utf8')) as {
      id: string;
      rules: Rule[];
    };
    const heading = `#### \`${definition.id}\``;
    t.ok(section.includes(heading), `${file} has its heading`);
    for (const rule of definition.rules) {
      const line = row(section, rule.id, heading);
      t.ok(line.includes(rule.title.en.replace(/\|/g, '\\|')), `${definition.id} ${rule.id}: title`);
      if (rule.source.url !== undefined)
        t.ok(line.includes(`](${rule.source.url})`), `${rule.id}: source url`);
    }
  }
  // The services on other hooks have no table.
  t.notOk(section.includes('`knee-oa-progression`'));
  t.notOk(section.includes('`melanoma-lesion-triage`'));
});

t.test('a row says the card and indicator the YAML gives, and the data windows', async (t) => {
  const section = bundled;
  const nsaid = '#### `nsaid-safety`';
  t.match(row(section, 'heartFailure', nsaid), /\| `serious` \(critical\) \|/);
  t.match(row(section, 'ssriSnri', nsaid), /\| `caution` \(warning\) \|/);
  t.match(row(section, 'egfrBelow30', nsaid), /eGFR \(`latestEgfr`, current for 12 months\)/);
  t.match(row(section, 'egfrBelow30', nsaid), /offers `paracetamolRenal`/);
  t.match(row(section, 'age65to74', nsaid), /none of its own/);
  t.match(row(section, 'latestEgfr', nsaid), /\| current for 12 months \| \[NICE NG203/);
  t.match(row(section, 'latestEgfr', nsaid), /card `renalFunctionUnknown` \(warning\)/);
  t.match(row(section, 'birthDate', nsaid), /\| no window \| — \|/);
  t.match(
    row(section, 'childbearingAge', '#### `valproate-pregnancy-prevention`'),
    /`programmeMissing` \(critical\)/,
  );
  t.match(
    row(section, 'heart-failure'),
    /SNOMED CT: is-a 84114007 \(\d+ codes in all with the bundled expansion\)/,
  );
  t.match(row(section, 'heart-failure'), /ICD-10 and ICD-10-CM: prefix I50, I11\.0, I13\.0, I13\.2/);
  t.match(
    row(section, 'oral-nsaid'),
    /WHO ATC: is-a M01A; RxNorm: ingredients classed under ATC M01A and route oral/,
  );
});

const SERVICE = `
id: demo
version: 1.0.0
hooks: [order-select, order-sign]
title: Demo
description: A demonstration.
guideline: [{ label: 'Guide', url: 'https://example.org/guide', version: '2020' }]
prefetch:
  ppp:
    query: 'Observation?patient={{context.patientId}}'
    onFailure: omit
    description: { en: 'programme records', fr: 'programme' }
focus:
  expression: "%draftOrders.ofType(MedicationRequest).where(medicationCodeableConcept.inValueSet('valproate'))"
  label: 'medicationCodeableConcept.text'
DATA
rules:
  - id: noProgramme
    kind: condition
    title: { en: 'no programme', fr: 'pas de programme' }
    RULE_DATA
    when: 'WHEN'
    source: { label: { en: 'Rule source', fr: 'Source' }, url: 'https://example.org/rule', version: '2021' }
cards:
  - id: missing
    when: { anyFired: [noProgramme] }
    indicator: INDICATOR
    summary: { en: 'Missing', fr: 'Manque' }
`;

function demo(options: { data: boolean; indicator: string }): string {
  const data = `data:
  lastProgramme:
    label: { en: 'programme', fr: 'programme' }
    records: "%ppp.entry.resource.ofType(Observation).where(code.inValueSet('valproate-ppp'))"
    date: 'effective.ofType(dateTime)'
    readable: [{ test: 'value.ofType(boolean).exists()', reason: { en: 'no value', fr: 'pas de valeur' } }]
    window: { days: 365, source: { label: 'Window source', url: 'https://example.org/window', version: '2022' } }`;
  return SERVICE.replace('DATA', options.data ? data : '')
    .replace('RULE_DATA', options.data ? 'data: [lastProgramme]' : '')
    .replace('WHEN', options.data ? '%lastProgramme.empty()' : '%ppp.entry.empty()')
    .replace('INDICATOR', options.indicator);
}

function project(t: Test, services: Record<string, string>): string {
  const dir = t.testdir({ 'cds-services': services, 'README.md': `# Demo\n\n${START}\n${END}\n` });
  cpSync(join(root, 'fhir-profiles'), join(dir, 'fhir-profiles'), { recursive: true });
  return dir;
}

t.test(
  'services with and without data: windows come from data, a changed YAML changes the table',
  async (t) => {
    const withData = generatedSection(
      project(t, { 'demo.yaml': demo({ data: true, indicator: 'critical' }) }),
    );
    t.match(row(withData, 'noProgramme'), /\| `missing` \(critical\) \|/);
    t.match(row(withData, 'noProgramme'), /programme \(`lastProgramme`, current for 365 days\)/);
    t.match(row(withData, 'noProgramme'), /\[Rule source\]\(https:\/\/example\.org\/rule\), version 2021/);
    t.match(
      row(withData, 'lastProgramme'),
      /\| current for 365 days \| \[Window source\]\(https:\/\/example\.org\/window\)/,
    );
    t.match(row(withData, 'valproate-ppp'), /\| `demo` \|/);

    const withoutData = generatedSection(
      project(t, { 'demo.yaml': demo({ data: false, indicator: 'warning' }) }),
    );
    t.match(row(withoutData, 'noProgramme'), /\| `missing` \(warning\) \|/);
    t.match(row(withoutData, 'noProgramme'), /programme records \(`ppp`\)/);
    t.notOk(withoutData.includes('| datum '), 'no data table without data');
    // A README written for one no longer passes for the other.
    const dir = project(t, { 'demo.yaml': demo({ data: false, indicator: 'warning' }) });
    const written = await renderReadme(readFileSync(join(dir, 'README.md'), 'utf8'), dir);
    t.equal(await renderReadme(written, dir), written, 'stable once written');
    const other = project(t, { 'demo.yaml': demo({ data: true, indicator: 'critical' }) });
    t.not(await renderReadme(written, other), written);
  },
);

t.test('a service on another hook is left out; a README without markers is refused', async (t) => {
  const patientView = demo({ data: false, indicator: 'info' })
    .replace('hooks: [order-select, order-sign]', 'hook: patient-view')
    .replace(/focus:[\s\S]*?label: 'medicationCodeableConcept.text'\n/, '');
  const section = generatedSection(project(t, { 'demo.yaml': patientView }));
  t.notOk(section.includes('#### `demo`'));
  t.match(section, /#### Value sets/);
  await t.rejects(renderReadme('# No markers\n', root), /README\.md has no generated section/);
});
