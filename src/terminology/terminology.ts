/**
 * The terminology component: decides whether a code is a member of a value set written the FHIR way
 * (`ValueSet.compose` with `include`/`exclude`, each with `concept` lists and/or `filter`s), without a
 * terminology server. One matcher per code system:
 *
 * - **WHO ATC** (`http://www.whocc.no/atc`): the hierarchy is the code itself, so `concept is-a M01A`
 *   holds for M01A and every code that starts with it (M01AE03 ketoprofen, M01AB15 ketorolac…);
 *   `descendent-of` leaves out the code itself.
 * - **ICD-10 / ICD-10-CM**: by prefix of the code without its dot (`is-a K92.2` holds for K92.2, K922).
 * - **SNOMED CT**: `is-a` / `descendent-of` read a bundled expansion of the descendants of the concepts the
 *   services need (`terminology/snomed-ct.json`: source, date, the script that built it). A filter on a
 *   concept that file does not expand stops start-up rather than matching nothing.
 * - **RxNorm**: by ingredient, from a bundled expansion (`terminology/rxnorm.json`) giving, for each
 *   ingredient (IN), its WHO ATC codes and its clinical and branded drugs (SCD/SBD) with their route.
 *   Filters: `ingredient = <IN rxcui>` (several: `in` with a comma list), `ATC is-a <ATC code>` (every
 *   ingredient classed under it), and `route in oral,…` (keeps the products of those routes; an ingredient
 *   code itself names no route: it is kept when the list says `unspecified`).
 *
 * Anything else (another system's filter, another property or operator, `valueSet` imports) stops start-up
 * with the file and JSON pointer: a value set never silently matches nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ATC = 'http://www.whocc.no/atc';
export const ICD10 = 'http://hl7.org/fhir/sid/icd-10';
export const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';
export const SNOMED = 'http://snomed.info/sct';
export const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';

export interface ComposeFilter {
  property: string;
  op: string;
  value: string;
}

export interface ComposeInclude {
  system: string;
  concept?: { code: string; display?: string }[];
  filter?: ComposeFilter[];
}

/** Whether a code (already known to be of the include's system) passes. */
type CodeTest = (code: string) => boolean;

/** A rejected filter: the JSON pointer below the include and why. */
export class TerminologyError extends Error {
  readonly pointer: string;
  constructor(pointer: string, message: string) {
    super(message);
    this.pointer = pointer;
  }
}

interface SnomedFile {
  system: string;
  source: string;
  date: string;
  concepts: { code: string; display: string; descendants: { code: string; display: string }[] }[];
}

export interface RxNormProduct {
  code: string;
  display: string;
  /** oral, topical, ophthalmic, rectal, parenteral, nasal, … */
  route: string;
}

interface RxNormFile {
  system: string;
  source: string;
  date: string;
  /** `code` is absent for an ingredient whose source lists its products but not its own RxNorm code. */
  ingredients: { code?: string; display: string; atc: string[]; source: string; products: RxNormProduct[] }[];
}

/** Key prefix of an ingredient the bundled file lists without its RxNorm code. */
const UNCODED = 'name:';

/** The bundled expansions, read once per load. */
export interface BundledTerminology {
  /** SNOMED CT concept → itself and its descendants. */
  readonly snomed: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * RxNorm ingredient → its ATC codes and its products. An ingredient listed without its own code is keyed
   * `name:<display>` (never an RxNorm code): it is then a member through its products only.
   */
  readonly rxnorm: ReadonlyMap<string, { atc: readonly string[]; products: readonly RxNormProduct[] }>;
  /** Files read, with their source and date (for the value-set descriptions and the README). */
  readonly provenance: readonly { file: string; source: string; date: string }[];
}

/**
 * Reads `terminology/snomed-ct.json` and `terminology/rxnorm.json` under the profiles folder; a missing
 * file is an empty expansion (a filter that needs it then stops start-up).
 * @throws Error naming the file when it is not the expected JSON
 */
