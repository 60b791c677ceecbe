import t from 'tap';
import * as generated from '../src/generated/value-set.js';
import { generatedValidator } from '../src/validators.js';

t.test('a generated validator is handed over as it is, typed', async (t) => {
  const validate = generatedValidator<{ id: string }>(generated.valueSet);
  t.equal(validate, generated.valueSet);
  t.equal(validate({ resourceType: 'ValueSet' }), false);
  t.same(
    validate.errors?.map((e) => `${e.instancePath} ${e.message}`),
    [" must have required property 'id'"],
  );
});

t.test('a missing one stops the module that asks for it, naming the command', async (t) => {
  t.throws(() => generatedValidator(undefined), {
    message: 'a generated validator is missing from src/generated/: run `npm run schemas`',
  });
});
