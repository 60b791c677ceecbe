/**
 * Loads `cds-services/*.yaml` at start-up: each file is parsed, checked against DEFINITION_SCHEMA,
 * cross-checked (ids unique, cards name existing rules, templates use allowed tokens, value sets exist)
 * and its FHIRPath compiled. The first problem stops start-up with a CDS_ERR_DEFINITION_INVALID naming
 * the file and the JSON pointer of the offending element.
 *
 * A file may list several `hooks` instead of one `hook`: it then yields one service per hook, with the
 * id `<id>-<hook>` and the hook in its title, so one definition serves e.g. both order-select and
 * order-sign without being copied (each hook needs its own discovery entry and endpoint).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseDocument } from 'yaml';
import { CdsError } from '../errors.js';
import * as generated from '../generated/service-definition.js';
import { type ParsedTemplate, parseTemplate } from '../prefetch/template.js';
import type { CompiledDatum, CompiledDefine, CompiledFocus, CompiledRule } from '../rules/evaluate.js';
import type { CompiledExpression, FhirPath } from '../rules/fhirpath.js';
import type { LoadedModel } from '../scoring/load.js';
import type { ModelManifest } from '../scoring/manifest.js';
import type {
  ActionSpec,
  PrefetchSpec,
  ServiceDefinition,
  ServiceDefinitionFile,
} from './definition-schema.js';
import { generatedValidator } from '../validators.js';
import { NO_VALUE_SETS, type ValueSets } from './value-sets.js';

export interface CompiledPrefetch {
  key: string;
  spec: PrefetchSpec;
  template: ParsedTemplate;
}

/**
 * What checking a service needs of a model: its manifest. A service is checked against models whose
 * sessions are not open yet (start-up opens nothing before every check passed), then bound to the
 * loaded models.
 */
export interface ModelLike {
  readonly manifest: ModelManifest;
}

export interface CompiledService<M extends ModelLike = LoadedModel> {
  readonly definition: ServiceDefinition;
  readonly file: string;
  /** SHA-256 of the definition file's bytes: the rule-set version recorded with each recommendation. */
  readonly sha256: string;
  readonly prefetch: readonly CompiledPrefetch[];
  readonly focus: CompiledFocus | undefined;
  readonly defines: readonly CompiledDefine[];
  /** The `data` entries, with their freshness windows (evaluated before the defines). */
  readonly data: readonly CompiledDatum[];
  readonly rules: readonly CompiledRule[];
  /** The live models the service runs (cards are about them), in definition order. */
  readonly models: readonly M[];
  /**
   * The models run in `mode: silent`, in definition order: scored on every call and recorded in the
   * audit trail (audit_prediction), never the subject of a card (issue 19, local validation).
   */
  readonly silentModels: readonly M[];
  /** The value sets the expressions read as `%valueSets.<name>`. */
  readonly valueSets: ValueSets;
}

/**
 * Variables every expression may use besides the service's prefetch keys: the hook context, the draft
 * orders the call is about (orders/draft-orders.ts; empty on other hooks) and the value sets.
 */
export const PLATFORM_VARIABLES = ['hookContext', 'draftOrders', 'valueSets'] as const;

// DEFINITION_SCHEMA, compiled by `npm run schemas`.
const validateDefinition = generatedValidator<ServiceDefinitionFile>(generated.serviceDefinition);

function fail(file: string, pointer: string, reason: string): never {
  throw new CdsError('CDS_ERR_DEFINITION_INVALID', { file, pointer: pointer ? `#${pointer}` : '', reason });
}

/**
 * Loads every `*.yaml` / `*.yml` file of a folder, in file-name order.
 * @param fhirpath the engine that compiles the expressions
 * @param valueSets the value sets expressions may read (services/value-sets.ts)
 * @throws CdsError CDS_ERR_DEFINITION_INVALID for the first invalid file
 */
export function loadServices<M extends ModelLike = LoadedModel>(
  dir: string,
  fhirpath: FhirPath,
  valueSets: ValueSets = NO_VALUE_SETS,
  models: ReadonlyMap<string, M> = new Map<string, M>(),
): CompiledService<M>[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /\.ya?ml$/.test(n));
  } catch (error) {
    fail(dir, '', `cannot read the services folder: ${(error as Error).message}`);
  }
  const services = names
    .sort()
    .flatMap((name) => loadServiceFile(join(dir, name), fhirpath, valueSets, models));
  const seen = new Map<string, string>();
  for (const service of services) {
    const previous = seen.get(service.definition.id);
    if (previous)
      fail(service.file, '/id', `service id "${service.definition.id}" is already used by ${previous}`);
    seen.set(service.definition.id, service.file);
  }
  return services;
}