export function loadBundledTerminology(profilesDir: string): BundledTerminology {
  const read = <T>(name: string): T | undefined => {
    let text: string;
    try {
      text = readFileSync(join(profilesDir, 'terminology', name), 'utf8');
    } catch {
      return undefined;
    }
    return JSON.parse(text) as T;
  };
  const provenance: { file: string; source: string; date: string }[] = [];
  const snomed = new Map<string, Set<string>>();
  const snomedFile = read<SnomedFile>('snomed-ct.json');
  if (snomedFile) {
    if (snomedFile.system !== SNOMED || !Array.isArray(snomedFile.concepts)) {
      throw new Error('terminology/snomed-ct.json: not a SNOMED CT expansion file');
    }
    provenance.push({ file: 'terminology/snomed-ct.json', source: snomedFile.source, date: snomedFile.date });
    for (const concept of snomedFile.concepts) {
      snomed.set(concept.code, new Set([concept.code, ...concept.descendants.map((d) => d.code)]));
    }
  }
  const rxnorm = new Map<string, { atc: string[]; products: RxNormProduct[] }>();
  const rxFile = read<RxNormFile>('rxnorm.json');
  if (rxFile) {
    if (rxFile.system !== RXNORM || !Array.isArray(rxFile.ingredients)) {
      throw new Error('terminology/rxnorm.json: not an RxNorm ingredient expansion file');
    }
    provenance.push({ file: 'terminology/rxnorm.json', source: rxFile.source, date: rxFile.date });
    for (const ingredient of rxFile.ingredients) {
      rxnorm.set(ingredient.code ?? `${UNCODED}${ingredient.display}`, {
        atc: ingredient.atc,
        products: ingredient.products,
      });
    }
  }
  return { snomed, rxnorm, provenance };
}

const icdKey = (code: string) => code.replace(/\./g, '').toUpperCase();

function atcFilter(filter: ComposeFilter, at: string): CodeTest {
  if (filter.property !== 'concept')
    throw new TerminologyError(at, `ATC has no property "${filter.property}"`);
  const root = filter.value;
  if (filter.op === 'is-a') return (code) => code.startsWith(root);
  if (filter.op === 'descendent-of') return (code) => code.length > root.length && code.startsWith(root);
  if (filter.op === '=') return (code) => code === root;
  throw new TerminologyError(at, `ATC filters support is-a, descendent-of and =, not "${filter.op}"`);
}

function icdFilter(filter: ComposeFilter, at: string): CodeTest {
  if (filter.property !== 'concept')
    throw new TerminologyError(at, `ICD-10 has no property "${filter.property}"`);
  const root = icdKey(filter.value);
  if (filter.op === 'is-a') return (code) => icdKey(code).startsWith(root);
  if (filter.op === 'descendent-of') {
    return (code) => icdKey(code).length > root.length && icdKey(code).startsWith(root);
  }
  throw new TerminologyError(at, `ICD-10 filters support is-a and descendent-of, not "${filter.op}"`);
}

function snomedFilter(filter: ComposeFilter, at: string, bundled: BundledTerminology): CodeTest {
  if (filter.property !== 'concept') {
    throw new TerminologyError(at, `SNOMED CT filters read the hierarchy only (property "concept")`);
  }
  const members = bundled.snomed.get(filter.value);
  if (!members) {
    throw new TerminologyError(
      at,
      `SNOMED CT ${filter.value} has no bundled expansion (terminology/snomed-ct.json): add it with tools/terminology/snomed-expansion.ts`,
    );
  }
  if (filter.op === 'is-a') return (code) => members.has(code);
  if (filter.op === 'descendent-of') return (code) => code !== filter.value && members.has(code);
  throw new TerminologyError(at, `SNOMED CT filters support is-a and descendent-of, not "${filter.op}"`);
}

const list = (value: string) =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');

/**
 * RxNorm filters of one include, ANDed: the ingredients they select (ingredient / ATC) and the routes
 * their products must have (route).
 */
