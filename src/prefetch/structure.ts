/**
 * The structural check of FHIR R4 JSON data before any rule reads it (issue 16: present-but-malformed
 * data must never be read as absent). Data-driven: the element types and cardinalities come from the
 * FHIR R4 model fhirpath.js ships (`path2Type`, `path2Repeating`, `choiceTypePaths`,
 * `pathsDefinedElsewhere`, `type2Parent`, generated from the R4 StructureDefinitions), so every element
 * of every resource type is checked the same way, with no list of elements to keep up to date:
 *
 * - a resource is an object whose `resourceType` is a string naming an R4 resource;
 * - an element of cardinality 0..* is an array, one of 0..1 is not;
 * - a complex element (CodeableConcept, Quantity, a backbone element…) is an object;
 * - a primitive has its JSON type: boolean, number (decimal), integer (integer, positiveInt,
 *   unsignedInt), string (string, code, uri, id, …); `date`, `dateTime`, `instant` and `time` strings
 *   match the R4 regular expressions; `null` only inside arrays of primitives (paired with `_element`);
 * - `_element` (a primitive's id and extensions) is an object, or an array of objects and nulls.
 *
 * Elements the model does not know (a newer version's, a vendor's) are not checked: nothing reads
 * them. A quick check (recursive, no frames, no paths) passes well-formed data; only when it does not
 * does the walk run, which is iterative (no stack overflow on deep nesting), reports the first problem
 * in its order and builds that problem's path only.
 */
import r4 from 'fhirpath/fhir-context/r4/index.js';

/** The first structural problem found: where (FHIRPath-like, from the checked value) and what. */
export interface StructureProblem {
  /** E.g. `entry[0].resource.valueQuantity.value`. Empty for the value itself. */
  path: string;
  /** E.g. `must be a decimal (a JSON number), not a string`. */
  problem: string;
}

type Kind =
  | { k: 'resource' }
  | {
      k: 'complex';
      typePath: string;
      /** The elements of `typePath` ({@link elementsOf}), kept on the kind once looked up. */
      elements?: Map<string, Element>;
    }
  | { k: 'primitive'; type: string; form: Form; expected: string };

interface Element {
  kind: Kind;
  /** 0..* (an array), 0..1 (a single value), or unknown to the model (either is accepted). */
  repeating: boolean | undefined;
}

const path2Type = r4.path2Type as Record<string, string>;
const path2Repeating = r4.path2Repeating as Record<string, boolean>;
const choiceTypePaths = r4.choiceTypePaths as Record<string, string[]>;
const definedElsewhere = r4.pathsDefinedElsewhere as Record<string, string>;
const type2Parent = r4.type2Parent as Record<string, string>;

// FHIR R4 §2.24.0.1 (datatypes.html): the regular expressions of the date and time primitives.
const DATE =
  /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$/;
const DATE_TIME =
  /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$/;
const INSTANT =
  /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/;
const TIME = /^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$/;

/** The primitives that are strings of a given form. */
const FORMATS = new Set(['date', 'dateTime', 'instant', 'time']);

/**
 * How a primitive's JSON value is checked: a number switched on in one place ({@link satisfies}), not a
 * function per type, so that the walk's one call site stays monomorphic.
 */
type Form = (typeof FORM)[keyof typeof FORM];
const FORM = {
  string: 0,
  boolean: 1,
  decimal: 2,
  integer: 3,
  positiveInt: 4,
  unsignedInt: 5,
  date: 6,
  dateTime: 7,
  instant: 8,
  time: 9,
} as const;

/** Primitive type → its JSON check and how the problem names it. */
const PRIMITIVES: Record<string, { form: Form; expected: string }> = {
  boolean: { form: FORM.boolean, expected: 'a boolean (true or false)' },
  decimal: { form: FORM.decimal, expected: 'a decimal (a JSON number)' },
  integer: { form: FORM.integer, expected: 'an integer (a JSON number)' },
  positiveInt: { form: FORM.positiveInt, expected: 'a positiveInt (a JSON number ≥ 1)' },
  unsignedInt: { form: FORM.unsignedInt, expected: 'an unsignedInt (a JSON number ≥ 0)' },
  date: { form: FORM.date, expected: 'a date (YYYY, YYYY-MM or YYYY-MM-DD)' },
  dateTime: {
    form: FORM.dateTime,
    expected: 'a dateTime (YYYY, YYYY-MM, YYYY-MM-DD or with a time and zone)',
  },
  instant: { form: FORM.instant, expected: 'an instant (YYYY-MM-DDThh:mm:ss with a zone)' },
  time: { form: FORM.time, expected: 'a time (hh:mm:ss)' },
};
for (const name of [
  'string',
  'code',
  'id',
  'uri',
  'url',
  'canonical',
  'markdown',
  'oid',
  'uuid',
  'base64Binary',
  'xhtml',
]) {
  PRIMITIVES[name] = { form: FORM.string, expected: `a ${name} (a JSON string)` };
}

