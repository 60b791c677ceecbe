/**
 * `npm run openapi`: writes `openapi.yaml` at the project root from {@link buildOpenApi}.
 * `npm run openapi -- --check`: writes nothing; exits 1 when the file is missing or differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { invokedDirectly } from '../usage.js';
import { projectRoot, renderOpenApi } from './build.js';

function main(args: readonly string[]): number {
  const path = join(projectRoot(), 'openapi.yaml');
  const shown = relative(process.cwd(), path) || path;
  const text = renderOpenApi();
  if (args.includes('--check')) {
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== text) {
      process.stderr.write(`${shown} is out of date with the code: run \`npm run openapi\`\n`);
      return 1;
    }
    process.stdout.write(`${shown} is up to date\n`);
    return 0;
  }
  writeFileSync(path, text);
  process.stdout.write(`${shown}\n`);
  return 0;
}

// Run only as a script, not when imported.
if (invokedDirectly(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
