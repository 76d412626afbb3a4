import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import { builtinModules } from 'node:module';

// Workflow code is replayed, so it must be deterministic: no Node built-ins, no I/O
// libraries, no wall clock. Activities do the side effects. domain/ is imported by the
// workflow bundle, so the same rule holds there.
const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);
const ioLibraries = [
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  '@sendgrid/*',
  'fastify',
  'fastify-*',
  'drizzle-orm',
  'drizzle-orm/*',
  'postgres',
  '@electric-sql/*',
  '../activities',
  '../activities/*',
  '../db',
  '../db/*',
  '../api/*',
  '../worker/*',
  '../config',
];

/** The import rule of workflow code, with `extra` patterns for some of its files. */
const workflowImports = (extra = []) => [
  'error',
  {
    paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must be deterministic: no Node built-ins.' })),
    patterns: [
      {
        group: ioLibraries,
        allowTypeImports: true,
        message: 'Workflow code must not do I/O: call an activity (import its type only).',
      },
      ...extra,
    ],
  },
];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'data/', 'db/migrations/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['workflows/**/*.ts', 'domain/**/*.ts'],
    ignores: ['**/*.test.ts'],
    languageOptions: { globals: {} },
    rules: {
      'no-restricted-imports': workflowImports(),
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'Workflow code must not read the process environment.' },
        { name: 'setTimeout', message: 'Use sleep() or condition() from @temporalio/workflow.' },
        { name: 'setInterval', message: 'Use sleep() or condition() from @temporalio/workflow.' },
        { name: 'fetch', message: 'Workflow code must not do I/O: call an activity.' },
        { name: 'require', message: 'Use static imports in workflow code.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Non-deterministic: pass randomness in as input.' },
      ],
    },
  },
  {
    // zod with the schemas built on it cost more CPU in the worker's workflow sandbox than the
    // workflow itself (BENCHMARKS.md, "Case start rate"). Schemas live in domain/policy.ts and
    // domain/schemas.ts; the workflow and the domain modules it imports take their types only.
    // The bundle's modules are preloaded, evaluated once and shared by every workflow in the
    // worker (worker/create-worker.ts), so module-level state would carry from one case to the
    // next. The rule below catches a module-level let or var; a const Map, Set or object that
    // a workflow writes is for review to catch.
    files: ['workflows/**/*.ts', 'domain/**/*.ts'],
    ignores: ['**/*.test.ts', 'domain/policy.ts', 'domain/schemas.ts'],
    rules: {
      'no-restricted-imports': workflowImports([
        {
          group: ['zod', 'zod/*', '**/domain/policy', '**/domain/schemas', './policy', './schemas'],
          allowTypeImports: true,
          message: 'Keep zod out of the workflow bundle: import the logic from domain/ladder, and schema types with `import type`.',
        },
      ]),
      'no-restricted-syntax': [
        'error',
        {
          selector: 'Program > VariableDeclaration[kind!="const"], ExportNamedDeclaration > VariableDeclaration[kind!="const"]',
          message: 'Workflow modules are shared by every workflow in a worker: module-level state must be const.',
        },
      ],
    },
  },
);