/** Whether a value has the JSON type (and, for dates and times, the form) of a primitive. */
function satisfies(kind: { form: Form }, v: unknown): boolean {
  switch (kind.form) {
    case FORM.string:
      return typeof v === 'string';
    case FORM.boolean:
      return typeof v === 'boolean';
    case FORM.decimal:
      return typeof v === 'number' && Number.isFinite(v);
    case FORM.integer:
      return Number.isInteger(v);
    case FORM.positiveInt:
      return Number.isInteger(v) && (v as number) >= 1;
    case FORM.unsignedInt:
      return Number.isInteger(v) && (v as number) >= 0;
    case FORM.date:
      return typeof v === 'string' && DATE.test(v);
    case FORM.dateTime:
      return typeof v === 'string' && DATE_TIME.test(v);
    case FORM.instant:
      return typeof v === 'string' && INSTANT.test(v);
    case FORM.time:
      return typeof v === 'string' && TIME.test(v);
  }
}

/** The FHIRPath system types the model gives a few elements (`Resource.id`, `Extension.url`…). */
const SYSTEM_TYPES: Record<string, string> = {
  'System.String': 'string',
  'System.Boolean': 'boolean',
  'System.Integer': 'integer',
  'System.Decimal': 'decimal',
  'System.Date': 'date',
  'System.DateTime': 'dateTime',
  'System.Time': 'time',
};

/** R4 resource types: the types whose ancestry reaches `Resource`. */
const RESOURCE_TYPES = new Set(
  Object.keys(type2Parent).filter((type) => {
    for (let t: string | undefined = type; t; t = type2Parent[t]) if (t === 'Resource') return true;
    return false;
  }),
);
RESOURCE_TYPES.add('Resource');
RESOURCE_TYPES.add('DomainResource');

function kindOf(type: string, path: string): Kind {
  const primitive = PRIMITIVES[SYSTEM_TYPES[type] ?? type];
  if (primitive) return { k: 'primitive', type: SYSTEM_TYPES[type] ?? type, ...primitive };
  if (type === 'Resource') return { k: 'resource' };
  // Backbone elements are typed by where they are defined; a data type by its name.
  if (type === 'BackboneElement' || type === 'Element')
    return { k: 'complex', typePath: definedElsewhere[path] ?? path };
  return { k: 'complex', typePath: type };
}

const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);

/**
 * The elements of a type or backbone path, by JSON property name (choice types expanded), found once. A
 * memo of the constant R4 model, the same for every app: only elements R4 defines are kept (names a
 * request makes up are looked up each time), so it never grows beyond the model.
 */
const elementsCache = new Map<string, Map<string, Element>>();

function findElement(typePath: string, name: string): Element | null {
  for (let at: string | undefined = typePath; at; at = parentOf(at)) {
    const path = `${at}.${name}`;
    const type = path2Type[path];
    if (type !== undefined) return { kind: kindOf(type, path), repeating: path2Repeating[path] === true };
    // A backbone element reused elsewhere (`Consent.provision.provision` is a `Consent.provision`): the
    // model gives no cardinality for these.
    const target = definedElsewhere[path];
    if (target !== undefined) return { kind: { k: 'complex', typePath: target }, repeating: undefined };
    const choice = choiceElement(at, name);
    if (choice) return choice;
  }
  return null;
}

/** `valueQuantity` at `Observation` → the `Observation.value[x]` choice of type Quantity. */
function choiceElement(at: string, name: string): Element | null {
  // The base may itself contain capitals (`effectiveDateTime` → `effective` + `DateTime`): try each split.
  for (let i = 1; i < name.length; i++) {
    if (name.charAt(i) < 'A' || name.charAt(i) > 'Z') continue;
    const types = choiceTypePaths[`${at}.${name.slice(0, i)}`];
    const suffix = name.slice(i);
    if (types?.includes(suffix)) {
      const type = PRIMITIVES[lowerFirst(suffix)] ? lowerFirst(suffix) : suffix;
      return { kind: kindOf(type, `${at}.${name}`), repeating: false };
    }
  }
  return null;
}

