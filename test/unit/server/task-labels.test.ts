/**
 * A task's labels from its atlas SEG: laterality modifiers kept through the task, the model's
 * labels and a SEG saved with them; labels coded alike are reported; Left/Right colours that are a
 * shade apart are made distinct.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { readBinarySeg, segmentsFromLabels, writeBinarySeg } from '@rrl/core/dicom/seg.js';
import { writeImageSeries } from '@rrl/core/dicom/series.js';
import { demoSegments } from '@rrl/server/demo/labels.js';
import { MIN_COLOUR_DISTANCE, taskLabelsFromSegments } from '@rrl/server/jobs/atlas.js';
import { modelLabelsForTask } from '@rrl/server/jobs/trainTask.js';

const distance = (a: number[], b: number[]): number =>
  Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);

test(
  'Left and Right keep their laterality from the atlas SEG to a saved SEG',
  { timeout: 30_000 },
  () => {
    const segs = demoSegments('MANUAL').slice(0, 2); // Left / Right hippocampus
    const { labels, warnings } = taskLabelsFromSegments(segs, new Set([1, 2]));
    assert.deepEqual(
      labels.map((l) => l.modifier?.meaning),
      ['Left', 'Right'],
    );
    // The atlas gives them colours a shade apart; the task shows them clearly apart.
    assert.ok(distance(segs[0]!.color, segs[1]!.color) < MIN_COLOUR_DISTANCE);
    assert.ok(distance(labels[0]!.color, labels[1]!.color) >= MIN_COLOUR_DISTANCE);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /Right hippocampus.*colour/);

    // Model labels → a SEG written with them → read back: the modifier is there, per segment.
    const modelLabels = modelLabelsForTask({ labels });
    assert.deepEqual(
      modelLabels.map((l) => l.modifier?.value),
      ['7771000', '24028007'],
    );
    const dims: [number, number, number] = [8, 8, 3];
    const series = writeImageSeries({
      modality: 'MR',
      geometry: {
        dims,
        spacing: [1, 1, 1],
        origin: [0, 0, 0],
        direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
      },
      voxels: new Int16Array(8 * 8 * 3),
      patient: { name: 'TEST^LATERALITY', id: 'LAT-1', sex: 'O' },
      study: { studyInstanceUID: '2.25.1', studyDate: '20260101', description: 'laterality' },
      series: { description: 'T1', seriesNumber: 1 },
      synthetic: true,
    });
    const labelmap = new Uint8Array(8 * 8 * 3);
    labelmap[10] = 1;
    labelmap[100] = 2;
    const seg = writeBinarySeg({
      sourceInstances: series.datasets,
      labelmap,
      segments: segmentsFromLabels(modelLabels, 'SEMIAUTOMATIC', 'test'),
    });
    const back = readBinarySeg(seg.bytes, series.datasets);
    assert.deepEqual(
      back.segments.map((s) => [s.label, s.modifier?.meaning]),
      [
        ['Left hippocampus', 'Left'],
        ['Right hippocampus', 'Right'],
      ],
    );
  },
);

test(
  'two labels with the same coded concept are reported at task creation',
  { timeout: 10_000 },
  () => {
    const [left] = demoSegments('MANUAL');
    const twin = {
      ...left!,
      labelValue: 2,
      label: 'Hippocampus (copy)',
      color: [0, 0, 255] as [number, number, number],
    };
    const { warnings } = taskLabelsFromSegments([left!, twin], new Set([1, 2]));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /same code.*cannot tell them apart/);
    // Labels that no voxel carries are not part of the task.
    assert.equal(taskLabelsFromSegments([left!, twin], new Set([1])).labels.length, 1);
  },
);
