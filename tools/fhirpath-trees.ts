/**
 * Run by `npm run build` after tsc: writes dist/fhirpath-trees.json, the parse trees of every FHIRPath
 * source the bundled services, models and feature defaults compile (`src/rules/parse-trees.ts`), so
 * that start-up reads them instead of running fhirpath.js's parser. The sources are those start-up's
 * own code compiles (`checkDefinitions` on the project's cds-services/, models/ and fhir-profiles/), so
 * where expressions live is known in one place only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadSettings } from '../src/config.js';
import { checkDefinitions } from '../src/ops/live-set.js';
import { projectRoot } from './openapi/build.js';
import { collectParseTrees, serializeParseTrees } from '../src/rules/parse-trees.js';
import { invokedDirectly } from './usage.js';

/**
 * Writes the trees of the sources under `root`'s default folders to `file`.
 * @returns how many source texts it holds
 * @throws CdsError when a bundled definition is invalid (start-up would refuse it too)
 */
export function writeParseTrees(root: string, file: string): number {
  const settings = loadSettings({});
  const dirs = {
    servicesDir: join(root, settings.servicesDir),
    modelsDir: join(root, settings.modelsDir),
    profilesDir: join(root, settings.profilesDir),
  };
  const trees = collectParseTrees((engine) => checkDefinitions(dirs, engine));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, serializeParseTrees(trees));
  return trees.size;
}

if (invokedDirectly(import.meta.url)) {
  const root = projectRoot();
  const file = join(root, 'dist', 'fhirpath-trees.json');
  try {
    const count = writeParseTrees(root, file);
    process.stdout.write(`fhirpath-trees: ${count} parse trees written to dist/fhirpath-trees.json\n`);
  } catch (error) {
    process.stderr.write(`fhirpath-trees: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
