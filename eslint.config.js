import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'models/**', 'dashboards/*.json', 'src/web/static/**', 'coverage/**', 'test-artifacts/**'] },
  js.configs.recommended,
  // Type-aware rules: the TypeScript files are linted with the types of tsconfig.json (src, test,
  // bench, simulator, dashboards), found by the project service.
  ...tseslint.configs.recommendedTypeChecked,
  { languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // What these rules are here for: a promise nobody awaits or catches, an async callback where
      // a void one is expected (an event listener's rejection is unhandled), awaiting a non-promise.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // Re-rejecting a caught value (`catch (err) { return Promise.reject(err) }`) is fine.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // Left off, with their counts when they were tried:
      // - no-unsafe-* (about 250): values typed `any` from JSON.parse and untyped libraries; making
      //   them `unknown` plus a parse is its own piece of work, not a lint fix.
      // - require-await (53, mostly tests): an `async` function without `await` still returns a
      //   promise, which is what its callers (vitest, kafkajs handlers, interfaces) want.
      // - unbound-method (33): kafkajs's eachBatch helpers and our closures-in-objects are declared
      //   as methods but never use `this`; every finding was of that kind.
      // - no-unnecessary-type-assertion: flags the `!` after array indexing that
      //   noUncheckedIndexedAccess needs.
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
    },
  },
  {
    // Plain JavaScript entry points run on Node; tsc does not check them, so no type-aware rules.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' } },
  },
);
