/**
 * Command-line parsing shared by the project's tools (fixtures, sandbox, hook CLI): one error type for a
 * bad command line, and node:util's parseArgs made strict with one-line messages that name the option.
 */
import { parseArgs } from 'node:util';

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
