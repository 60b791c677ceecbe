/**
 * Rebuilds `fhir-profiles/terminology/snomed-ct.json`, the bundled expansion of the SNOMED CT concepts the
 * services filter on (`is-a` / `descendent-of`), from an RF2 snapshot of a SNOMED CT release (a licensed
 * download: the International Edition or a national extension):
 *
 *     node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs tools/terminology/snomed-expansion.ts \
 *       --relationships <sct2_Relationship_Snapshot_….txt> --descriptions <sct2_Description_Snapshot-en_….txt> \
 *       [--file fhir-profiles/terminology/snomed-ct.json] [--release <name and date of the release>]
 *
 * The roots are the concepts already listed in the file; each gets every active descendant through active
 * is-a relationships (116680003), with its fully specified name. To add a root, add
 * `{ "code": "<concept id>", "display": "<FSN>", "descendants": [] }` to the file and run the script.
 *
 * Without a release, `--sources tools/terminology/sources` adds instead to the concepts named in
 * `snomed-concepts.json` the SNOMED CT codes of the published value sets it lists (kept in that folder with
 * their name, identifier, version, repository, path and commit); each concept then names them:
 *
 *     node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs tools/terminology/snomed-expansion.ts \
 *       --sources tools/terminology/sources [--file fhir-profiles/terminology/snomed-ct.json]
 *
 * Those are value-set members, not a hierarchy read from a release. Running it twice changes nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { invokedDirectly } from '../usage.js';
import { label, type PublishedValueSet } from './rxnorm-expansion.js';

const IS_A = '116680003';
const FSN = '900000000000003001';

interface ExpansionFile {
  system: string;
  title: string;
  source: string;
  date: string;
  builtBy: string;
  concepts: {
    code: string;
    display: string;
    source?: string;
    descendants: { code: string; display: string }[];
  }[];
}

/** Rows of an RF2 tab-separated file, without its header. */
function rows(text: string): string[][] {
  return text
    .split(/\r?\n/)
    .slice(1)
    .filter((line) => line.trim() !== '')
    .map((line) => line.split('\t'));
}

/**
 * Children by parent, from the active is-a rows of an RF2 relationship snapshot
 * (id, effectiveTime, active, moduleId, sourceId, destinationId, relationshipGroup, typeId, …).
 */
export function childrenOf(relationships: string): Map<string, string[]> {
  const children = new Map<string, string[]>();
  for (const r of rows(relationships)) {
    if (r[2] !== '1' || r[7] !== IS_A) continue;
    const list = children.get(r[5]!) ?? [];
    list.push(r[4]!);
    children.set(r[5]!, list);
  }
  return children;
}

/** Active fully specified names by concept, from an RF2 description snapshot. */
export function namesOf(descriptions: string): Map<string, string> {
  const names = new Map<string, string>();
  for (const r of rows(descriptions)) {
    if (r[2] === '1' && r[6] === FSN) names.set(r[4]!, r[7]!);
  }
  return names;
}

/** Every descendant of `root` (not itself), sorted by code. */
export function descendants(root: string, children: Map<string, string[]>): string[] {
  const seen = new Set<string>();
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const code = stack.pop()!;
    if (seen.has(code)) continue;
    seen.add(code);
    stack.push(...(children.get(code) ?? []));
  }
  return [...seen].sort();
}

export function rebuild(
  file: ExpansionFile,
  relationships: string,
  descriptionsText: string,
  release: string,
  date: string,
): ExpansionFile {
  const children = childrenOf(relationships);
  const names = namesOf(descriptionsText);
  return {
    ...file,
    source: `SNOMED CT ${release}, RF2 snapshot: active is-a descendants with their fully specified names`,
    date,
    builtBy: 'tools/terminology/snomed-expansion.ts',
    concepts: file.concepts.map((concept) => ({
      code: concept.code,
      display: names.get(concept.code) ?? concept.display,
      descendants: descendants(concept.code, children).map((code) => ({
        code,
        display: names.get(code) ?? code,
      })),
    })),
  };
}

const SCT = 'http://snomed.info/sct';

/** `snomed-concepts.json` and the published value sets it names. */
export interface PublishedConcepts {
  concepts: { code: string; display: string; sources: string[] }[];
  sources: Record<string, PublishedValueSet>;
}

