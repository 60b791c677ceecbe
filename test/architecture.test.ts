/**
 * The import rules of the layout (style.md §3: a thin HTTP shell, a framework-free core, I/O at named
 * edges), checked on the source itself. Each file's import specifiers are read from its syntax tree
 * (TypeScript's parser, so comments and strings never count): static `import … from`, `export … from`,
 * `import x = require()`, `require()`, dynamic `import()` and type-level `import('…')`. Type-only imports
 * count: a type import still ties the module to the package it names.
 *
 * Each rule is first run on a synthetic file list holding a violation, so that a rule that no longer
 * matches anything fails here instead of passing vacuously.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** A source file: its path from the repository root, with forward slashes, and its text. */
interface SourceFile {
  path: string;
  text: string;
}

/** One import of a file. `specifier` is null for a dynamic import whose argument is not a literal. */
interface ImportRef {
  specifier: string | null;
  line: number;
}

type RuleName = 'http-shell-only' | 'core-no-io' | 'src-no-tools' | 'no-test-imports' | 'checkable-imports';

interface Violation {
  rule: RuleName;
  file: string;
  line: number;
  specifier: string | null;
}

/** Every import specifier of a file, from its syntax tree. */
function importsOf(file: SourceFile): ImportRef[] {
  const source = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: ImportRef[] = [];
  const add = (node: ts.Node, literal: ts.Node | undefined): void => {
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    const specifier =
      literal !== undefined && (ts.isStringLiteral(literal) || ts.isNoSubstitutionTemplateLiteral(literal))
        ? literal.text
        : null;
    found.push({ specifier, line });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || (ts.isExportDeclaration(node) && node.moduleSpecifier)) {
      add(node, node.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, node.moduleReference.expression);
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === 'require'))
    ) {
      add(node, node.arguments[0]);
    } else if (ts.isImportTypeNode(node)) {
      add(node, ts.isLiteralTypeNode(node.argument) ? node.argument.literal : undefined);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The repository path a relative specifier points to (extension kept), or null for a package. */
function target(from: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  return join(dirname(from), specifier).split(sep).join('/');
}

const under = (path: string, folder: string): boolean => path.startsWith(`${folder}/`);

/** The HTTP shell: the only files that may know the web framework. */
const isHttpShell = (path: string): boolean =>
  under(path, 'src/http') || path === 'src/app.ts' || path === 'src/main.ts';

/** fastify itself, its subpaths, and its plugins (`@fastify/*`, `fastify-*`). */
const isFastify = (specifier: string): boolean => /^(fastify($|[/-])|@fastify\/)/.test(specifier);

/** The framework-free core: rules, scoring, explanation, cards and the orchestration of one call. */
const CORE_FILES = [
  'src/pipeline.ts',
  'src/prefetch/template.ts',
  'src/prefetch/resolve.ts',
  'src/language.ts',
  'src/cds-hooks.ts',
  'src/codes.ts',
  'src/errors.ts',
];
const CORE_FOLDERS = ['src/rules', 'src/explain', 'src/cards', 'src/consent', 'src/orders', 'src/scoring'];
/** The named I/O edge of scoring: it reads the model files and opens the ONNX sessions. */
const CORE_EDGES = ['src/scoring/load.ts'];

const isCore = (path: string): boolean =>
  !CORE_EDGES.includes(path) &&
  (CORE_FILES.includes(path) || CORE_FOLDERS.some((folder) => under(path, folder)));

/** File system, network, processes, threads, databases and the native ONNX runtime. */
const IO_MODULES = [
  'fs',
  'net',
  'http',
  'https',
  'dgram',
  'child_process',
  'worker_threads',
  'pg',
  'better-sqlite3',
  'onnxruntime-node',
];

/** Whether a package specifier is one of IO_MODULES, with or without `node:`, or a subpath of one. */
const isIo = (specifier: string): boolean => {
  const name = specifier.replace(/^node:/, '');
  return IO_MODULES.some((io) => name === io || name.startsWith(`${io}/`));
};

/** The import rules, over a whole file list. */
function checkImports(files: readonly SourceFile[]): Violation[] {
  const violations: Violation[] = [];
  for (const file of files) {
    const inSrc = under(file.path, 'src');
    for (const { specifier, line } of importsOf(file)) {
      const report = (rule: RuleName): void => {
        violations.push({ rule, file: file.path, line, specifier });
      };
      if (specifier === null) {
        // A computed specifier escapes every rule below: the service must name what it imports.
        if (inSrc) report('checkable-imports');
        continue;
      }
      const path = target(file.path, specifier);
      if (inSrc && !isHttpShell(file.path) && isFastify(specifier)) report('http-shell-only');
      if (isCore(file.path) && isIo(specifier)) report('core-no-io');
      if (inSrc && path !== null && under(path, 'tools')) report('src-no-tools');
      // The tests import the service and its tools; nothing imports the tests.
      if (!under(file.path, 'test') && path !== null && under(path, 'test')) report('no-test-imports');
    }
  }
  return violations;
}

/** Every .ts file under `folder`, with its text. */
function readTree(folder: string): SourceFile[] {
  const entries = readdirSync(join(ROOT, folder), { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => {
      const absolute = join(entry.parentPath, entry.name);
      return { path: relative(ROOT, absolute).split(sep).join('/'), text: readFileSync(absolute, 'utf8') };
    })
    .sort((a, b) => a.path.localeCompare(b.path));
}

const rulesOf = (files: SourceFile[]): [RuleName, string, string | null][] =>
  checkImports(files).map((v) => [v.rule, v.file, v.specifier]);

t.test('the parser finds every form of import, and only imports', async (t) => {
  const text = [
    "import a from 'pkg-a';",
    "import type { B } from 'pkg-b';",
    "import 'pkg-side-effect';",
    "export { c } from 'pkg-c';",
    "export type * from 'pkg-d';",
    "const e = await import('pkg-e');",
    'const f = await import(`pkg-f`);',
    "type G = typeof import('pkg-g');",
    "import h = require('pkg-h');",
    "const i = require('pkg-i');",
    'const j = await import(name);',
    "// import k from 'pkg-comment';",
    'const l = "import m from \'pkg-string\'";',
    'export const n = 1;',
  ].join('\n');
  t.same(
    importsOf({ path: 'src/x.ts', text }).map((ref) => ref.specifier),
    [
      'pkg-a',
      'pkg-b',
      'pkg-side-effect',
      'pkg-c',
      'pkg-d',
      'pkg-e',
      'pkg-f',
      'pkg-g',
      'pkg-h',
      'pkg-i',
      null,
    ],
  );
  t.same(
    importsOf({ path: 'src/x.ts', text: "\n\nimport type { X } from 'fastify';" }),
    [{ specifier: 'fastify', line: 3 }],
    'the line of the import is reported',
  );
});

t.test('each rule reports a synthetic violation', async (t) => {
  t.same(
    rulesOf([
      { path: 'src/auth/hook.ts', text: "import type { FastifyInstance } from 'fastify';" },
      { path: 'src/ops/x.ts', text: "import helmet from '@fastify/helmet';" },
      { path: 'src/logger.ts', text: "export type { FastifyServerOptions } from 'fastify';" },
      { path: 'src/x.ts', text: "type F = import('fastify').FastifyInstance;" },
      { path: 'src/y.ts', text: "const p = await import('fastify-plugin');" },
    ]),
    [
      ['http-shell-only', 'src/auth/hook.ts', 'fastify'],
      ['http-shell-only', 'src/ops/x.ts', '@fastify/helmet'],
      ['http-shell-only', 'src/logger.ts', 'fastify'],
      ['http-shell-only', 'src/x.ts', 'fastify'],
      ['http-shell-only', 'src/y.ts', 'fastify-plugin'],
    ],
  );
  t.same(
    rulesOf([
      { path: 'src/pipeline.ts', text: "import { readFileSync } from 'node:fs';" },
      { path: 'src/rules/x.ts', text: "import { readFile } from 'fs/promises';" },
      { path: 'src/scoring/score.ts', text: "import type { InferenceSession } from 'onnxruntime-node';" },
      { path: 'src/cards/x.ts', text: "const pg = await import('pg');" },
      { path: 'src/consent/x.ts', text: "import { request } from 'node:https';" },
      { path: 'src/errors.ts', text: "import { Worker } from 'node:worker_threads';" },
      { path: 'src/orders/x.ts', text: "import Database from 'better-sqlite3';" },
      { path: 'src/prefetch/resolve.ts', text: "import { connect } from 'node:net';" },
    ]),
    [
      ['core-no-io', 'src/pipeline.ts', 'node:fs'],
      ['core-no-io', 'src/rules/x.ts', 'fs/promises'],
      ['core-no-io', 'src/scoring/score.ts', 'onnxruntime-node'],
      ['core-no-io', 'src/cards/x.ts', 'pg'],
      ['core-no-io', 'src/consent/x.ts', 'node:https'],
      ['core-no-io', 'src/errors.ts', 'node:worker_threads'],
      ['core-no-io', 'src/orders/x.ts', 'better-sqlite3'],
      ['core-no-io', 'src/prefetch/resolve.ts', 'node:net'],
    ],
  );
  t.same(
    rulesOf([
      { path: 'src/audit/x.ts', text: "import { run } from '../../tools/cli/main.js';" },
      { path: 'src/x.ts', text: "export * from '../tools/bench/run.js';" },
    ]),
    [
      ['src-no-tools', 'src/audit/x.ts', '../../tools/cli/main.js'],
      ['src-no-tools', 'src/x.ts', '../tools/bench/run.js'],
    ],
  );
  t.same(
    rulesOf([
      { path: 'src/x.ts', text: "import { app } from '../test/helpers/app.js';" },
      { path: 'tools/cli/x.ts', text: "import { app } from '../../test/helpers/app.js';" },
      { path: 'src/y.ts', text: 'const m = await import(name);' },
    ]),
    [
      ['no-test-imports', 'src/x.ts', '../test/helpers/app.js'],
      ['no-test-imports', 'tools/cli/x.ts', '../../test/helpers/app.js'],
      ['checkable-imports', 'src/y.ts', null],
    ],
  );
});

t.test('what the rules allow', async (t) => {
  t.same(
    rulesOf([
      // The HTTP shell knows fastify; the scoring edge reads files and opens ONNX sessions.
      { path: 'src/http/routes.ts', text: "import type { FastifyInstance } from 'fastify';" },
      { path: 'src/app.ts', text: "import cors from '@fastify/cors';" },
      { path: 'src/main.ts', text: "import type { FastifyInstance } from 'fastify';" },
      {
        path: 'src/scoring/load.ts',
        text: "import { readFileSync } from 'node:fs';\nimport 'onnxruntime-node';",
      },
      // I/O outside the core, and modules that only look like I/O ones.
      { path: 'src/audit/sqlite.ts', text: "import Database from 'better-sqlite3';" },
      { path: 'src/prefetch/fhir-fetch.ts', text: "import { request } from 'node:http';" },
      {
        path: 'src/rules/x.ts',
        text: "import { createHash } from 'node:crypto';\nimport 'fsm';\nimport 'pgx';",
      },
      { path: 'src/rules/y.ts', text: "import { fastifyLike } from './fastify.js';" },
      // The tests import the service and the tools; the tools import the service.
      { path: 'test/x.test.ts', text: "import '../src/app.js';\nimport '../tools/cli/main.js';" },
      { path: 'tools/cli/main.ts', text: "import { buildApp } from '../../src/app.js';" },
      { path: 'test/y.test.ts', text: 'const m = await import(name);' },
    ]),
    [],
  );
});

t.test('the source tree follows the import rules', async (t) => {
  const src = readTree('src');
  const tools = readTree('tools');
  const tests = readTree('test');
  // A wrong root or filter would find nothing and let every rule pass.
  t.ok(src.length > 60, `${src.length} files in src/`);
  t.ok(tools.length > 20, `${tools.length} files in tools/`);
  t.ok(tests.length > 80, `${tests.length} files in test/`);
  t.ok(src.filter((file) => isCore(file.path)).length > 15, 'the core is found');
  t.ok(
    src.some((file) => CORE_EDGES.includes(file.path)),
    'the scoring edge exists',
  );

  const violations = checkImports([...src, ...tools, ...tests]);
  const rules: RuleName[] = [
    'http-shell-only',
    'core-no-io',
    'src-no-tools',
    'no-test-imports',
    'checkable-imports',
  ];
  for (const rule of rules) {
    const found = violations
      .filter((v) => v.rule === rule)
      .map((v) => `${v.file}:${v.line} imports ${JSON.stringify(v.specifier)}`);
    t.same(found, [], `rule ${rule}`);
  }
});

/**
 * The files reachable from the entry points by relative imports (`.js` specifiers name the `.ts`
 * sources). The SQLite worker thread is an entry point of its own: worker-store.ts starts it by URL.
 */
function reachable(files: readonly SourceFile[], entries: readonly string[]): Set<string> {
  const byPath = new Map(files.map((file) => [file.path, file]));
  const seen = new Set<string>();
  const visit = (path: string): void => {
    const file = byPath.get(path);
    if (!file || seen.has(path)) return;
    seen.add(path);
    for (const { specifier } of importsOf(file)) {
      const to = specifier === null ? null : target(path, specifier);
      if (to !== null) visit(to.replace(/\.js$/, '.ts'));
    }
  };
  entries.forEach(visit);
  return seen;
}

const SERVICE_ENTRIES = ['src/main.ts', 'src/audit/sqlite-worker.ts'];

t.test('src/ holds only what the running service loads', async (t) => {
  const lone = { path: 'src/lone.ts', text: 'export const x = 1;\n' };
  const main = { path: 'src/main.ts', text: "import { y } from './used.js';\n" };
  const used = { path: 'src/used.ts', text: 'export const y = 2;\n' };
  t.same([...reachable([lone, main, used], ['src/main.ts'])], ['src/main.ts', 'src/used.ts']);

  const src = readTree('src');
  const loaded = reachable(src, SERVICE_ENTRIES);
  t.ok(loaded.size > 60, `${loaded.size} files loaded by the service`);
  t.same(
    src.map((file) => file.path).filter((path) => !loaded.has(path)),
    [],
    'files of src/ the service never loads belong in tools/',
  );
});
