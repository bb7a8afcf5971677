import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      '.tsbuild/**',
      'var/**',
      'test-artifacts/**',
      'stubs/**',
      '.gl/**',
      '.whl/**',
      '.device/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { ...globals.node, ...globals.browser, ...globals.worker },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  // The parts' dependency rules (docs/architecture.md): each part imports only what it may.
  ...dependencyRules(),
);

/** `no-restricted-imports` for the files of one part: import paths matching `regex` are refused. */
function forbid(files, rules) {
  return {
    files,
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: rules.map(([regex, message]) => ({ regex, message })) },
      ],
    },
  };
}

function dependencyRules() {
  const pkg = (names) => `^@rrl/(${names})(/|$)`;
  const server = [pkg('server'), 'the server is reached over HTTP only'];
  const viewer = [pkg('extension|mode'), 'no viewer code outside the viewer'];
  const models = [pkg('models'), 'the viewer uses @rrl/core, never the training side'];
  const tests = [pkg('test'), 'product code never imports the tests'];
  const http = ['^node:https?$', 'no HTTP here: the server owns it'];
  const nodeOnly = [
    '^(node:|onnxruntime-node$|better-sqlite3$)',
    'Node-only module in code that runs in the browser',
  ];
  const ours = ['^@rrl/', 'core depends on nothing of ours'];
  const method = [
    '(^|/)(rrl|cli|sam)/',
    'the training engine knows nothing of the method (models/src/rrl, sam) or the CLIs',
  ];
  // A relative path that climbs out of its package into another one (the packages are npm
  // workspaces: another package is imported by its name, @rrl/…).
  const climb = [
    '^(\\.\\./)+((core|models|server|extension|mode)/src|test|scripts)/',
    'another package is imported by its name (@rrl/core, @rrl/models …), not by a relative path',
  ];
  const ts = ['**/*.ts', '**/*.tsx'];
  return [
    forbid(['core/**'], [ours, nodeOnly, climb]),
    forbid(['models/src/**'], [server, viewer, tests, http, climb]),
    forbid(['models/src/engine/**'], [server, viewer, tests, http, method, climb]),
    forbid(['extension/src/**', 'mode/src/**'], [server, models, tests, nodeOnly, climb]),
    forbid(['server/src/**'], [viewer, tests, climb]),
    forbid(['test/**'], [climb]),
  ].map((c) => ({
    ...c,
    files: c.files.flatMap((f) => ts.map((t) => `${f.replace('/**', '')}/${t}`)),
  }));
}
