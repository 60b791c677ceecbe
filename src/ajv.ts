/**
 * The one place that builds ajv instances (JSON Schema draft 2020-12 with formats), so every schema in
 * the service is checked with the same dialect and options.
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

/**
 * The instance with the default options, shared by the loaders that need nothing else (value sets, service
 * definitions, model manifests and cards): every instance compiles the draft 2020-12 meta-schemas again,
 * about 30 ms of start-up each.
 */
const DEFAULT_AJV = createAjv();

export function defaultAjv(): Ajv2020 {
  return DEFAULT_AJV;
}
