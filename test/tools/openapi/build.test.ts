import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { parse } from 'yaml';
import { ERRORS, type ErrorCode } from '../../../src/errors.js';
import { buildOpenApi, renderOpenApi } from '../../../tools/openapi/build.js';
import { CONTEXT_SCHEMAS, SCHEMAS } from '../../../src/request/schemas.js';
import { DEFINITION_SCHEMA } from '../../../src/services/definition-schema.js';
import { buildTestApp } from '../../helpers/app.js';

const REGENERATE = 'openapi.yaml is out of date with the code: run `npm run openapi` and commit the result';
const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'] as const;

type Operation = { responses: Record<string, { description: string }> };
type PathItem = Partial<Record<(typeof METHODS)[number], Operation>>;
interface OpenApiDoc {
  openapi: string;
  jsonSchemaDialect: string;
  info: { title: string; version: string; description: string };
  paths: Record<string, PathItem>;
  components: { schemas: Record<string, unknown> };
  'x-error-codes': Record<string, { status: number; issue: string; message: string }>;
}

const doc = buildOpenApi() as unknown as OpenApiDoc;
const fileText = readFileSync(new URL('../../../openapi.yaml', import.meta.url), 'utf8');

/** Every route of an app, read from Fastify's route tree (`*` is the CORS catch-all OPTIONS route). */
function registeredRoutes(app: FastifyInstance): { method: string; url: string }[] {
  const routes: { method: string; url: string }[] = [];
  const segments: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│├└─\s]*)(\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    segments.length = depth;
    segments[depth - 1] = match[2]!;
    for (const method of match[3]?.split(', ') ?? []) routes.push({ method, url: segments.join('') });
  }
  return routes;
}

const toOpenApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');
const toFastifyPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');

t.test('openapi.yaml is exactly what buildOpenApi() generates', async (t) => {
  t.same(parse(fileText), doc, REGENERATE);
  t.equal(fileText, renderOpenApi(), REGENERATE);
});

t.test('the document is OpenAPI 3.1 with the 2020-12 dialect and names what it implements', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
  t.equal(doc.openapi, '3.1.0');
  t.equal(doc.jsonSchemaDialect, 'https://json-schema.org/draft/2020-12/schema');
  t.equal(doc.info.version, pkg.version);
  t.match(doc.info.description, /CDS Hooks 2\.0\.1/);
  t.match(doc.info.description, /cards only/);
  t.match(doc.info.description, /never returns systemActions/);
});

t.test('every route the app registers is described in paths, and nothing else', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  await app.ready();
  const routes = registeredRoutes(app);
  // The parser found the routes it must find (a format change in printRoutes would show here).
  t.ok(routes.some((r) => r.method === 'GET' && r.url === '/cds-services'));
  t.ok(routes.some((r) => r.method === 'POST' && r.url === '/cds-services/:id'));
  t.ok(routes.some((r) => r.method === 'OPTIONS' && r.url === '*'));
  for (const route of routes) {
    t.ok(
      app.hasRoute({ method: route.method as 'GET', url: route.url === '*' ? '/*' : route.url }),
      `${route.method} ${route.url} parsed from printRoutes is a real route`,
    );
    const method = route.method.toLowerCase() as (typeof METHODS)[number];
    // The CORS catch-all answers preflights on every path.
    const paths = route.url === '*' ? Object.keys(doc.paths) : [toOpenApiPath(route.url)];
    for (const path of paths) {
      t.ok(doc.paths[path]?.[method], `${route.method} ${path} is in openapi paths`);
    }
  }
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS.filter((m) => item[m])) {
      const url = method === 'options' ? '/*' : toFastifyPath(path);
      t.ok(app.hasRoute({ method: method.toUpperCase() as 'GET', url }), `${method} ${path} is served`);
    }
  }
});

t.test('every error code is in x-error-codes with its status, issue type and message', async (t) => {
  const table = doc['x-error-codes'];
  t.same(Object.keys(table).sort(), Object.keys(ERRORS).sort());
  for (const [code, entry] of Object.entries(ERRORS)) {
    t.equal(table[code]?.status, entry.status, `${code} status`);
    t.equal(table[code]?.issue, entry.issue, `${code} issue`);
    t.equal(table[code]?.message, entry.message, `${code} message`);
  }
});

