/**
 * Rebuilds `fhir-profiles/terminology/rxnorm.json`, the bundled RxNorm expansion the terminology component
 * reads (src/terminology/terminology.ts): for each ingredient (IN) already listed there (code, name, WHO
 * ATC codes), its clinical (SCD) and branded (SBD) drugs from NLM RxNav
 * (`GET {rxnav}/REST/rxcui/{rxcui}/allrelated.json`), each with the route read from its RxNorm name.
 *
 *     node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs tools/terminology/rxnorm-expansion.ts \
 *       [--rxnav https://rxnav.nlm.nih.gov] [--file fhir-profiles/terminology/rxnorm.json] [--date YYYY-MM-DD]
 *
 * Needs network access to RxNav (a developer machine or CI, never the service). To add an ingredient, add
 * `{ "code": "<IN rxcui>", "display": "<name>", "atc": ["<ATC>"], "source": "…", "products": [] }` to the
 * file and run the script. The file's `source` and `date` then say "NLM RxNav" and the day it ran.
 *
 * Without network, `--sources tools/terminology/sources` merges instead the clinical drugs of published value
 * sets kept in that folder (one JSON file per value set: name, identifier, version, repository, path, commit,
 * what was taken, codes; `rxnorm-ingredients.json` says which ingredient each drug belongs to) into the file:
 *
 *     node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs tools/terminology/rxnorm-expansion.ts \
 *       --sources tools/terminology/sources [--file fhir-profiles/terminology/rxnorm.json] [--date YYYY-MM-DD]
 *
 * Each ingredient then names the value sets its products come from. Running it twice changes nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { invokedDirectly } from '../usage.js';

export interface Product {
  code: string;
  display: string;
  route: string;
}

interface Ingredient {
  /** Absent when the source listed the products but not the ingredient's own code. */
  code?: string;
  display: string;
  atc: string[];
  source: string;
  products: Product[];
}

interface ExpansionFile {
  system: string;
  title: string;
  source: string;
  date: string;
  builtBy: string;
  ingredients: Ingredient[];
}

/** The route of an RxNorm clinical or branded drug, from the dose form in its name. */
export function routeOf(name: string): string {
  const n = name.toLowerCase();
  const rules: [RegExp, string][] = [
    [/ophthalmic/, 'ophthalmic'],
    [/topical|transdermal|patch|cutaneous|medicated pad/, 'topical'],
    [/nasal/, 'nasal'],
    [/rectal|suppository|enema/, 'rectal'],
    [/inject|syringe|cartridge|auto-injector|infusion/, 'parenteral'],
    [/oral|chewable|tablet|capsule|sublingual|buccal/, 'oral'],
  ];
  return rules.find(([pattern]) => pattern.test(n))?.[1] ?? 'unspecified';
}

interface AllRelated {
  allRelatedGroup?: {
    conceptGroup?: { tty?: string; conceptProperties?: { rxcui: string; name: string }[] }[];
  };
}

