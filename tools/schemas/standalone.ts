/**
 * `npm run schemas`: compiles every JSON Schema the service validates with at start-up into standalone
 * validation code (https://ajv.js.org/standalone), written to `src/generated/`, so that the service
 * never runs ajv's compiler: compiling them took about a quarter of start-up's CPU.
 * `npm run schemas -- --check`: writes nothing; exits 1 when a generated file is missing or differs.
 *
 * Each site keeps the ajv class and the options it compiled with before (draft 2020-12 with formats for
 * the loaders and the request, draft-07 with defaults and coercion for the configuration), so the
 * generated functions are the very code ajv compiled in memory, with the same errors. One module per
 * site: each ajv instance numbers its functions and shared constants (`validate10`, `schema31`,
 * `pattern0`) from the same counters, so code from two instances cannot share a module without renaming,
 * and a schema change rewrites only its own site's file.
 *
 * The schemas are imported from the modules that use them, some of which import their generated code:
 * if a file of src/generated/ is missing or unreadable (a merge conflict), check out either side's
 * version first, then run this.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Ajv, type CodeOptions } from 'ajv';
import type * as core from 'ajv/dist/core.js';
import standaloneModule from 'ajv/dist/standalone/index.js';
import { createAjv } from './ajv.js';
import { KNOWN_HOOKS } from '../../src/cds-hooks.js';
import { CONFIG_SCHEMA } from '../../src/config.js';
import { TRUSTED_ISSUERS_SCHEMA } from '../../src/auth/issuers.js';
import { CONTEXT_SCHEMAS, contextExportName, SCHEMAS } from '../../src/request/schemas.js';
import { APPROVED_MODELS_SCHEMA } from '../../src/scoring/load.js';
import { MANIFEST_SCHEMA } from '../../src/scoring/manifest.js';
import { MODEL_CARD_SCHEMA } from '../../src/scoring/model-card.js';
import { DEFINITION_SCHEMA } from '../../src/services/definition-schema.js';
import { VALUE_SET_SCHEMA } from '../../src/services/value-sets.js';
import { projectRoot } from '../openapi/build.js';
import { invokedDirectly } from '../usage.js';

// ajv's standalone module is CommonJS: under NodeNext its default import is `module.exports`.
const standaloneCode = standaloneModule.default;

/** What ajv and ajv's draft 2020-12 class share (ajv/dist/core), which standaloneCode works from. */
type AjvCore = core.default;
type AnyValidateFunction = core.AnyValidateFunction;

/** What a site compiles: its ajv instance and its validators by export name. */
interface Compiled {
  ajv: AjvCore;
  validators: Record<string, AnyValidateFunction>;
}

/** One generated module: where, from which schemas, and how the site compiles them. */
export interface Site {
  /** Path from the project root. */
  file: string;
  /** Where the schemas and the site are, for the file's header. */
  from: string;
  /** Compiles the site's validators exactly as the site did, plus `code` (the standalone options). */
  compile(code: CodeOptions): Compiled;
}