t.test('each service-call error response lists the codes of its status', async (t) => {
  const responses = doc.paths['/cds-services/{id}']!.post!.responses;
  t.same(Object.keys(responses), ['200', '400', '401', '404', '412', '413', '415', '429', '500', '503']);
  for (const status of ['400', '401', '404', '412', '413', '415', '429', '503']) {
    const codes = (Object.keys(ERRORS) as ErrorCode[]).filter((c) => String(ERRORS[c].status) === status);
    t.ok(codes.length > 0, `some code has status ${status}`);
    for (const code of codes) t.match(responses[status]!.description, code, `${status} lists ${code}`);
  }
  t.match(responses['500']!.description, 'CDS_ERR_INTERNAL');
  t.notMatch(responses['500']!.description, 'CDS_ERR_DEFINITION_INVALID', 'a start-up error is no answer');
  t.ok(
    (responses['503'] as { headers?: Record<string, unknown> }).headers?.['Retry-After'],
    'the audit fail-safe 503 says when to retry',
  );
});

t.test('components.schemas are the objects the server validates with', async (t) => {
  const schemas = doc.components.schemas;
  t.equal(schemas.HookRequest, SCHEMAS.HookRequest, 'the very HookRequest object (identity)');
  for (const [name, schema] of Object.entries(SCHEMAS)) t.equal(schemas[name], schema, name);
  for (const [hook, schema] of Object.entries(CONTEXT_SCHEMAS)) t.equal(schemas[`Context_${hook}`], schema);
  const { $schema: _, ...definition } = DEFINITION_SCHEMA;
  t.same(schemas.ServiceDefinition, definition);
  t.notOk('$schema' in (schemas.ServiceDefinition as object));
  const contextNames = Object.keys(CONTEXT_SCHEMAS).map((hook) => `Context_${hook}`);
  const expected = [...Object.keys(SCHEMAS), 'ServiceDefinition', 'ModelManifest', ...contextNames];
  t.same(Object.keys(schemas).sort(), expected.sort(), 'nothing else in components.schemas');
});

t.test('every $ref in the document resolves', async (t) => {
  const refs = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) {
        if (key === '$ref' && typeof child === 'string') refs.add(child);
        else walk(child);
      }
    }
  };
  walk(doc);
  t.ok(refs.size > 10);
  for (const ref of refs) {
    const target = ref
      .replace(/^#\//, '')
      .split('/')
      .reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], doc);
    t.ok(target, `${ref} resolves`);
  }
});

t.test(
  'every CDS operation but the CORS preflights requires the client JWT and may answer 401',
  async (t) => {
    const raw = doc as unknown as {
      paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
      components: { securitySchemes: Record<string, { type: string; scheme: string; bearerFormat: string }> };
    };
    t.same(raw.components.securitySchemes.cdsClientJwt, {
      ...raw.components.securitySchemes.cdsClientJwt,
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
    let checked = 0;
    for (const [path, item] of Object.entries(raw.paths)) {
      // Model cards are public documents, like the published guidelines cards link to.
      // Analytics have their own credential (the governance team's), not the CDS client JWT; so do the
      // operations endpoints (metrics, health, reload: test/ops/).
      if (/^\/(models|analytics|metrics|health|admin)\b/.test(path)) continue;
      // Explanation pages are opened in a browser: their signed link is the credential.
      if (path.startsWith('/explanations')) {
        t.same(item.get?.security, [], 'the explanation page needs no JWT');
        continue;
      }
      for (const [method, operation] of Object.entries(item)) {
        if (!METHODS.includes(method as (typeof METHODS)[number])) continue;
        checked++;
        if (method === 'options') {
          t.same(operation.security, [], `${method} ${path} needs no token`);
        } else {
          t.same(operation.security, [{ cdsClientJwt: [] }], `${method} ${path} needs the JWT`);
          t.ok(operation.responses['401'], `${method} ${path} documents 401`);
        }
      }
    }
    t.ok(checked >= 4);
  },
);