/** Loads and compiles one definition file: one service, or one per hook when it lists `hooks`. */
export function loadServiceFile<M extends ModelLike = LoadedModel>(
  path: string,
  fhirpath: FhirPath,
  valueSets: ValueSets = NO_VALUE_SETS,
  models: ReadonlyMap<string, M> = new Map<string, M>(),
): CompiledService<M>[] {
  const file = basename(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    fail(file, '', `cannot read: ${(error as Error).message}`);
  }
  const document = parseDocument(bytes.toString('utf8'), { prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) fail(file, '', `YAML: ${document.errors[0]!.message}`);
  const definition: unknown = document.toJS();
  if (!validateDefinition(definition)) {
    const error = validateDefinition.errors![0]!;
    fail(file, error.instancePath, `${error.message}${paramsText(error.params)}`);
  }
  const { hook, hooks, ...single } = definition;
  // The schema's oneOf sets exactly one of `hook` and `hooks`.
  if (hook !== undefined)
    return [compileService(file, { ...single, hook }, bytes, fhirpath, valueSets, models)];
  return (hooks ?? []).map((hook) => {
    const id = `${single.id}-${hook}`;
    if (id.length > 64) fail(file, '/id', `the service id "${id}" is longer than 64 characters`);
    return compileService(
      file,
      { ...single, id, hook, title: `${single.title} (${hook})` },
      bytes,
      fhirpath,
      valueSets,
      models,
    );
  });
}

function paramsText(params: Record<string, unknown>): string {
  const interesting = params.additionalProperty ?? params.allowedValues;
  return interesting === undefined ? '' : ` (${JSON.stringify(interesting)})`;
}

function compileService<M extends ModelLike>(
  file: string,
  definition: ServiceDefinition,
  bytes: Buffer,
  fhirpath: FhirPath,
  valueSets: ValueSets,
  registry: ReadonlyMap<string, M>,
): CompiledService<M> {
  const { hook } = definition;
  const prefetch = Object.entries(definition.prefetch).map(([key, spec]) => {
    if ((PLATFORM_VARIABLES as readonly string[]).includes(key)) {
      fail(file, `/prefetch/${key}`, `"${key}" is a platform variable; name the prefetch key otherwise`);
    }
    try {
      return { key, spec, template: parseTemplate(spec.query, hook) };
    } catch (error) {
      return fail(file, `/prefetch/${key}/query`, (error as Error).message);
    }
  });
  const variables = [...prefetch.map((p) => p.key), ...PLATFORM_VARIABLES];
  const compile = (source: string, pointer: string, keepTypes = false): CompiledExpression => {
    let compiled: CompiledExpression;
    try {
      compiled = fhirpath.compile(source, variables, keepTypes);
    } catch (error) {
      return fail(file, pointer, (error as Error).message);
    }
    checkValueSets(file, pointer, source, valueSets);
    return compiled;
  };
  const focusExpression = definition.focus && compile(definition.focus.expression, '/focus/expression');
  const data = Object.entries(definition.data ?? {}).map(([name, spec]): CompiledDatum => {
    const at = `/data/${name}`;
    if (variables.includes(name)) {
      fail(file, at, `"${name}" is already a prefetch key, a platform variable or defined`);
    }
    const compiled: CompiledDatum = {
      name,
      spec,
      records: compile(spec.records, `${at}/records`),
      typedRecords: compile(spec.records, `${at}/records`, true),
      date: spec.date === undefined ? undefined : compile(spec.date, `${at}/date`),
      readable: spec.readable.map((check, i) => ({
        test: compile(check.test, `${at}/readable/${i}/test`),
        reason: check.reason,
      })),
      show: spec.show === undefined ? undefined : compile(spec.show, `${at}/show`),
    };
    variables.push(name);
    return compiled;
  });
  const defines = Object.entries(definition.define ?? {}).map(([name, source]): CompiledDefine => {
    if (variables.includes(name)) {
      fail(file, `/define/${name}`, `"${name}" is already a prefetch key, a platform variable or defined`);
    }
    // Kept typed: a define's result is a variable of later expressions (dates must stay dates).
    const expression = compile(source, `/define/${name}`, true);
    variables.push(name);
    return { name, expression };
  });
  const focus = definition.focus && {
    expression: focusExpression!,
    label: compile(definition.focus.label, '/focus/label'),
    date: definition.focus.date === undefined ? undefined : compile(definition.focus.date, '/focus/date'),
  };
  const rules = definition.rules.map((spec, i): CompiledRule => {
    const at = `/rules/${i}`;
    if (spec.kind === 'checklist') {
      return {
        kind: 'checklist',
        spec,
        applicableWhen:
          spec.applicableWhen === undefined
            ? undefined
            : compile(spec.applicableWhen, `${at}/applicableWhen`),
        items: spec.items.map((item, j) => ({
          spec: item,
          value: compile(item.value, `${at}/items/${j}/value`),
        })),
      };
    }
    return {
      kind: 'condition',
      spec,
      when: compile(spec.when, `${at}/when`),
      evidence: (spec.evidence ?? []).map((e, j) => ({
        label: e.label,
        value: compile(e.value, `${at}/evidence/${j}/value`),
      })),
    };
  });
  checkIds(file, definition);
  checkPlaceholders(file, definition);
  checkActions(file, definition);
  checkOutcomes(file, definition, fhirpath);
  const { models, silentModels } = resolveModels(file, definition, registry);
  return {
    definition,
    file,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    prefetch,
    focus,
    defines,
    data,
    rules,
    valueSets,
    models,
    silentModels,
  };
}

/**
 * Each referenced model must be loaded at the exact version, find its `%variables` among the
 * service's prefetch keys, and come with the prefetch key of the patient's Consent resources.
 */
function resolveModels<M extends ModelLike>(
  file: string,
  definition: ServiceDefinition,
  registry: ReadonlyMap<string, M>,
): { models: M[]; silentModels: M[] } {
  const keys = Object.keys(definition.prefetch);
  const refs = definition.models ?? [];
  if (definition.patientObjection !== undefined && !keys.includes(definition.patientObjection)) {
    fail(file, '/patientObjection', `no prefetch key "${definition.patientObjection}"`);
  }
  if (refs.length > 0 && definition.patientObjection === undefined) {
    fail(
      file,
      '/patientObjection',
      'a service that runs models must name the prefetch key of the Consent resources',
    );
  }
  const models = refs.map((ref, i) => {
    // The registry may hold one version per id or every version on disk (keyed id@version).
    const versions = [...registry.values()].filter((m) => m.manifest.id === ref.id);
    if (versions.length === 0) fail(file, `/models/${i}/id`, `no model "${ref.id}" in the models folder`);
    const model = versions.find((m) => m.manifest.version === ref.version);
    if (!model) {
      const found = versions.map((m) => m.manifest.version).join(', ');
      fail(file, `/models/${i}/version`, `model "${ref.id}" is version ${found}, not ${ref.version}`);
    }
    const missing = model.manifest.requires.filter((v) => !keys.includes(v));
    if (missing.length > 0) {
      fail(
        file,
        `/models/${i}`,
        `model "${ref.id}" reads ${missing.map((v) => `%${v}`).join(', ')}: add the prefetch key`,
      );
    }
    return model;
  });
  const live = models.filter((_, i) => refs[i]!.mode !== 'silent');
  const silent = models.filter((_, i) => refs[i]!.mode === 'silent');
  refs.forEach((ref, i) => {
    const same = refs.findIndex((r) => r.id === ref.id && (r.mode === 'silent') === (ref.mode === 'silent'));
    // Cards name a live model by id: two live versions would make that ambiguous.
    if (same !== i && ref.mode !== 'silent')
      fail(
        file,
        `/models/${i}`,
        `model "${ref.id}" is already live in this service: run the other version silent`,
      );
    if (refs.findIndex((r) => r.id === ref.id && r.version === ref.version) !== i)
      fail(file, `/models/${i}`, `model "${ref.id}" ${ref.version} is listed twice`);
  });
  definition.cards.forEach((card, i) => {
    const id = card.when.model;
    if (id === undefined) return;
    const model = live.find((m) => m.manifest.id === id);
    if (!model) {
      const reason = silent.some((m) => m.manifest.id === id)
        ? `model "${id}" runs silent: no card can be about it`
        : `the service does not run model "${id}"`;
      fail(file, `/cards/${i}/when/model`, reason);
    }
    const unknownBand = card.when.bands?.find((b) => !model.manifest.bands.some((band) => band.id === b));
    if (unknownBand) fail(file, `/cards/${i}/when/bands`, `model "${id}" has no band "${unknownBand}"`);
  });
  return { models: live, silentModels: silent };
}

/**
 * Every `inValueSet('<id or url>')` an expression calls must name a loaded value set; the value sets are
 * read through that function only (`%valueSets` is the component itself, not a list of codes).
 */
function checkValueSets(file: string, pointer: string, source: string, valueSets: ValueSets): void {
  if (/%valueSets\s*\./.test(source.replace(/'(?:[^'\\]|\\.)*'/g, "''"))) {
    fail(file, pointer, "read value sets with inValueSet('<id>'), not %valueSets.<name>");
  }
  for (const match of source.matchAll(/inValueSet\(\s*'((?:[^'\\]|\\.)*)'\s*\)/g)) {
    if (!valueSets.get(match[1]!)) {
      const known = valueSets.ids.join(', ') || 'none loaded';
      fail(file, pointer, `unknown value set inValueSet('${match[1]}') (available: ${known})`);
    }
  }
}

