/**
 * The one place that builds draft 2020-12 ajv instances (with formats), so every such schema is checked
 * with the same dialect and options: by `npm run schemas` (./standalone.ts), which compiles the service's
 * schemas into src/generated/, and by the tests. The service itself never loads ajv.
 */
import { Ajv2020, type Options } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS: under NodeNext its default import is `module.exports`, whose `default` is
// the plugin itself.
const addFormats = addFormatsModule.default;

export function createAjv(options: Options = {}): Ajv2020 {
  const ajv = new Ajv2020({ strict: true, allErrors: false, ...options });
  addFormats(ajv);
  return ajv;
}
