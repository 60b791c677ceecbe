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
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { invokedDirectly } from '../usage.js';

const IS_A = '116680003';
const FSN = '900000000000003001';

interface ExpansionFile {
  system: string;
  title: string;
  source: string;
  date: string;
  builtBy: string;
  concepts: { code: string; display: string; descendants: { code: string; display: string }[] }[];
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

function main(args: readonly string[]): number {
  const option = (name: string, fallback?: string) => {
    const i = args.indexOf(`--${name}`);
    const value = i >= 0 ? args[i + 1] : fallback;
    if (value === undefined) throw new Error(`--${name} is required`);
    return value;
  };
  const path = option('file', 'fhir-profiles/terminology/snomed-ct.json');
  const file = JSON.parse(readFileSync(path, 'utf8')) as ExpansionFile;
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