/** An action says what it acts on: a resource template or changes to the focus, or a resourceId. */
function checkActions(file: string, definition: ServiceDefinition): void {
  definition.cards.forEach((card, i) =>
    card.suggestions?.forEach((suggestion, j) =>
      suggestion.actions?.forEach((action: ActionSpec, k) => {
        const at = `/cards/${i}/suggestions/${j}/actions/${k}`;
        const sources = Number(action.resource !== undefined) + Number(action.focusChanges !== undefined);
        if (action.type === 'delete') {
          if (action.resourceId === undefined || sources > 0) {
            fail(file, at, 'a delete action names its target with resourceId only');
          }
        } else if (sources !== 1 || action.resourceId !== undefined) {
          fail(file, at, `a ${action.type} action needs exactly one of resource and focusChanges`);
        }
        if (action.focusChanges !== undefined) {
          if (!definition.focus) fail(file, `${at}/focusChanges`, 'focusChanges needs a focus');
          const bad = ['resourceType', 'id'].find((key) => Object.hasOwn(action.focusChanges!, key));
          if (bad) fail(file, `${at}/focusChanges/${bad}`, `focusChanges cannot change ${bad}`);
        }
      }),
    ),
  );
}

/**
 * A card's `outcome` (read by `npm run evaluate`, tools/evaluate/rule-outcomes.ts) compiles on its own: one
 * later resource, no call variables, no value sets. A card about a model has the model's outcome.
 */
