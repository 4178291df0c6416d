// `npm run lint`: typescript-eslint's recommended rules on every TypeScript file, plus the few
// type-aware rules that catch real bugs in code like ours (a promise nobody awaits or catches, a
// promise passed where a callback's result is ignored). Formatting is Prettier's, not ESLint's.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['**/node_modules/**', '**/dist/**', 'coverage/**', 'artifacts/**', 'tmp/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      // One program for the whole repository (the root tsconfig.json sees every file).
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // `let x; … closure reading x …; x = …`: a const there would be read before it exists.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // Tests and their helpers read arbitrary JSON answers and a browser page's globals.
    files: ['test/**/*.ts', '**/*.test.ts', 'packages/testing/src/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The demo pages: plain scripts in the browser (common.js defines `streamcast` for the others;
    // the client library's plain script defines `Streamcast`).
    files: ['apps/web/public/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      sourceType: 'script',
      globals: { ...globals.browser, streamcast: 'writable', Streamcast: 'readonly' },
    },
  },
  {
    // Plain JavaScript run by Node (CommonJS scripts and jest's config) or by browsers.
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    ignores: ['apps/web/public/**'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  prettier,
);
