/**
 * Command-line pieces shared by the project's tools (fixtures, sandbox, hook CLI, training, audit
 * verification, OpenAPI): whether a module runs as the command, one error type for a bad command line,
 * and node:util's parseArgs made strict with one-line messages that name the option.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/**
 * Whether the module at `moduleUrl` (its `import.meta.url`) is the script node was started with, rather
 * than imported by another (tests import the tools). Compared by real path: an npm bin is a symlink.
 */
export function invokedDirectly(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/** A bad command line; `message` says what is wrong, in one line. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/**
 * Parses `argv` against `options`: no positional argument, no unknown option, a value for every string
 * option and none for a boolean one.
 * @throws UsageError naming the offending argument
 */
export function parseOptions<O extends OptionSpec>(argv: readonly string[], options: O) {
  const { values, tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind === 'positional') throw new UsageError(`unexpected argument "${token.value}"`);
    if (token.kind !== 'option') continue;
    if (!Object.hasOwn(options, token.name)) throw new UsageError(`unknown option ${token.rawName}`);
    const type = options[token.name]!.type;
    if (type === 'string' && token.value === undefined)
      throw new UsageError(`${token.rawName} needs a value`);
    if (type === 'boolean' && token.value !== undefined)
      throw new UsageError(`${token.rawName} takes no value`);
  }
  return values;
}
