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
 */
import { readFileSync, writeFileSync } from 'node:fs';
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

async function main(args: readonly string[]): Promise<number> {
  const option = (name: string, fallback: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
  };
  const path = option('file', 'fhir-profiles/terminology/rxnorm.json');
  const rxnav = option('rxnav', 'https://rxnav.nlm.nih.gov');
  const date = option('date', new Date().toISOString().slice(0, 10));
  const file = JSON.parse(readFileSync(path, 'utf8')) as ExpansionFile;
  const rebuilt = await rebuild(file, rxnav, date);
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
