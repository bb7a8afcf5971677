// The Save-to-PACS data path without a browser: labels in cornerstone volume order → labelmap
// images (keyed by source image id) → the SEG writer's instance order → BINARY SEG → read back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeImageSeries } from '@rrl/core/dicom/series.js';
import { readBinarySeg, writeBinarySeg } from '@rrl/core/dicom/seg.js';
import {
  computeVolumeGeometry,
  instanceGeometryFromNaturalized,
} from '@rrl/core/volume/geometry.js';
import {
  UserFacingError,
  readLabelmapForInstances,
  writeLabelsToLabelmap,
} from '@rrl/extension/utils/viewerData.js';
import type { CsImage, DisplaySet } from '@rrl/extension/ohif/types.js';
import { segmentDescriptions } from '@rrl/extension/seg/saveToPacs.js';
import { validateMetadata } from '@rrl/core/format/metadata.js';

const NX = 10;
const NY = 6;
const NZ = 5;

function series() {
  return writeImageSeries({
    modality: 'MR',
    geometry: {
      dims: [NX, NY, NZ],
      spacing: [1, 1.5, 2],
      origin: [-5, -4, 10],
      direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
    },
    voxels: new Uint16Array(NX * NY * NZ).fill(100),
    patient: { name: 'Synthetic^Test', id: 'SYN-0' },
    study: { studyInstanceUID: '2.25.1234', description: 'unit test' },
    series: { description: 't1', seriesNumber: 3 },
    synthetic: true,
  });
}

function fakeImages(imageIds: string[]): Map<string, CsImage> {
  const m = new Map<string, CsImage>();
  for (const id of imageIds) {
    const data = new Uint8Array(NX * NY);
    // Only what the extension reads of a cornerstone image.
    m.set(id, {
      imageId: `seg:${id}`,
      referencedImageId: id,
      rows: NY,
      columns: NX,
      voxelManager: { getScalarData: () => data, setScalarData: () => undefined },
    } as unknown as CsImage);
  }
  return m;
}

test('labels written in volume order come back in the display set’s instance order, and survive the SEG', () => {
  const s = series();
  // OHIF's instances: naturalized metadata with a non-enumerable imageId, in ANY order.
  const shuffled = [3, 0, 4, 1, 2].map((k) => {
    const inst = { ...s.datasets[k] } as Record<string, unknown>;
    Object.defineProperty(inst, 'imageId', { value: `wadors:img${k}`, enumerable: false });
    return inst;
  });
  const geometry = computeVolumeGeometry(shuffled.map(instanceGeometryFromNaturalized));
  const volumeImageIds = geometry.order.map((i) => (shuffled[i] as { imageId: string }).imageId);
  assert.deepEqual(volumeImageIds, [
    'wadors:img0',
    'wadors:img1',
    'wadors:img2',
    'wadors:img3',
    'wadors:img4',
  ]);

  // A label value per slice and a marker per voxel row, so any reordering shows.
  const labels = new Uint8Array(NX * NY * NZ);
  for (let z = 0; z < NZ; z++)
    for (let y = 0; y < NY; y++)
      for (let x = 0; x < NX; x++)
        if (x >= y && x < y + 3) labels[x + NX * (y + NY * z)] = 1 + (z % 2);

  const images = fakeImages(volumeImageIds);
  writeLabelsToLabelmap(images, volumeImageIds, labels, NX * NY);
  const ds: DisplaySet = {
    displaySetInstanceUID: 'ds1',
    StudyInstanceUID: '2.25.1234',
    SeriesInstanceUID: s.seriesInstanceUID,
    instances: shuffled,
  };
  const inInstanceOrder = readLabelmapForInstances(images, ds);
  [3, 0, 4, 1, 2].forEach((z, k) => {
    assert.deepEqual(
      inInstanceOrder.subarray(k * NX * NY, (k + 1) * NX * NY),
      labels.subarray(z * NX * NY, (z + 1) * NX * NY),
      `instance ${k} is slice ${z}`,
    );
  });

  const code = { value: '1', scheme: 'SCT', meaning: 'x' };
  const meta = validateMetadata({
    formatVersion: 1,
    id: 'm@1',
    name: 'M',
    version: '1',
    task: 't',
    kind: 'test-fixture',
    modalities: ['MR'],
    onnx: {
      file: 'model.onnx',
      sha256: 'c'.repeat(64),
      opset: 17,
      input: { name: 'image', shape: [1, 1, 4, 4, 4] },
      output: { name: 'logits', shape: [1, 3, 4, 4, 4] },
    },
    grid: { size: [4, 4, 4], spacing: [1, 1, 1], resample: 'fit-extent' },
    intensity: { method: 'zscore' },
    labels: [
      { value: 1, name: 'A', color: [255, 0, 0], category: code, type: code },
      { value: 2, name: 'B', color: [0, 255, 0], category: code, type: code },
    ],
    provenance: { createdAt: 'now' },
    changelog: [],
  });
  const written = writeBinarySeg({
    sourceInstances: shuffled,
    labelmap: inInstanceOrder,
    segments: segmentDescriptions(meta),
    seriesDescription: 'One-shot SEG: M',
    seriesNumber: 9001,
  });
  const sorted = geometry.order.map((i) => shuffled[i]);
  const back = readBinarySeg(written.bytes, sorted);
  assert.deepEqual(back.labelmap, labels);
  assert.deepEqual(
    back.segments.map((x) => x.label),
    ['A', 'B'],
  );
});

test('a labelmap missing a slice of the source is reported, not half-saved', () => {
  const s = series();
  const insts = s.datasets.map((d, k) => {
    const inst = { ...d } as Record<string, unknown>;
    Object.defineProperty(inst, 'imageId', { value: `wadors:img${k}`, enumerable: false });
    return inst;
  });
  const images = fakeImages(['wadors:img0', 'wadors:img1']);
  assert.throws(
    () =>
      readLabelmapForInstances(images, {
        displaySetInstanceUID: 'x',
        StudyInstanceUID: 'st',
        SeriesInstanceUID: '1.2.3',
        instances: insts,
      }),
    (e: unknown) =>
      e instanceof UserFacingError && /no slice for image 3 of series 1\.2\.3/.test(e.message),
  );
  assert.throws(
    () =>
      writeLabelsToLabelmap(
        images,
        ['wadors:img0', 'wadors:img9'],
        new Uint8Array(2 * NX * NY),
        NX * NY,
      ),
    /no slice for source image 2/,
  );
});
