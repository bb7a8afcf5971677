import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
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
  const server = ['(^|/)server/src/', 'the server is reached over HTTP only'];
  const viewer = ['(^|/)(extension|mode)/src/', 'no viewer code outside the viewer'];
  const http = ['^node:https?$', 'no HTTP here: the server owns it'];
  const nodeOnly = [
    '^(node:|onnxruntime-node$|better-sqlite3$)',
    'Node-only module in code that runs in the browser',
  ];
  const ours = ['(^|/)(models|server|extension|mode)/src/', 'core depends on nothing of ours'];
  const method = [
    '(^|/)(rrl|cli)/',
    'the training engine knows nothing of the method (models/src/rrl) or the CLIs',
  ];
  const ts = ['**/*.ts', '**/*.tsx'];
  return [
    forbid(['core/**'], [ours, nodeOnly]),
    forbid(['models/src/**'], [server, viewer, http]),
    forbid(['models/src/engine/**'], [server, viewer, http, method]),
    forbid(['extension/src/**', 'mode/src/**'], [server, nodeOnly]),
    forbid(['server/src/**'], [viewer]),
  ].map((c) => ({
    ...c,
    files: c.files.flatMap((f) => ts.map((t) => `${f.replace('/**', '')}/${t}`)),
  }));
}
