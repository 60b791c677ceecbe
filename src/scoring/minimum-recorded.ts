/**
 * The manifest's `minimumRecorded` rule: a model does not score a subject whose record holds too few of
 * the inputs the manifest lists. An imputed value is a population share, not a fact about the subject:
 * a lesion with one checklist item of seven recorded and six filled with population shares would get an
 * estimate that reads as a statement about that lesion (issue 14: a "<1% (lower risk)" beside a referral).
 */
import type { Language, Localized } from '../language.js';
import type { FeatureValue, Refusal } from './features.js';
import type { MinimumRecordedSpec } from './manifest.js';

/**
 * The refusals of a subject whose recorded inputs fall short of a minimum, one per minimum not met,
 * naming the inputs not recorded. A value counts as recorded when it is observed (an imputed, stale or
 * assumed-absent value does not).
 * @param features the manifest's features (their labels name the inputs not recorded)
 * @param values the values extracted (a feature refused under its own policy has none: not recorded)
 */
export function minimumRecordedRefusals(
  minimums: readonly MinimumRecordedSpec[],
  features: readonly { id: string; label: Localized }[],
  values: readonly FeatureValue[],
): Refusal[] {
  const observed = new Set(values.filter((v) => v.status === 'observed').map((v) => v.id));
  const labels = new Map(features.map((f) => [f.id, f.label]));
  return minimums.flatMap((minimum): Refusal[] => {
    const recorded = minimum.features.filter((id) => observed.has(id)).length;
    if (recorded >= minimum.count) return [];
    const missing = minimum.features.filter((id) => !observed.has(id));
    const names = (lang: Language) => missing.map((id) => labels.get(id)?.[lang] ?? id).join(', ');
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
