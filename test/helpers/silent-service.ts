/**
 * The knee-OA service with a candidate model version running silent beside the live one (issue 19):
 * the bundled service definition, with knee-oa-progression 1.1.0 (test/fixtures/models, the same recipe
 * retrained on another simulated cohort) added in `mode: silent`, and a card rule in `mode: silent`.
 * Built in a temporary folder from the bundled files, so that it follows them.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './app.js';

const LIVE = `models:
  - id: knee-oa-progression
    version: 1.0.0
`;

/** A card tried out silently: the live model's intermediate band as a warning. */
const SILENT_CARD = `
  - id: intermediateSilent
    mode: silent
    when: { model: knee-oa-progression, scored: true, bands: [intermediate, higher] }
    indicator: warning
    summary:
      en: 'Knee OA: estimated {{model.risk}} risk (trial rule, not shown)'
      fr: 'Gonarthrose : risque estimé {{model.risk}} (règle à l’essai, non affichée)'
`;

export interface SilentSetup {
  servicesDir: string;
  modelsDir: string;
}

/** The service folder and the models folder (1.0.0 bundled, 1.1.0 candidate), with `edit` applied. */
export function silentKneeSetup(edit: (yaml: string) => string = (y) => y): SilentSetup {
  const root = tempDir('cds-silent-');
  const servicesDir = join(root, 'services');
  const modelsDir = join(root, 'models');
  mkdirSync(servicesDir);
  cpSync('models/knee-oa-progression/1.0.0', join(modelsDir, 'knee-oa-progression', '1.0.0'), {
    recursive: true,
  });
  cpSync('test/fixtures/models/knee-oa-progression/1.1.0', join(modelsDir, 'knee-oa-progression', '1.1.0'), {
    recursive: true,
  });
  const bundled = readFileSync('cds-services/knee-oa-progression.yaml', 'utf8');
  if (!bundled.includes(LIVE))
    throw new Error('the bundled knee-OA service no longer lists its model as expected');
  const yaml =
    bundled.replace(LIVE, `${LIVE}  - id: knee-oa-progression\n    version: 1.1.0\n    mode: silent\n`) +
    SILENT_CARD;
  writeFileSync(join(servicesDir, 'knee-oa-progression.yaml'), edit(yaml));
  return { servicesDir, modelsDir };
}
