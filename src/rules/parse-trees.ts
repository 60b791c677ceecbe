/**
 * Parse trees of the bundled FHIRPath sources, stored with the build so that start-up does not run
 * fhirpath.js's ANTLR parser for them (about 5 ms a source, a tenth of start-up's CPU; reading a stored
 * tree takes a hundredth of that). `npm run build` writes them to dist/fhirpath-trees.json
 * (`tools/fhirpath-trees.ts`), collected by loading the bundled folders with start-up's own code; the
 * app reads the file once (`main.ts` names it), checks it here and hands the trees to its engine
 * (`fhirpath.ts`).
 *
 * The file is a cache: each tree is keyed by the exact source text, and the file by the fhirpath.js
 * version that parsed them. Absent, unreadable, malformed or of another version, it is not used and
 * every source is parsed as before; a source it does not hold (a site's own service) is parsed.
 */
import {
  createFhirPath,
  FHIRPATH_VERSION,
  type FhirPath,
  parseFhirPath,
  type ParseTrees,
} from './fhirpath.js';
import type { AstNode } from './narrow.js';

/** The file's content. */
export interface StoredParseTrees {
  /** The fhirpath.js version whose parser made the trees. */
  fhirpath: string;
  /** [source text, its tree], by source text. */
  trees: [string, AstNode][];
}

/**
 * What reading the file gave: the trees, or why there are none (`absent`, `unreadable: …`,
 * `malformed: …`, `made by fhirpath.js <version>, this is <version>`).
 */
export type ParseTreesRead =
  { trees: ParseTrees; reason?: undefined } | { trees?: undefined; reason: string };

/**
 * The parse tree of every FHIRPath source that `load` compiles with the engine it is given (the
 * bundled services, models and feature defaults, loaded with start-up's code), by source text.
 */
export function collectParseTrees(load: (engine: FhirPath) => unknown): Map<string, AstNode> {
  const inner = createFhirPath();
  const sources = new Set<string>();
  const recording: FhirPath = {
    get counts() {
      return inner.counts;
    },
    compile(source, allowedVariables, keepTypes) {
      sources.add(source);
      return inner.compile(source, allowedVariables, keepTypes);
    },
  };
  load(recording);
  return new Map([...sources].sort().map((source) => [source, parseFhirPath(source)]));
}

/** The file's text for these trees, made by `version` of fhirpath.js. */
export function serializeParseTrees(trees: ParseTrees, version = FHIRPATH_VERSION): string {
  const stored: StoredParseTrees = { fhirpath: version, trees: [...trees] };
  return `${JSON.stringify(stored)}\n`;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The trees of a stored file's text, if they were made by this version of fhirpath.js (`version`, for
 * tests). Never throws: text that cannot be used is a reason.
 */
export function parseStoredTrees(text: string, version = FHIRPATH_VERSION): ParseTreesRead {
  let stored: unknown;
  try {
    stored = JSON.parse(text);
  } catch (error) {
    return { reason: `unreadable: ${(error as Error).message}` };
  }
  if (!isObject(stored) || typeof stored.fhirpath !== 'string' || !Array.isArray(stored.trees)) {
    return { reason: 'malformed: not { fhirpath, trees }' };
  }
  if (stored.fhirpath !== version) {
    return { reason: `made by fhirpath.js ${stored.fhirpath}, this is ${version}` };
  }
  const trees = new Map<string, AstNode>();
  for (const [index, entry] of (stored.trees as unknown[]).entries()) {
    if (
      !Array.isArray(entry) ||
      entry.length !== 2 ||
      typeof entry[0] !== 'string' ||
      !isObject(entry[1]) ||
      typeof entry[1].type !== 'string'
    ) {
      return { reason: `malformed: entry ${index} is not [source, tree]` };
    }
    trees.set(entry[0], entry[1] as unknown as AstNode);
  }
  return { trees };
}
