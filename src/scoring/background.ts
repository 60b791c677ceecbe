/**
 * The background sample of a model (`background: { file: background.csv }` in the manifest): the rows
 * the explanations are measured against. Contributions are Shapley values of the model's margin
 * against this sample (see src/explain/shapley.ts); without one, the single row of the features'
 * `reference` values plays its part.
 *
 * The file is CSV: a header naming the manifest's feature ids in manifest order, then one row per
 * sampled subject, the values as the model receives them (after unit conversion and coding). An empty
 * cell, `NaN` or `nan` (what numpy.savetxt writes) is a missing value (tree ensembles route it by their
 * missing-value rule).
 */

/** Most rows a background may hold (the explainers summarise it at load; 100 is typical). */
export const MAX_BACKGROUND_ROWS = 10_000;

/**
 * Parses a background CSV against the manifest's feature ids.
 * @throws Error naming the line and what is wrong
 */
export function parseBackground(text: string, featureIds: readonly string[]): number[][] {
  const lines = text
    .split(/\r?\n/)
    .map((line, index) => ({ line: line.trim(), number: index + 1 }))
    .filter(({ line }) => line !== '' && !line.startsWith('#'));
  const header = lines.shift();
  if (!header) throw new Error('the background file is empty');
  const names = header.line.split(',').map((s) => s.trim());
  if (names.join(',') !== featureIds.join(',')) {
    throw new Error(
      `line ${header.number}: the header must name the features in manifest order (${featureIds.join(',')}), not ${names.join(',')}`,
    );
  }
  if (lines.length === 0) throw new Error('the background file has no row');
  if (lines.length > MAX_BACKGROUND_ROWS)
    throw new Error(`the background file has ${lines.length} rows (at most ${MAX_BACKGROUND_ROWS})`);
  return lines.map(({ line, number }) => {
    const cells = line.split(',').map((s) => s.trim());
    if (cells.length !== featureIds.length)
      throw new Error(`line ${number}: ${cells.length} values for ${featureIds.length} features`);
    return cells.map((cell, i) => {
      if (cell === '' || cell === 'NaN' || cell === 'nan') return Number.NaN;
      const value = Number(cell);
      if (!Number.isFinite(value))
        throw new Error(`line ${number}: "${cell}" is not a number (feature ${featureIds[i]})`);
      return value;
    });
  });
}

/** Writes rows as a background CSV (the training script uses it). */
export function formatBackground(
  featureIds: readonly string[],
  rows: readonly (readonly number[])[],
): string {
  const cell = (v: number) => (Number.isNaN(v) ? '' : String(v));
  return [featureIds.join(','), ...rows.map((r) => r.map(cell).join(','))].join('\n') + '\n';
}
