/**
 * Request validation, framework-free: compiled validators for the wire schemas, and the check of a
 * service call's body against its service (the pipeline's validation stage). The schemas reference
 * each other as `#/components/schemas/<Name>`, exactly as in openapi.yaml, so `npm run schemas` compiles
 * them under one document shaped like the OpenAPI components section.
 */
import type { ErrorObject } from 'ajv';
import { type HookName, type HookRequest, KNOWN_HOOKS } from '../cds-hooks.js';
import { CdsError } from '../errors.js';
import * as generated from '../generated/request.js';
import { selectionProblem } from '../orders/draft-orders.js';
import type { CompiledService } from '../services/load.js';
import { generatedValidator, type Validator } from '../validators.js';
import type { SchemaName } from './schemas.js';

// The schemas compiled by `npm run schemas` (tools/schemas/standalone.ts) as they were here at start-up:
// each through a $ref into one 'cds-hooks.json' document, with strictRequired off (`if/then` branches
// legitimately require properties declared beside them). A schema mistake stops `npm run schemas`.
const compiled: Readonly<Record<SchemaName, Validator>> = {
  Resource: generatedValidator(generated.Resource),
  Coding: generatedValidator(generated.Coding),
  HookRequest: generatedValidator(generated.HookRequest),
  Source: generatedValidator(generated.Source),
  Action: generatedValidator(generated.Action),
  Suggestion: generatedValidator(generated.Suggestion),
  Link: generatedValidator(generated.Link),
  Card: generatedValidator(generated.Card),
  HookResponse: generatedValidator(generated.HookResponse),
  DiscoveryService: generatedValidator(generated.DiscoveryService),
  DiscoveryResponse: generatedValidator(generated.DiscoveryResponse),
  OperationOutcome: generatedValidator(generated.OperationOutcome),
  Feedback: generatedValidator(generated.Feedback),
  FeedbackRequest: generatedValidator(generated.FeedbackRequest),
  FeedbackResponse: generatedValidator(generated.FeedbackResponse),
  AnalyticsReport: generatedValidator(generated.AnalyticsReport),
  PatientExportRequest: generatedValidator(generated.PatientExportRequest),
  PatientExport: generatedValidator(generated.PatientExport),
};

/** The validator of a named schema. */
export function validatorFor(name: SchemaName): Validator {
  return compiled[name];
}

// Each hook's CONTEXT_SCHEMAS entry, exported as `contextExportName(hook)`.
const contextValidators: Readonly<Record<HookName, Validator>> = {
  'patient-view': generatedValidator(generated.patientViewContext),
  'order-select': generatedValidator(generated.orderSelectContext),
  'order-sign': generatedValidator(generated.orderSignContext),
  'appointment-book': generatedValidator(generated.appointmentBookContext),
  'encounter-start': generatedValidator(generated.encounterStartContext),
  'encounter-discharge': generatedValidator(generated.encounterDischargeContext),
};

/** Validates a hook's context; `undefined` when the hook is not one the service knows. */
export function contextValidatorFor(hook: HookName): Validator {
  return contextValidators[hook];
}

/** One readable line for the first validation error: where, and what is wrong. */
export function describeError(errors: ErrorObject[] | null | undefined, root: string): string {
  const error = errors?.[0];
  if (!error) return 'invalid';
  const where = `${root}${error.instancePath.replace(/\//g, '.')}`;
  const extra =
    error.keyword === 'required'
      ? ` "${(error.params as { missingProperty: string }).missingProperty}"`
      : error.keyword === 'enum'
        ? ` (${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')})`
        : '';
  return `${where} ${error.message}${extra}`;
}

/**
 * Checks that the hook is known, is the service's hook, and that the context fits that hook.
 * @throws CdsError CDS_ERR_HOOK_UNKNOWN, CDS_ERR_HOOK_MISMATCH or CDS_ERR_CONTEXT_INVALID (400)
 */
export function checkHook(service: CompiledService, body: HookRequest): void {
  if (!(KNOWN_HOOKS as readonly string[]).includes(body.hook)) {
    throw new CdsError('CDS_ERR_HOOK_UNKNOWN', { hook: body.hook.slice(0, 128) }, { expression: ['hook'] });
  }
  if (body.hook !== service.definition.hook) {
    throw new CdsError(
      'CDS_ERR_HOOK_MISMATCH',
      { serviceId: service.definition.id, expected: service.definition.hook, hook: body.hook },
      { expression: ['hook'] },
    );
  }
  const validate = contextValidatorFor(body.hook as HookName);
  if (!validate(body.context)) {
    throw new CdsError('CDS_ERR_CONTEXT_INVALID', {
      hook: body.hook,
      reason: describeError(validate.errors, 'context'),
    });
  }
  const problem = body.hook === 'order-select' ? selectionProblem(body.context) : undefined;
  if (problem) {
    throw new CdsError(
      'CDS_ERR_CONTEXT_INVALID',
      { hook: body.hook, reason: problem },
      {
        expression: ['context.selections'],
      },
    );
  }
}

/**
 * Validates a service call's body: its shape against the HookRequest schema (CDS Hooks 2.0 §"HTTP
 * Request"), then its hook and context against the service.
 * @returns the body, typed
 * @throws CdsError CDS_ERR_REQUEST_INVALID for a body of the wrong shape, or one of `checkHook`'s
 */
export function validateHookRequest(service: CompiledService, body: unknown): HookRequest {
  const validate = validatorFor('HookRequest');
  if (!validate(body)) {
    throw new CdsError('CDS_ERR_REQUEST_INVALID', { reason: describeError(validate.errors, 'request') });
  }
  const request = body as HookRequest;
  checkHook(service, request);
  return request;
}