function checkOutcomes(file: string, definition: ServiceDefinition, fhirpath: FhirPath): void {
  definition.cards.forEach((card, i) => {
    if (card.outcome === undefined) return;
    const at = `/cards/${i}/outcome`;
    if (card.when.model !== undefined)
      fail(file, at, "a card about a model has the model's outcomeDefinition (its manifest)");
    for (const key of ['expression', 'date'] as const) {
      const source = card.outcome[key];
      if (/inValueSet\s*\(/.test(source.replace(/'(?:[^'\\]|\\.)*'/g, "''")))
        fail(file, `${at}/${key}`, 'the evaluation reads outcomes without value sets: name the codes');
      try {
        fhirpath.compile(source, []);
      } catch (error) {
        fail(file, `${at}/${key}`, (error as Error).message);
      }
    }
  });
}

const RULE_CONDITIONS = [
  'anyFired',
  'allFired',
  'noneFired',
  'anyEvaluated',
  'noneEvaluated',
  'anyIncomplete',
  'noneIncomplete',
] as const;
const DATA_CONDITIONS = ['anyDataUnusable', 'noneDataUnusable'] as const;

function checkIds(file: string, definition: ServiceDefinition): void {
  const ruleIds = definition.rules.map((r) => r.id);
  const duplicate = (ids: string[]) => ids.find((id, i) => ids.indexOf(id) !== i);
  const dupRule = duplicate(ruleIds);
  if (dupRule) fail(file, '/rules', `rule id "${dupRule}" is used twice`);
  const dupCard = duplicate(definition.cards.map((c) => c.id));
  if (dupCard) fail(file, '/cards', `card id "${dupCard}" is used twice`);
  const dataIds = Object.keys(definition.data ?? {});
  const checkCondition = (
    when: Partial<Record<(typeof RULE_CONDITIONS)[number] | (typeof DATA_CONDITIONS)[number], string[]>>,
    pointer: string,
  ) => {
    for (const condition of RULE_CONDITIONS) {
      const ids = when[condition];
      if (ids === undefined) continue;
      const unknown = ids.find((id) => !ruleIds.includes(id));
      if (unknown) fail(file, `${pointer}/${condition}`, `no rule with id "${unknown}"`);
    }
    for (const condition of DATA_CONDITIONS) {
      const unknown = when[condition]?.find((id) => !dataIds.includes(id));
      if (unknown) fail(file, `${pointer}/${condition}`, `no data entry with id "${unknown}"`);
    }
  };
  definition.rules.forEach((rule, i) => {
    if (rule.kind !== 'condition') return;
    for (const key of ['data', 'dataMayBeAbsent'] as const) {
      const unknown = rule[key]?.find((id) => !dataIds.includes(id));
      if (unknown) fail(file, `/rules/${i}/${key}`, `no data entry with id "${unknown}"`);
    }
    const both = rule.data?.find((id) => rule.dataMayBeAbsent?.includes(id));
    if (both) fail(file, `/rules/${i}/dataMayBeAbsent`, `"${both}" is also in data`);
  });
  for (const [name, spec] of Object.entries(definition.data ?? {})) {
    // The earliest record is a date a schedule counts from: it does not age.
    if (spec.pick === 'earliest' && spec.window) {
      fail(file, `/data/${name}/window`, 'a datum picking the earliest record has no window');
    }
  }
  definition.cards.forEach((card, i) => {
    checkCondition(card.when, `/cards/${i}/when`);
    card.suggestions?.forEach(
      (s, j) => s.when && checkCondition(s.when, `/cards/${i}/suggestions/${j}/when`),
    );
  });
  definition.rules.forEach((rule, i) => {
    const dupItem = rule.kind === 'checklist' ? duplicate(rule.items.map((it) => it.id)) : undefined;
    if (dupItem) fail(file, `/rules/${i}/items`, `item id "${dupItem}" is used twice`);
  });
}

const FIXED_PLACEHOLDERS = [
  'focus.label',
  'focus.date',
  'focus.reference',
  'today',
  'now',
  'context.patientId',
  'context.userId',
  'context.encounterId',
  'firedRules',
  'incompleteRules',
  'notRecordedItems',
];

/** Every `{{name}}` in a card template must be one the renderer fills (cards/render.ts). */
function checkPlaceholders(file: string, definition: ServiceDefinition): void {
  const allowed = new Set([
    ...FIXED_PLACEHOLDERS,
    ...definition.rules.flatMap((r) => [`rules.${r.id}.score`, `rules.${r.id}.threshold`]),
    ...Object.keys(definition.data ?? {}).map((id) => `data.${id}`),
  ]);
  const visit = (value: unknown, pointer: string): void => {
    if (typeof value === 'string') {
      for (const match of value.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
        if (!allowed.has(match[1]!)) fail(file, pointer, `unknown placeholder {{${match[1]}}}`);
      }
    } else if (Array.isArray(value)) value.forEach((v, i) => visit(v, `${pointer}/${i}`));
    else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) visit(v, `${pointer}/${k}`);
    }
  };
  definition.cards.forEach((card, i) => {
    if (card.when.model !== undefined) {
      for (const name of MODEL_PLACEHOLDERS) allowed.add(name);
      visit(card, `/cards/${i}`);
      for (const name of MODEL_PLACEHOLDERS) allowed.delete(name);
    } else visit(card, `/cards/${i}`);
  });
}

/** Placeholders of a card about a model (`when.model`): its estimate, band, horizon, why no score. */
export const MODEL_PLACEHOLDERS = [
  'model.risk',
  'model.band',
  'model.horizon',
  'model.reason',
  'model.mainReason',
  'model.title',
];