/** The SCD and SBD of one ingredient, sorted by code. */
export async function productsOf(rxnav: string, ingredient: string): Promise<Product[]> {
  const url = `${rxnav.replace(/\/$/, '')}/REST/rxcui/${encodeURIComponent(ingredient)}/allrelated.json`;
  const res = await fetch(url, { signal: AbortSignal.timeout(20_000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const body = (await res.json()) as AllRelated;
  return (body.allRelatedGroup?.conceptGroup ?? [])
    .filter((g) => g.tty === 'SCD' || g.tty === 'SBD')
    .flatMap((g) => g.conceptProperties ?? [])
    .map((c) => ({ code: c.rxcui, display: c.name, route: routeOf(c.name) }))
    .sort((a, b) => Number(a.code) - Number(b.code));
}

/** Rebuilds the products of every ingredient of `file` from RxNav; returns the new file content. */
export async function rebuild(file: ExpansionFile, rxnav: string, date: string): Promise<ExpansionFile> {
  const ingredients: Ingredient[] = [];
  for (const ingredient of file.ingredients) {
    if (ingredient.code === undefined) {
      // Nothing to ask RxNav by: kept as listed (add its code to the file to have it rebuilt).
      ingredients.push(ingredient);
      continue;
    }
    ingredients.push({
      ...ingredient,
      source: `NLM RxNav allrelated (${date})`,
      products: await productsOf(rxnav, ingredient.code),
    });
  }
  return {
    ...file,
    source: `NLM RxNav ${rxnav}/REST/rxcui/{ingredient}/allrelated.json, SCD and SBD, route read from the RxNorm name; WHO ATC codes from the WHO ATC/DDD Index`,
    date,
    builtBy: 'tools/terminology/rxnorm-expansion.ts',
    ingredients,
  };
}

/** One published value set kept in tools/terminology/sources: where it was read and the codes taken. */
export interface PublishedValueSet {
  valueSet: string;
  identifier: string;
  version: string;
  expansion: string;
  codeSystem: string;
  codeSystemVersion: string;
  repository: string;
  path: string;
  commit: string;
  /** Which of its codes were taken and why the others were not. */
  taken: string;
  codes: { code: string; display: string }[];
}

/** `rxnorm-ingredients.json`: the ingredient each clinical drug of the published value sets belongs to. */
export interface IngredientMap {
  ingredients: {
    display: string;
    code?: string;
    atc: string[];
    /** A word of the RxNorm name: a drug belongs to every ingredient whose word its name contains. */
    match: string;
    /** File names of the published value sets, in the same folder. */
    sources: string[];
  }[];
}

export interface Published {
  map: IngredientMap;
  sources: Record<string, PublishedValueSet>;
}

/** Reads `rxnorm-ingredients.json` and the value sets it names from `dir`. */
export function readPublished(dir: string): Published {
  const map = JSON.parse(readFileSync(join(dir, 'rxnorm-ingredients.json'), 'utf8')) as IngredientMap;
  const sources: Record<string, PublishedValueSet> = {};
  for (const name of new Set(map.ingredients.flatMap((i) => i.sources))) {
    sources[name] = JSON.parse(readFileSync(join(dir, name), 'utf8')) as PublishedValueSet;
  }
  return { map, sources };
}

/** How an expansion file names a published value set. */
export function label(source: PublishedValueSet): string {
  return (
    `${source.valueSet} ${source.identifier} (version ${source.version}, expansion ${source.expansion}, ` +
    `${source.codeSystemVersion}; ${source.repository} ${source.path} at ${source.commit.slice(0, 12)})`
  );
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The codes of `source` whose name contains `word` as a whole word (any case). */
export function productsNamed(source: PublishedValueSet, word: string): Product[] {
  const pattern = new RegExp(`(^|[^a-z])${escapeRegExp(word)}($|[^a-z])`, 'i');
  return source.codes
    .filter((c) => pattern.test(c.display))
    .map((c) => ({ code: c.code, display: c.display, route: routeOf(c.display) }));
}

const NO_PRODUCTS_YET = /; products not bundled yet[^;]*/;

const WHO_ATC = '; WHO ATC from the WHO ATC/DDD Index';

const PUBLISHED_NOTE =
  'Also merged from published value sets kept in tools/terminology/sources (rxnorm-expansion.ts --sources): each ingredient names the value set, repository, path and commit its products come from.';

/**
 * Merges the clinical drugs of the published value sets into `file`: an ingredient already listed (by code,
 * else by name) keeps its products and gains the new ones; a new ingredient is added. Every product named
 * comes from a source; an ingredient whose source lists none of its drugs is an error, not an empty entry.
 * @throws Error naming the ingredient and the value set
 */
export function mergePublished(file: ExpansionFile, published: Published, date: string): ExpansionFile {
  const ingredients = file.ingredients.map((i) => ({ ...i, products: [...i.products], atc: [...i.atc] }));
  for (const wanted of published.map.ingredients) {
    let ingredient = ingredients.find((i) =>
      wanted.code !== undefined
        ? i.code === wanted.code
        : i.display.toLowerCase() === wanted.display.toLowerCase(),
    );
    if (!ingredient) {
      ingredient = {
        ...(wanted.code !== undefined ? { code: wanted.code } : {}),
        display: wanted.display,
        atc: [...wanted.atc],
        source: '',
        products: [],
      };
      ingredients.push(ingredient);
    }
    for (const atc of wanted.atc) if (!ingredient.atc.includes(atc)) ingredient.atc.push(atc);
    for (const name of wanted.sources) {
      const source = published.sources[name];
      if (!source) throw new Error(`${wanted.display}: no published value set ${name}`);
      const products = productsNamed(source, wanted.match);
      if (products.length === 0) {
        throw new Error(`${wanted.display}: ${source.valueSet} lists no drug named "${wanted.match}"`);
      }
      const known = new Set(ingredient.products.map((p) => p.code));
      ingredient.products.push(
        ...products.filter((p) => !known.has(p.code)).sort((a, b) => Number(a.code) - Number(b.code)),
      );
      const named = label(source);
      if (ingredient.source === '') {
        ingredient.source =
          `${named}: ${source.taken}${WHO_ATC}` +
          (ingredient.code === undefined
            ? '; RxNorm ingredient code not given by that source, so the ingredient is matched through these products only'
            : '');
      } else if (!ingredient.source.includes(named)) {
        // An ingredient listed without products said so; it has products now.
        ingredient.source = `${ingredient.source.replace(NO_PRODUCTS_YET, '')}; products also from ${named}`;
      } else if (ingredient.source.startsWith(`${named}: `) && ingredient.source.includes(WHO_ATC)) {
        // What was taken from the source may have been restated since (more of it read): follow the file.
        ingredient.source = `${named}: ${source.taken}${ingredient.source.slice(ingredient.source.indexOf(WHO_ATC))}`;
      }
    }
  }
  return {
    ...file,
    source: file.source.includes(PUBLISHED_NOTE) ? file.source : `${file.source} ${PUBLISHED_NOTE}`,
    date,
    builtBy: 'tools/terminology/rxnorm-expansion.ts',
    ingredients,
  };
}

async function main(args: readonly string[]): Promise<number> {
  const option = (name: string, fallback: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
  };
  const path = option('file', 'fhir-profiles/terminology/rxnorm.json');
  const rxnav = option('rxnav', 'https://rxnav.nlm.nih.gov');
  const date = option('date', new Date().toISOString().slice(0, 10));
  const file = JSON.parse(readFileSync(path, 'utf8')) as ExpansionFile;
  const sources = option('sources', '');
  const rebuilt =
    sources === '' ? await rebuild(file, rxnav, date) : mergePublished(file, readPublished(sources), date);
  writeFileSync(path, `${JSON.stringify(rebuilt, null, 2)}\n`);
  const products = rebuilt.ingredients.reduce((n, i) => n + i.products.length, 0);
  process.stdout.write(`${path}: ${rebuilt.ingredients.length} ingredients, ${products} products\n`);
  return 0;
}

if (invokedDirectly(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${(error as Error).message}\n`);
      process.exit(1);
    },
  );
}
