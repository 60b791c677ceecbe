// @ts-check
/**
 * ESLint flat config: type-aware checks over the service (src/), its tools (tools/) and the tests (test/).
 * The rules are about correctness (promises, errors, `any`), not style: prettier owns the formatting and
 * tsc the types. Only rules the code meets are on, so every report is a real finding.
 */
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // src/generated/: ajv standalone code written by npm run schemas (plain JavaScript under @ts-nocheck).
  { ignores: ['node_modules/', 'dist/', 'coverage/', '.tap/', 'data/', 'src/generated/'] },
  {
    files: ['src/**/*.ts', 'tools/**/*.ts', 'test/**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A promise nobody awaits loses its rejection (an unhandled rejection ends the process).
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // tap's t.test() queues the subtest and the parent test waits for it: not awaiting it is how
          // tap is meant to be used, and its failures are reported, never lost.
          allowForKnownSafePromises: [
            { from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' },
          ],
        },
      ],
      // An async callback where a sync one is expected (an event handler, a condition) drops its promise.
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `return promise` inside try/catch skips the catch; `return await` keeps it.
      '@typescript-eslint/return-await': ['error', 'error-handling-correctness-only'],
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/prefer-promise-reject-errors': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      // The standards (strict TypeScript): no `any`, no silenced compiler errors.
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/ban-ts-comment': 'error',
      '@typescript-eslint/no-deprecated': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
);
