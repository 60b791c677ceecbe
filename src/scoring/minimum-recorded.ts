/**
 * The manifest's `minimumRecorded` rule: a model does not score a subject whose record holds too few of
 * the inputs the manifest lists. An imputed value is a population share, not a fact about the subject:
 * a lesion with one checklist item of seven recorded and six filled with population shares would get an
 * estimate that reads as a statement about that lesion (issue 14: a "<1% (lower risk)" beside a referral).
 */
import type { FeatureValue, Refusal } from './features.js';
import type { MinimumRecordedSpec } from './manifest.js';

/**
 * The refusals of a subject whose recorded inputs fall short of a minimum, one per minimum not met,
 * naming the inputs not recorded. A value counts as recorded when it is observed (an imputed, stale or
 * assumed-absent value does not).
 * @param values the extracted values of every feature (in any order)
 */
export function minimumRecordedRefusals(
  minimums: readonly MinimumRecordedSpec[],
  values: readonly FeatureValue[],
): Refusal[] {
  const byId = new Map(values.map((v) => [v.id, v]));
  return minimums.flatMap((minimum): Refusal[] => {
    const listed = minimum.features.map((id) => ({ id, value: byId.get(id) }));
    const recorded = listed.filter((f) => f.value?.status === 'observed').length;
    if (recorded >= minimum.count) return [];
    const missing = listed.filter((f) => f.value?.status !== 'observed');
    const names = (lang: 'en' | 'fr') => missing.map((f) => f.value?.label[lang] ?? f.id).join(', ');
    const total = minimum.features.length;
    const needed =
      minimum.count === total
        ? { en: `all ${total} needed`, fr: `les ${total} requis` }
        : { en: `${minimum.count} of ${total} needed`, fr: `${minimum.count} sur ${total} requis` };
    return [
      {
        code: 'incomplete',
        text: {
          en: `${minimum.label.en} not recorded: ${names('en')} (${needed.en})`,
          fr: `${minimum.label.fr} non renseignés : ${names('fr')} (${needed.fr})`,
        },
      },
    ];
  });
}