/** The next place to look for an element: a type's parent type; a backbone path's BackboneElement. */
function parentOf(typePath: string): string | undefined {
  if (typePath.includes('.')) return 'BackboneElement';
  return type2Parent[typePath];
}

/** The memo of the elements of a type or backbone path (filled by {@link elementOf}). */
function elementsOf(typePath: string): Map<string, Element> {
  let elements = elementsCache.get(typePath);
  if (!elements) {
    elements = new Map();
    elementsCache.set(typePath, elements);
  }
  return elements;
}

function elementOf(elements: Map<string, Element>, typePath: string, name: string): Element | null {
  const known = elements.get(name);
  if (known) return known;
  const element = findElement(typePath, name);
  if (element) elements.set(name, element);
  return element;
}

/** One value waiting to be checked, with what it must be and how to name where it is. */
interface Frame {
  value: unknown;
  kind: Kind;
  parent: Frame | null;
  /**
   * How it is reached from its parent: a property name (`.name`) or an array index (`[i]`); empty for
   * the checked value. Kept raw and written out only for the path of a problem: most frames have none.
   */
  step: string | number;
}

function pathOf(frame: Frame): string {
  const steps: string[] = [];
  for (let f: Frame | null = frame; f; f = f.parent) {
    steps.push(typeof f.step === 'number' ? `[${f.step}]` : f.step === '' ? '' : `.${f.step}`);
  }
  return steps.reverse().join('').replace(/^\./, '');
}

/** What a value is, without quoting it (it may be patient data). */
const describe = (value: unknown): string =>
  value === null
    ? 'null'
    : Array.isArray(value)
      ? 'an array'
      : typeof value === 'object'
        ? 'an object'
        : `a ${typeof value}`;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Checks a FHIR resource (as parsed from JSON) against the structure FHIR R4 requires.
 * @returns the first problem, or null when the resource is well formed
 */
export function checkResourceStructure(resource: unknown): StructureProblem | null {
  // Most data is well formed: the quick check says so without frames or paths; the walk, which finds
  // the first problem in its order and its path, runs only when it does not.
  return isWellFormed(resource) ? null : firstProblem(resource);
}

/** Deeper than this, the quick check stops (it recurses) and leaves the value to the walk (it does not). */
const QUICK_MAX_DEPTH = 64;

const RESOURCE: Kind = { k: 'resource' };

/**
 * Whether a resource has no structural problem: the same rules as {@link checkFrame}, on the same
 * elements, so the same verdict, checked depth first in whatever order (only the first problem's
 * report depends on the order, and the walk makes it). False too when the value nests deeper than
 * {@link QUICK_MAX_DEPTH}: the walk decides then.
 */
export function isWellFormed(resource: unknown): boolean {
  return wellFormed(resource, RESOURCE, 0);
}

function wellFormed(value: unknown, kind: Kind, depth: number): boolean {
  if (!isObject(value) || depth > QUICK_MAX_DEPTH) return false;
  let typePath: string;
  let elements: Map<string, Element>;
  const isResource = kind.k !== 'complex';
  if (kind.k === 'complex') {
    typePath = kind.typePath;
    elements = kind.elements ??= elementsOf(typePath);
  } else {
    const type = value.resourceType;
    if (
      typeof type !== 'string' ||
      !RESOURCE_TYPES.has(type) ||
      type === 'Resource' ||
      type === 'DomainResource'
    )
      return false;
    typePath = type;
    elements = elementsOf(typePath);
  }
  for (const name in value) {
    if (isResource && name === 'resourceType') continue;
    const child = value[name];
    if (name.charCodeAt(0) === 95 /* _ */) {
      if (isPrimitiveElement(child)) continue;
      return false;
    }
    // The memo first, inline: this runs for every property of the data.
    const element = elements.get(name) ?? elementOf(elements, typePath, name);
    if (!element) continue;
    const itemKind = element.kind;
    if (element.repeating === true || (element.repeating === undefined && Array.isArray(child))) {
      if (!Array.isArray(child)) return false;
      if (itemKind.k === 'primitive') {
        for (let i = 0; i < child.length; i++) {
          const item: unknown = child[i];
          if (item !== null && !satisfies(itemKind, item)) return false;
        }
      } else {
        for (let i = 0; i < child.length; i++) if (!wellFormed(child[i], itemKind, depth + 1)) return false;
      }
    } else if (Array.isArray(child)) {
      return false;
    } else if (
      itemKind.k === 'primitive' ? !satisfies(itemKind, child) : !wellFormed(child, itemKind, depth + 1)
    ) {
      return false;
    }
  }
  return true;
}

