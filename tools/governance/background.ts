/**
 * What the governance report (src/governance/report.ts) compares drift against, for one loaded model
 * version: its background sample as rows of feature id → value (the `background` input of
 * buildGovernanceReport) and the model's estimates on those rows (`backgroundRisk`), so that the report
 * shows the drift of every input and of the risk distribution. For `npm run evaluate`.
 */
import { type LoadedModel, modelKey, predict } from '../../src/scoring/load.js';

export interface BackgroundForReport {
  /** `modelId@version`, the key of both inputs of the report. */
  key: string;
  rows: Record<string, number>[];
  risks: number[];
}

/**
 * The background sample of a model version and the model's estimates on it. A model without a
 * background file has the single row of its features' reference values: too few for a drift figure
 * (the report suppresses it), returned as it is.
 */
export async function backgroundForReport(model: LoadedModel): Promise<BackgroundForReport> {
  const ids = model.manifest.features.map((f) => f.id);
  const rows = model.background.map((row) => Object.fromEntries(ids.map((id, i) => [id, row[i]!])));
  const risks = Array.from(await predict(model, model.background));
  return { key: modelKey(model.manifest.id, model.manifest.version), rows, risks };
}
