/**
 * The draft orders a call is about (CDS Hooks library, order-select 1.0 and order-sign 1.1):
 * - `order-select`: only the orders the clinician just selected, i.e. the `draftOrders` entries named
 *   by `context.selections` (the other drafts of the session are context, readable through
 *   `%hookContext.draftOrders`);
 * - `order-sign`: every order of `context.draftOrders`;
 * - any other hook: none.
 * Rules read them as `%draftOrders`. Pure: the context has already passed its hook's JSON Schema.
 */
import type { Resource } from 'fhir/r4.js';

type Context = Readonly<Record<string, unknown>>;

function draftResources(context: Context): Resource[] {
  const bundle = context.draftOrders as { entry?: { resource?: Resource }[] } | undefined;
  return (bundle?.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : []));
}

function referenceOf(resource: Resource): string {
  return `${resource.resourceType}/${resource.id}`;
}

/** The draft orders the hook's rules consider, in `draftOrders` order. */
export function consideredDraftOrders(hook: string, context: Context): Resource[] {
  if (hook === 'order-sign') return draftResources(context);
  if (hook !== 'order-select') return [];
  const selected = new Set(context.selections as string[]);
  return draftResources(context).filter((r) => selected.has(referenceOf(r)));
}

/**
 * Why an order-select context is inconsistent, or undefined when it is not: every selection must name
 * a resource of `draftOrders` ("selections … point into draftOrders").
 */
export function selectionProblem(context: Context): string | undefined {
  const drafts = new Set(draftResources(context).map(referenceOf));
  const selections = context.selections as string[];
  const index = selections.findIndex((s) => !drafts.has(s));
  if (index < 0) return undefined;
  return `context.selections[${index}] "${selections[index]}" names no resource in context.draftOrders`;
}