function rxnormFilters(filters: ComposeFilter[], at: string, bundled: BundledTerminology): CodeTest {
  let ingredients: Set<string> | undefined;
  let routes: Set<string> | undefined;
  const restrict = (selected: Iterable<string>) => {
    const next = new Set(selected);
    ingredients = ingredients ? new Set([...ingredients].filter((i) => next.has(i))) : next;
  };
  filters.forEach((filter, i) => {
    const where = `${at}/filter/${i}`;
    if (filter.property === 'ingredient' && (filter.op === '=' || filter.op === 'in')) {
      const wanted = filter.op === '=' ? [filter.value] : list(filter.value);
      const unknown = wanted.find((code) => !bundled.rxnorm.has(code));
      if (unknown !== undefined) {
        throw new TerminologyError(where, `RxNorm ingredient ${unknown} is not in terminology/rxnorm.json`);
      }
      restrict(wanted);
    } else if (filter.property === 'ATC' && filter.op === 'is-a') {
      const selected = [...bundled.rxnorm].filter(([, v]) => v.atc.some((a) => a.startsWith(filter.value)));
      if (selected.length === 0) {
        throw new TerminologyError(
          where,
          `no RxNorm ingredient of terminology/rxnorm.json is classed under ATC ${filter.value}`,
        );
      }
      restrict(selected.map(([code]) => code));
    } else if (filter.property === 'route' && (filter.op === '=' || filter.op === 'in')) {
      routes = new Set(filter.op === '=' ? [filter.value] : list(filter.value));
    } else {
      throw new TerminologyError(
        where,
        `RxNorm filters are "ingredient =/in", "ATC is-a" and "route =/in", not "${filter.property} ${filter.op}"`,
      );
    }
  });
  if (!ingredients) throw new TerminologyError(at, 'an RxNorm include needs an ingredient or ATC filter');
  const members = new Set<string>();
  for (const ingredient of ingredients) {
    if ((!routes || routes.has('unspecified')) && !ingredient.startsWith(UNCODED)) members.add(ingredient);
    for (const product of bundled.rxnorm.get(ingredient)!.products) {
      if (!routes || routes.has(product.route)) members.add(product.code);
    }
  }
  return (code) => members.has(code);
}

/**
 * Compiles one `include` (or `exclude`) into a test of `code` for its system: a listed concept, or a code
 * passing every filter (FHIR: the filters of one include are ANDed; concepts and filters are alternatives).
 * @param at JSON pointer of the include, for error messages
 * @throws TerminologyError for a filter this component cannot evaluate
 */
export function compileInclude(include: ComposeInclude, at: string, bundled: BundledTerminology): CodeTest {
  const listed = new Set(
    (include.concept ?? []).map((c) => (isIcd(include.system) ? icdKey(c.code) : c.code)),
  );
  const filters = include.filter ?? [];
  let filtered: CodeTest | undefined;
  if (filters.length > 0) {
    if (include.system === RXNORM) {
      filtered = rxnormFilters(filters, at, bundled);
    } else {
      const tests = filters.map((filter, i) => {
        const where = `${at}/filter/${i}`;
        if (include.system === ATC) return atcFilter(filter, where);
        if (isIcd(include.system)) return icdFilter(filter, where);
        if (include.system === SNOMED) return snomedFilter(filter, where, bundled);
        throw new TerminologyError(where, `no filter support for the code system ${include.system}`);
      });
      filtered = (code) => tests.every((test) => test(code));
    }
  }
  const icd = isIcd(include.system);
  return (code) => listed.has(icd ? icdKey(code) : code) || (filtered !== undefined && filtered(code));
}

function isIcd(system: string): boolean {
  return system === ICD10 || system === ICD10CM;
}

/** A compiled value set: membership of a (system, code) pair. */
export interface ValueSetMatcher {
  readonly id: string;
  readonly url: string;
  /** The code systems the compose includes: a code of any other system is never a member. */
  readonly systems: ReadonlySet<string>;
  contains(system: string, code: string): boolean;
}

/**
 * Compiles a whole compose: a code is a member when an include of its system admits it and no exclude of
 * its system does.
 */
export function compileCompose(
  id: string,
  url: string,
  compose: { include: ComposeInclude[]; exclude?: ComposeInclude[] },
  bundled: BundledTerminology,
): ValueSetMatcher {
  const group = (items: ComposeInclude[], base: string) => {
    const bySystem = new Map<string, CodeTest[]>();
    items.forEach((item, i) => {
      const tests = bySystem.get(item.system) ?? [];
      tests.push(compileInclude(item, `${base}/${i}`, bundled));
      bySystem.set(item.system, tests);
    });
    return bySystem;
  };
  const includes = group(compose.include, '/compose/include');
  const excludes = group(compose.exclude ?? [], '/compose/exclude');
  const cache = new Map<string, boolean>();
  return {
    id,
    url,
    systems: new Set(includes.keys()),
    contains(system, code) {
      const key = `${system}|${code}`;
      let known = cache.get(key);
      if (known === undefined) {
        known =
          (includes.get(system) ?? []).some((test) => test(code)) &&
          !(excludes.get(system) ?? []).some((test) => test(code));
        if (cache.size < 100_000) cache.set(key, known);
      }
      return known;
    },
  };
}
