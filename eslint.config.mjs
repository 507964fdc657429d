// ESLint flat config: `npm run lint`, and a gate in .ci/run.
//
// TypeScript (src/, __test__/): typescript-eslint's recommendedTypeChecked
// set, which reads the types through tsconfig.json (the project service) and
// so catches what the compiler lets through: floating promises, `any`
// flowing into typed code, awaiting what is not a promise.
// JavaScript (benchmark/, scripts/, examples/, test fixtures, this file):
// ESLint's recommended set, with Node's globals.
import js from '@eslint/js'
import { defineConfig, globalIgnores } from 'eslint/config'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default defineConfig(
  // Build output, generated bindings and per-platform package stubs.
  globalIgnores(['dist/', 'target/', 'npm/', 'binding.js', 'binding.d.ts', 'index.d.ts', 'benchmark/floor-addon/build/', 'demo-state/']),
  {
    files: ['**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.node },
  },
  {
    files: ['src/**/*.ts', '__test__/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Passing a caught error (typed unknown) on through reject() is the async
      // form of rethrowing it, which only-throw-error already allows by default.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // Rethrowing what a try caught (typed unknown), e.g. a write's own error
      // after its group commit, is not throwing a non-error.
      '@typescript-eslint/only-throw-error': ['error', { allowThrowingUnknown: true }],
    },
  },
  {
    // These tests check the CLI's --json output, which JSON.parse returns as
    // `any`, field by field with expect(); declaring its shape again here
    // would restate the assertions (and the CLI's formats) without checking
    // more. Everywhere else `any` stays an error.
    files: ['__test__/cli.test.ts', '__test__/pack.test.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off', // see above: any from JSON.parse
      '@typescript-eslint/no-unsafe-call': 'off', // see above: any from JSON.parse
      '@typescript-eslint/no-unsafe-member-access': 'off', // see above: any from JSON.parse
      '@typescript-eslint/no-unsafe-return': 'off', // see above: any from JSON.parse
    },
  },
)
