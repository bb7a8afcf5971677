import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import { buildForwardGraph } from '@rrl/models/engine/autodiff/training.js';
import {
  buildStandInTeacher,
  loadTeacher,
  samPreprocessSlice,
  intensityWindow,
  teacherFeatureVolume,
  TeacherInterfaceError,
} from '@rrl/models/rrl/teacher.js';

const dir = await mkdtemp(join(tmpdir(), 'rrl-teacher-'));
after(() => rm(dir, { recursive: true, force: true }));

/** A model with the wrong interface: image [1,1,64,64] → features [1,8,16,16]. */
function wrongModel(): Uint8Array {
  const g = new Graph();
  const x = g.input('pixels', [1, 1, 64, 64]);
  const w = g.param('w', [8, 1, 4, 4], { kind: 'he' });
  const y = g.conv(x, w, undefined, { strides: 4 });
  return buildForwardGraph({ graph: g, outputs: { features: y }, params: g.initialParams(1) })
    .model;
}

/** Right input, right output name, wrong embedding grid [1,256,32,32]. */
function wrongOutputModel(): Uint8Array {
  const g = new Graph();
  const x = g.input('image', [1, 3, 1024, 1024]);
  const w = g.param('w', [256, 3, 32, 32], { kind: 'he' });
  const y = g.conv(x, w, undefined, { strides: 32 });
  return buildForwardGraph({
    graph: g,
    outputs: { image_embeddings: y },
    params: g.initialParams(1),
  }).model;
}

test('the generated stand-in teacher passes the interface check (bytes, path, file: URL) and is deterministic', async () => {
  const bytes = buildStandInTeacher(7);
  assert.deepEqual(buildStandInTeacher(7), bytes);
  const path = join(dir, 'standin.onnx');
  await writeFile(path, bytes);
  for (const src of [bytes, path, pathToFileURL(path).href]) {
    const t = await loadTeacher(src);
    assert.equal(t.inputName, 'image');
    assert.equal(t.outputName, 'image_embeddings');
    await t.session.release();
  }
});

test('a model with another interface is rejected with a message naming what was found', async () => {
  await assert.rejects(loadTeacher(wrongModel()), (e: unknown) => {
    assert.ok(e instanceof TeacherInterfaceError);
    assert.match(
      e.message,
      /input "pixels" has shape \[1, 1, 64, 64\], not \[1, 3, S, S\] with S a multiple of 16/,
    );
    assert.match(
      e.message,
      /found inputs pixels float32 \[1, 1, 64, 64\] and outputs features float32 \[1, 8, 16, 16\]/,
    );
    assert.match(e.message, /remove "teacher" from the plan/);
    return true;
  });
  await assert.rejects(
    loadTeacher(wrongOutputModel()),
    /output "image_embeddings" has shape \[1, 256, 32, 32\], not \[1, 256, 64, 64\]/,
  );
  await assert.rejects(loadTeacher(join(dir, 'missing.onnx')), /cannot read the file \(ENOENT\)/);
  const junk = join(dir, 'junk.onnx');
  await writeFile(junk, 'not a model');
  await assert.rejects(loadTeacher(junk), /onnxruntime cannot load it as an ONNX model/);
});

test('slice-by-slice features: [256, S, 64, 64], slice s equals the teacher on that slice', async () => {
  const t = await loadTeacher(buildStandInTeacher(3));
  try {
    const [D, H, W] = [5, 20, 30];
    const data = new Float32Array(D * H * W);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 100 + (i % W);
    const seen: number[] = [];
    const fv = await teacherFeatureVolume(
      t,
      { data, dims: [D, H, W] },
      {
        sliceStride: 2,
        onSlice: (d) => seen.push(d),
      },
    );
    assert.deepEqual(fv.dims, [256, 3, 64, 64]);
    assert.deepEqual(fv.sliceIndices, [0, 2, 4]);
    assert.deepEqual(seen, [1, 2, 3]);
    // Longest side 30 → 1024, so 20 → 683 rows; ceil(683/16) = 43 embedding rows hold the image.
    assert.deepEqual(fv.valid, [43, 64]);
    // Slice index 1 of the feature volume is z = 2: compare with a direct run.
    const pre = samPreprocessSlice(
      data.subarray(2 * H * W, 3 * H * W),
      H,
      W,
      intensityWindow(data),
    );
    const r = await t.session.run({
      image: new ort.Tensor('float32', pre.data, [1, 3, 1024, 1024]),
    });
    const e = r.image_embeddings!.data as Float32Array;
    const plane = 64 * 64;
    for (const c of [0, 17, 255]) {
      const got = fv.data.subarray((c * 3 + 1) * plane, (c * 3 + 2) * plane);
      assert.deepEqual(got, e.subarray(c * plane, (c + 1) * plane), `channel ${c}`);
    }
    assert.ok(fv.data.some((v) => v !== 0));
    await assert.rejects(
      teacherFeatureVolume(t, { data: new Float32Array(10), dims: [2, 2, 2] }),
      /need 8 voxels, found 10/,
    );
  } finally {
    await t.session.release();
  }
});

test('SAM preprocessing: longest side to 1024, grey to 3 normalised channels, zero padding', () => {
  const slice = new Float32Array([0, 1, 2, 3, 4, 5]); // 2×3
  const { data, resized } = samPreprocessSlice(slice, 2, 3, [0, 5]);
  assert.deepEqual(resized, [683, 1024]);
  // Top-left pixel is the window minimum → 0 → (0 − mean)/std per channel.
  assert.ok(Math.abs(data[0]! - -123.675 / 58.395) < 1e-5);
  assert.ok(Math.abs(data[1024 * 1024]! - -116.28 / 57.12) < 1e-5);
  // Padding rows (≥ 683) are 0; the bottom-right image pixel is the maximum → (255 − mean)/std.
  assert.equal(data[700 * 1024 + 5], 0);
  assert.ok(Math.abs(data[682 * 1024 + 1023]! - (255 - 123.675) / 58.395) < 1e-4);
});