/** Reads `snomed-concepts.json` and the value sets it names from `dir`. */
export function readPublishedConcepts(dir: string): PublishedConcepts {
  const map = JSON.parse(readFileSync(join(dir, 'snomed-concepts.json'), 'utf8')) as {
    concepts: PublishedConcepts['concepts'];
  };
  const sources: Record<string, PublishedValueSet> = {};
  for (const name of new Set(map.concepts.flatMap((c) => c.sources))) {
    sources[name] = JSON.parse(readFileSync(join(dir, name), 'utf8')) as PublishedValueSet;
  }
  return { concepts: map.concepts, sources };
}

const PUBLISHED_NOTE =
  'Also merged from published value sets kept in tools/terminology/sources (snomed-expansion.ts --sources): each concept names the value sets its descendants come from.';

/**
 * Adds to each concept of `published` (added as a root when the file lacks it) the SNOMED CT codes of its
 * value sets, the concept itself left out; the descendants already listed are kept first.
 * @throws Error naming a value set that is missing or is not a SNOMED CT value set
 */
export function mergePublished(
  file: ExpansionFile,
  published: PublishedConcepts,
  date: string,
): ExpansionFile {
  const concepts = file.concepts.map((c) => ({ ...c, descendants: [...c.descendants] }));
  for (const wanted of published.concepts) {
    let concept = concepts.find((c) => c.code === wanted.code);
    if (!concept) {
      concept = { code: wanted.code, display: wanted.display, descendants: [] };
      concepts.push(concept);
    }
    const known = new Set([concept.code, ...concept.descendants.map((d) => d.code)]);
    const named: string[] = [];
    for (const name of wanted.sources) {
      const source = published.sources[name];
      if (!source) throw new Error(`${wanted.code}: no published value set ${name}`);
      if (source.codeSystem !== SCT) throw new Error(`${name}: not a SNOMED CT value set`);
      named.push(`${label(source)}: ${source.taken}`);
      const added = source.codes
        .filter((c) => !known.has(c.code))
        .sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
      for (const c of added) known.add(c.code);
      concept.descendants.push(...added.map((c) => ({ code: c.code, display: c.display })));
    }
    const text = `Descendants: the codes listed before, plus the SNOMED CT codes of ${named.join('; and of ')}`;
    if (concept.source === undefined || !concept.source.includes(text)) {
      concept.source = concept.source === undefined ? text : `${concept.source}; ${text}`;
    }
  }
  return {
    ...file,
    source: file.source.includes(PUBLISHED_NOTE) ? file.source : `${file.source} ${PUBLISHED_NOTE}`,
    date,
    builtBy: 'tools/terminology/snomed-expansion.ts',
    concepts: concepts.map(({ code, display, source, descendants: list }) => ({
      code,
      display,
      ...(source !== undefined ? { source } : {}),
      descendants: list,
    })),
  };
}

function main(args: readonly string[]): number {
  const option = (name: string, fallback?: string) => {
    const i = args.indexOf(`--${name}`);
    const value = i >= 0 ? args[i + 1] : fallback;
    if (value === undefined) throw new Error(`--${name} is required`);
    return value;
  };
  const path = option('file', 'fhir-profiles/terminology/snomed-ct.json');
  const file = JSON.parse(readFileSync(path, 'utf8')) as ExpansionFile;
  const sources = option('sources', '');
  if (sources !== '') {
    const merged = mergePublished(
      file,
      readPublishedConcepts(sources),
      new Date().toISOString().slice(0, 10),
    );
    writeFileSync(path, `${JSON.stringify(merged, null, 2)}\n`);
    const total = merged.concepts.reduce((n, c) => n + c.descendants.length, 0);
    process.stdout.write(`${path}: ${merged.concepts.length} roots, ${total} descendants\n`);
    return 0;
  }
  const rebuilt = rebuild(
    file,
    readFileSync(option('relationships'), 'utf8'),
    readFileSync(option('descriptions'), 'utf8'),
    option('release', 'release not named'),
    new Date().toISOString().slice(0, 10),
  );
  writeFileSync(path, `${JSON.stringify(rebuilt, null, 2)}\n`);
  process.stdout.write(`${path}: ${rebuilt.concepts.length} roots\n`);
  return 0;
}

if (invokedDirectly(import.meta.url)) {
  try {
    process.exit(main(process.argv.slice(2)));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  }
}
