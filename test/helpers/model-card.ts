/**
 * A model card holding every required section (src/scoring/model-card.ts), for models the tests build.
 */
export function modelCardFor(
  id: string,
  version: string,
  sha256: string,
): { json: Record<string, unknown>; markdown: string } {
  const json = {
    id,
    version,
    status: 'Test model built by the tests. Not for clinical use.',
    intendedUse: 'Exercising the loader in tests.',
    intendedUsers: 'The test suite.',
    population: { description: 'Generated rows.' },
    trainingData: { kind: 'simulated' },
    outcome: { description: 'the outcome', horizon: '12 months' },
    metrics: {
      overall: { auc: 0.7, calibrationSlope: 1 },
      subgroups: [{ variable: 'all', n: 10 }],
    },
    limits: ['Not a real model.'],
    dates: { trained: '2026-11-22', card: '2026-11-22' },
    onnxSha256: sha256,
  };
  const markdown = `# ${id} ${version}\n\nA test model. Not for clinical use.\n\nONNX sha256: \`${sha256}\`\n`;
  return { json, markdown };
}
