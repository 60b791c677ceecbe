/** A hand-made scored outcome with every status of a value and labels that need escaping. */
import type { ScoredOutcome } from '../../src/scoring/score.js';

export const MODEL = {
  id: 'demo',
  version: '1.0.0',
  sha256: 'a'.repeat(64),
  title: { en: 'Demo <model>', fr: 'Démo <modèle>' },
  status: 'demonstration' as const,
  statusText: { en: 'Demonstration model…', fr: 'Modèle de démonstration…' },
};

export const SCORED: ScoredOutcome = {
  status: 'scored',
  model: MODEL,
  probability: 1 / (1 + Math.exp(-(-1 + 1.5 - 0.5 + 0.25))),
  band: { id: 'higher', label: { en: 'higher risk', fr: 'risque plus élevé' } },
  aboveThreshold: true,
  threshold: 0.25,
  horizonMonths: 24,
  outcome: { en: 'progression', fr: 'progression' },
  population: { en: 'adults', fr: 'adultes' },
  method: 'linear',
  baselineLogit: -1,
  contributions: [
    {
      id: 'bmi',
      label: { en: 'BMI <script>alert(1)</script>', fr: 'IMC <b>' },
      unit: 'kg/m2',
      value: 36,
      status: 'observed',
      date: '2026-01-02T10:00:00Z',
      contribution: 1.5,
      direction: 'raises',
    },
    {
      id: 'kl',
      label: { en: 'KL grade 3', fr: 'Grade KL 3' },
      unit: '1',
      value: 0.54,
      status: 'imputed',
      imputedBecause: 'missing',
      contribution: -0.5,
      direction: 'lowers',
    },
    {
      id: 'injury',
      label: { en: 'Knee injury & "trauma"', fr: 'Traumatisme' },
      unit: '1',
      value: 0,
      status: 'assumed-absent',
      contribution: 0,
      direction: 'neutral',
    },
    {
      id: 'pain',
      label: { en: 'Pain', fr: 'Douleur' },
      unit: '{score}',
      value: 7,
      status: 'imputed',
      imputedBecause: 'stale',
      recorded: '7 {score}',
      date: '2020-01-01',
      contribution: 0.25,
      direction: 'raises',
    },
  ],
  patientSentence: { en: 'About 44% <i>', fr: 'Environ 44 % <i>' },
};
