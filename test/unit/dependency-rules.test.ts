// The parts' dependency rules are enforced by lint (eslint.config.js): a forbidden import in each
// part is reported, an allowed one is not.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ESLint } from 'eslint';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

async function restricted(file: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === 'no-restricted-imports')
    .map((m) => m.message);
}

const use = (spec: string) => `import * as m from '${spec}';\nexport const x = m;\n`;

test('forbidden imports between the parts are lint errors', { timeout: 60_000 }, async () => {
  const cases: [string, string, RegExp][] = [
    ['extension/src/x.ts', '@rrl/server/config.js', /over HTTP only/],
    ['extension/src/x.ts', '@rrl/models/rrl/pipeline.js', /never the training side/],
    ['extension/src/x.ts', 'onnxruntime-node', /Node-only/],
    ['extension/src/x.ts', '../../core/src/api.js', /by its name/],
    ['mode/src/x.ts', 'node:fs', /Node-only/],
    ['models/src/rrl/x.ts', '@rrl/server/config.js', /over HTTP only/],
    ['models/src/rrl/x.ts', 'node:http', /no HTTP/],
    ['models/src/rrl/x.ts', '@rrl/extension/init.js', /viewer/],
    ['models/src/rrl/x.ts', '../../../core/src/volume/geometry.js', /by its name/],
    ['models/src/engine/graph/x.ts', '../../rrl/pipeline.js', /knows nothing of the method/],
    ['core/src/x.ts', '@rrl/models/engine/index.js', /nothing of ours/],
    ['core/src/x.ts', 'node:path', /Node-only/],
    ['server/src/x.ts', '@rrl/extension/init.js', /viewer/],
    ['server/src/x.ts', '@rrl/test/helpers/orthanc.js', /never imports the tests/],
    ['test/unit/x.ts', '../../server/src/config.js', /by its name/],
  ];
  for (const [file, spec, why] of cases) {
    const messages = await restricted(file, use(spec));
    assert.equal(messages.length, 1, `${file} importing ${spec}: ${messages.join(' | ')}`);
    assert.match(messages[0] ?? '', why);
  }
});

test('allowed imports are not reported', { timeout: 60_000 }, async () => {
  const cases: [string, string][] = [
    ['extension/src/x.ts', '@rrl/core/volume/geometry.js'],
    ['extension/src/x.ts', '@rrl/core/api.js'],
    ['models/src/rrl/x.ts', '../engine/graph/graph.js'],
    ['models/src/engine/graph/x.ts', '@rrl/core/format/metadata.js'],
    ['server/src/x.ts', '@rrl/models/rrl/pipeline.js'],
    ['server/src/api/x.ts', '../models/registry.js'],
    ['server/src/x.ts', 'node:http'],
    ['test/unit/x.ts', '@rrl/server/config.js'],
  ];
  for (const [file, spec] of cases) {
    assert.deepEqual(await restricted(file, use(spec)), [], `${file} importing ${spec}`);
  }
});