/**
 * The first structural problem of a resource, in the order of the walk: an object's own elements first,
 * then the objects it holds, the last pushed first (an array's items in order). Iterative, so that no
 * nesting overflows the stack.
 */
export function firstProblem(resource: unknown): StructureProblem | null {
  const stack: Frame[] = [{ value: resource, kind: { k: 'resource' }, parent: null, step: '' }];
  for (let frame = stack.pop(); frame; frame = stack.pop()) {
    const problem = checkFrame(frame, stack);
    if (problem) return { path: pathOf(problem.at), problem: problem.problem };
  }
  return null;
}

function checkFrame(frame: Frame, stack: Frame[]): { at: Frame; problem: string } | null {
  const { value, kind } = frame;
  if (kind.k === 'primitive') {
    return satisfies(kind, value) ? null : primitiveProblem(frame, kind);
  }
  if (!isObject(value)) return { at: frame, problem: `must be an object, not ${describe(value)}` };
  let typePath: string;
  if (kind.k === 'resource') {
    const type = value.resourceType;
    if (typeof type !== 'string') {
      const at = { value: type, kind, parent: frame, step: 'resourceType' };
      return { at, problem: `must be a string naming a FHIR R4 resource type, not ${describe(type)}` };
    }
    if (!RESOURCE_TYPES.has(type) || type === 'Resource' || type === 'DomainResource') {
      const at = { value: type, kind, parent: frame, step: 'resourceType' };
      return { at, problem: `"${type.slice(0, 64)}" is not a FHIR R4 resource type` };
    }
    typePath = type;
  } else typePath = kind.typePath;
  const elements = kind.k === 'complex' ? (kind.elements ??= elementsOf(typePath)) : elementsOf(typePath);
  for (const name in value) {
    if (name === 'resourceType' && kind.k === 'resource') continue;
    const child = value[name];
    if (name.charCodeAt(0) === 95 /* _ */) {
      const problem = checkPrimitiveElement(frame, name, child);
      if (problem) return problem;
      continue;
    }
    const element = elementOf(elements, typePath, name);
    if (!element) continue;
    const step = name;
    if (element.repeating === true || (element.repeating === undefined && Array.isArray(child))) {
      if (!Array.isArray(child)) {
        return {
          at: { value: child, kind, parent: frame, step },
          problem: `must be an array, not ${describe(child)}`,
        };
      }
      const list: Frame = { value: child, kind, parent: frame, step };
      const itemKind = element.kind;
      for (let i = child.length - 1; i >= 0; i--) {
        const item = child[i];
        if (itemKind.k === 'primitive') {
          // `given: ["A", null]` with `_given: [null, {…}]`: a null keeps the two arrays aligned.
          // Primitives are checked here, without a frame: most of a resource is primitives.
          if (item === null || satisfies(itemKind, item)) continue;
          return primitiveProblem({ value: item, kind: itemKind, parent: list, step: i }, itemKind);
        }
        stack.push({ value: item, kind: itemKind, parent: list, step: i });
      }
    } else {
      if (Array.isArray(child)) {
        return {
          at: { value: child, kind, parent: frame, step },
          problem: 'must be a single value, not an array',
        };
      }
      const childKind = element.kind;
      if (childKind.k !== 'primitive') stack.push({ value: child, kind: childKind, parent: frame, step });
      else if (!satisfies(childKind, child)) {
        return primitiveProblem({ value: child, kind: childKind, parent: frame, step }, childKind);
      }
    }
  }
  return null;
}

type Primitive = Extract<Kind, { k: 'primitive' }>;

function primitiveProblem(at: Frame, kind: Primitive): { at: Frame; problem: string } {
  const { value } = at;
  const what =
    typeof value === 'string' && FORMATS.has(kind.type) ? 'a string of another form' : describe(value);
  return { at, problem: `must be ${kind.expected}, not ${what}` };
}

/** `_birthDate`: the id and extensions of a primitive, an object (or an array of objects and nulls). */
function checkPrimitiveElement(
  frame: Frame,
  name: string,
  value: unknown,
): { at: Frame; problem: string } | null {
  if (isPrimitiveElement(value)) return null;
  const at: Frame = { value, kind: frame.kind, parent: frame, step: name };
  return { at, problem: `must be an object (or an array of objects and nulls), not ${describe(value)}` };
}

const isPrimitiveElement = (value: unknown): boolean =>
  isObject(value) || (Array.isArray(value) && value.every((v) => v === null || isObject(v)));
