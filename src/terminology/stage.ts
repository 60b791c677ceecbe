/**
 * The terminology stage of a hook call (`pipeline.ts`), after the prefetch and before the rules: when the
 * terminology server will not expand a value set the service reads (validate mode, `remote.ts`), the
 * codings of this call are checked with `$validate-code` first, within one deadline, so that the
 * synchronous rules find the answers cached. Without a server, or when none of the service's value sets
 * is in validate mode, there is no stage: `terminologyCheck` answers undefined at the cost of a lookup.
 *
 * Which codings: every distinct `system|code` of the prefetched data and of the hook context (the draft
 * orders), kept to the code systems each value set includes. Not the paths the rules read: an
 * `inValueSet` input is any FHIRPath expression (filters, defines, model features), and a path analysis
 * that missed one would quietly send its codes to the bundled expansion; the system filter is exact (a
 * code of another system is never a member) and the cache makes the repeated codes free.
 */
import type { CompiledService } from '../services/load.js';
import { remoteOf, type RemoteTerminology } from './remote.js';

/** The log of the call: the fields are a value-set URL and a reason, never a code or patient data. */
interface StageLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

const CALL = /inValueSet\(/g;
const LITERAL_CALL = /inValueSet\(\s*'((?:[^'\\]|\\.)*)'\s*\)/g;

/**
 * The value sets a service's expressions (rules, defines, data, focus, model features) name in
 * `inValueSet('<id or url>')`; all of them when a call names one otherwise than by a literal.
 */
function valueSetsOf(
  service: CompiledService,
  named: RemoteTerminology['namedByService'],
): readonly string[] {
  let ids = named.get(service);
  if (ids) return ids;
  const found = new Set<string>();
  let calls = 0;
  let literal = 0;
  const stack: unknown[] = [
    service.definition,
    ...service.models.map((m) => m.manifest),
    ...service.silentModels.map((m) => m.manifest),
  ];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'string') {
      calls += value.match(CALL)?.length ?? 0;
      for (const match of value.matchAll(LITERAL_CALL)) {
        literal += 1;
        found.add(match[1]!);
      }
    } else if (typeof value === 'object' && value !== null) {
      stack.push(...Object.values(value));
    }
  }
  ids = calls > literal ? service.valueSets.ids : [...found];
  named.set(service, ids);
  return ids;
}

/**
 * The terminology stage for this service now, or undefined when it has nothing to do.
 * @returns a function checking the codings of `data`, warning once per value set whose codes the
 *   bundled expansion answers instead (not in time, server failing, too many codes)
 */
export function terminologyCheck(
  service: CompiledService,
): ((data: unknown, log: StageLog) => Promise<void>) | undefined {
  const remote = remoteOf(service.valueSets);
  if (!remote) return undefined;
  const valueSets = valueSetsOf(service, remote.namedByService);
  if (!remote.validating(valueSets)) return undefined;
  return async (data, log) => {
    for (const unchecked of await remote.check(valueSets, data)) {
      log.warn(
        { valueSet: unchecked.valueSet, reason: unchecked.reason },
        'terminology server did not validate these codes in time: the bundled expansion answers them',
      );
    }
  };
}
