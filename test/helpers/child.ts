/**
 * Child processes that run src/ or tools/ directly, through the TypeScript loader tap runs the tests
 * with.
 */

/** The loader (ts-node, as tap configures it). */
export const LOADER = './node_modules/@tapjs/typescript/dist/esm/import.mjs';

/**
 * The environment of such a child: PATH, transpile-only, then `extra`. tap sets transpile-only for its
 * own test processes, but a child given an environment of its own loses it, and ts-node then
 * type-checks the whole import graph in every child: a server started this way took about twice as
 * long, minutes for the three processes of a cluster on a loaded machine. `npm test` type-checks the
 * project (tsc --noEmit) before tap runs, so nothing is lost.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '', TS_NODE_TRANSPILE_ONLY: '1', ...extra };
}

/** Kills a child when this test process exits or tap ends it at its timeout (tools/bench/serve-child.ts). */
export { killOnExit } from '../../tools/bench/serve-child.js';