export const SITES: readonly Site[] = [
  {
    file: 'src/generated/config.ts',
    from: 'CONFIG_SCHEMA of src/config.ts',
    compile: (code) => {
      const ajv = new Ajv({ useDefaults: true, coerceTypes: true, allErrors: true, code });
      return { ajv, validators: { config: ajv.compile(CONFIG_SCHEMA) } };
    },
  },
  {
    file: 'src/generated/request.ts',
    from: 'SCHEMAS and CONTEXT_SCHEMAS of src/request/schemas.ts, for src/request/validate.ts',
    compile: (code) => {
      // As src/request/validate.ts did: strictRequired off, the schemas under one document shaped like
      // the OpenAPI components section, each compiled through a $ref into it.
      const ajv = createAjv({ allErrors: false, strictRequired: false, code });
      ajv.addKeyword('components');
      ajv.addSchema({ $id: 'cds-hooks.json', components: { schemas: SCHEMAS } });
      const validators: Record<string, AnyValidateFunction> = {};
      for (const name of Object.keys(SCHEMAS)) {
        validators[name] = ajv.compile({ $ref: `cds-hooks.json#/components/schemas/${name}` });
      }
      for (const hook of KNOWN_HOOKS)
        validators[contextExportName(hook)] = ajv.compile(CONTEXT_SCHEMAS[hook]);
      return { ajv, validators };
    },
  },
  {
    file: 'src/generated/issuers.ts',
    from: 'TRUSTED_ISSUERS_SCHEMA of src/auth/issuers.ts',
    compile: (code) => {
      const ajv = createAjv({ allErrors: false, code });
      return { ajv, validators: { trustedIssuers: ajv.compile(TRUSTED_ISSUERS_SCHEMA) } };
    },
  },
  {
    file: 'src/generated/models.ts',
    from: 'MANIFEST_SCHEMA, MODEL_CARD_SCHEMA and APPROVED_MODELS_SCHEMA, for src/scoring/load.ts',
    compile: (code) => {
      const ajv = createAjv({ code });
      return {
        ajv,
        validators: {
          manifest: ajv.compile(MANIFEST_SCHEMA),
          modelCard: ajv.compile(MODEL_CARD_SCHEMA),
          approvedModels: ajv.compile(APPROVED_MODELS_SCHEMA),
        },
      };
    },
  },
  {
    file: 'src/generated/service-definition.ts',
    from: 'DEFINITION_SCHEMA of src/services/definition-schema.ts, for src/services/load.ts',
    compile: (code) => {
      const ajv = createAjv({ code });
      return { ajv, validators: { serviceDefinition: ajv.compile(DEFINITION_SCHEMA) } };
    },
  },
  {
    file: 'src/generated/value-set.ts',
    from: 'VALUE_SET_SCHEMA of src/services/value-sets.ts',
    compile: (code) => {
      const ajv = createAjv({ code });
      return { ajv, validators: { valueSet: ajv.compile(VALUE_SET_SCHEMA) } };
    },
  },
];

/** ajv writes `require(…)` for its runtime helpers (and ajv-formats' formats) even in an ES module. */
const PRELUDE = [
  "import { createRequire } from 'node:module';",
  'const require = createRequire(import.meta.url);',
];

/** The text of a site's generated module. */
export function generate(site: Site): string {
  const { ajv, validators } = site.compile({ source: true, esm: true });
  // standaloneCode looks each export up by schema id (`ajv.getSchema`); the validators here are compiled
  // from schemas without one (or through a $ref), so a view of the instance hands them over by name.
  const view = Object.create(ajv, { getSchema: { value: (name: string) => validators[name] } }) as AjvCore;
  const names = Object.fromEntries(Object.keys(validators).map((name) => [name, name]));
  const header = [
    '// @ts-nocheck',
    `// Generated by \`npm run schemas\` (tools/schemas/standalone.ts) from ${site.from}: do not edit.`,
    '// test/generated/validators.test.ts fails when it no longer matches the schemas, and compares each',
    "// validator with ajv's own: the branches below are ajv's, left out of the coverage figures.",
    '/* c8 ignore start */',
  ];
  return `${[...header, ...PRELUDE, standaloneCode(view, names), '/* c8 ignore stop */'].join('\n')}\n`;
}

function main(args: readonly string[]): number {
  const root = projectRoot();
  let stale = 0;
  for (const site of SITES) {
    const path = join(root, site.file);
    const shown = relative(process.cwd(), path) || path;
    const text = generate(site);
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = undefined;
    }
    if (args.includes('--check')) {
      if (current !== text) {
        process.stderr.write(`${shown} is out of date with the schemas: run \`npm run schemas\`\n`);
        stale += 1;
      }
    } else if (current !== text) {
      writeFileSync(path, text);
      process.stdout.write(`${shown}\n`);
    }
  }
  if (args.includes('--check') && stale === 0) process.stdout.write('src/generated/ is up to date\n');
  return stale === 0 ? 0 : 1;
}

// Run only as a script, not when imported.
if (invokedDirectly(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
