import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  listVolumes,
  readImageVolume,
  readLabelVolume,
  VolumeReadError,
} from '@rrl/models/io/index.js';
import { writeImageSeries, type VolumeGeometry } from '@rrl/core/dicom/series.js';
import { writeBinarySeg, type SegmentDescription } from '@rrl/core/dicom/seg.js';
import { writeNiftiFixture } from './niftiFixture.js';

const DIMS: [number, number, number] = [16, 12, 7];
const N = DIMS[0] * DIMS[1] * DIMS[2];

function geometry(dir: 1 | -1 = 1): VolumeGeometry {
  return {
    dims: DIMS,
    spacing: [0.75, 1.5, 2.5],
    origin: [-10, -20, 30],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, dir],
  };
}

function voxels(): Int16Array {
  return Int16Array.from({ length: N }, (_, i) => ((i * 37) % 1000) - 200);
}

function series(dir: 1 | -1 = 1, studyInstanceUID = '2.25.4242') {
  return writeImageSeries({
    modality: 'MR',
    geometry: geometry(dir),
    voxels: voxels(),
    patient: { name: 'SYNTHETIC^IO', id: 'SYN-IO', sex: 'O' },
    study: { studyInstanceUID, description: 'SYNTHETIC io test' },
    series: { description: 'synthetic', seriesNumber: 1 },
    synthetic: true,
  });
}

function labels(): Uint8Array {
  const l = new Uint8Array(N);
  for (let z = 1; z < 6; z++)
    for (let y = 2; y < 10; y++)
      for (let x = 3; x < 14; x++) l[x + DIMS[0] * (y + DIMS[1] * z)] = x < 8 ? 1 : z > 3 ? 3 : 0;
  return l;
}

const ANATOMY = { value: '91723000', scheme: 'SCT', meaning: 'Anatomical Structure' };
const SEGMENTS: SegmentDescription[] = [1, 3].map((v) => ({
  labelValue: v,
  label: `structure ${v}`,
  color: [200, 40 * v, 10],
  category: ANATOMY,
  type: { value: '5366008', scheme: 'SCT', meaning: 'Hippocampus' },
  algorithmType: 'MANUAL',
}));

async function writeSeries(dir: string, files: ArrayBuffer[], order?: number[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const idx = order ?? files.map((_, i) => i);
  for (const k of idx) {
    await writeFile(
      path.join(dir, `IM${String((k * 7919) % 1000).padStart(4, '0')}.dcm`),
      Buffer.from(files[k]),
    );
  }
}

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-io-dicom-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function reason(re: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof VolumeReadError, `expected VolumeReadError, got ${String(e)}`);
    assert.match(e.message, re);
    assert.doesNotMatch(e.message, /SYNTHETIC\^IO|SYN-IO/, 'no patient name or ID in errors');
    return true;
  };
}

test('a DICOM folder (files in any order) reads back the written voxels, spacing and modality', async () => {
  await withTmp(async (dir) => {
    const s = series(1);
    await writeSeries(path.join(dir, 'ct1'), s.files, [4, 0, 6, 2, 1, 5, 3]);
    await writeFile(path.join(dir, 'ct1', 'notes.txt'), 'not DICOM, ignored');
    const v = await readImageVolume(path.join(dir, 'ct1'));
    assert.deepEqual(v.dims, DIMS);
    assert.deepEqual(v.spacing, [0.75, 1.5, 2.5]);
    assert.equal(v.modality, 'MR');
    assert.equal(v.source, 'ct1');
    assert.deepEqual(Array.from(v.data), Array.from(voxels()));

    // slices written along −z come back sorted along the normal (+z): z order reversed
    const r = series(-1);
    await writeSeries(path.join(dir, 'rev'), r.files);
    const w = await readImageVolume(path.join(dir, 'rev'));
    const frame = DIMS[0] * DIMS[1];
    const src = voxels();
    for (let z = 0; z < DIMS[2]; z++) {
      const k = DIMS[2] - 1 - z;
      assert.deepEqual(
        Array.from(w.data.subarray(z * frame, (z + 1) * frame)),
        Array.from(src.subarray(k * frame, (k + 1) * frame)),
      );
    }
    assert.deepEqual(
      (await listVolumes(dir)).map((e) => e.id),
      ['ct1', 'rev'],
    );
  });
});

test('DICOM SEG: beside the images, in a sibling folder, as a file, with a reference', async () => {
  await withTmp(async (dir) => {
    const s = series(1);
    const lab = labels();
    const seg = writeBinarySeg({ sourceInstances: s.datasets, labelmap: lab, segments: SEGMENTS });
    // images + SEG in one folder: the image reader ignores the SEG, the label reader finds it
    const both = path.join(dir, 'atlas');
    await writeSeries(both, s.files);
    await writeFile(path.join(both, 'seg.dcm'), Buffer.from(seg.bytes));
    const img = await readImageVolume(both);
    assert.deepEqual(Array.from(img.data), Array.from(voxels()));
    const l1 = await readLabelVolume(both, img);
    assert.deepEqual(Array.from(l1.data), Array.from(lab));
    assert.deepEqual(l1.values, [1, 3]);
    assert.deepEqual(l1.dims, DIMS);
    assert.deepEqual(l1.spacing, [0.75, 1.5, 2.5]);
    // SEG alone in a sibling folder of the images, no reference: the series is found above it
    await writeSeries(path.join(dir, 'case', 'images'), s.files);
    await mkdir(path.join(dir, 'case', 'labels'));
    await writeFile(path.join(dir, 'case', 'labels', 'seg.dcm'), Buffer.from(seg.bytes));
    const l2 = await readLabelVolume(path.join(dir, 'case', 'labels'));
    assert.deepEqual(Array.from(l2.data), Array.from(lab));
    const l3 = await readLabelVolume(path.join(dir, 'case', 'labels', 'seg.dcm'));
    assert.equal(l3.source, 'seg.dcm');
    assert.deepEqual(Array.from(l3.data), Array.from(lab));
    // a NIfTI reference of another grid: atlas and label grids differ
    const nii = path.join(dir, 'other.nii');
    await writeNiftiFixture(nii, {
      dims: [16, 12, 8],
      pixdim: [0.75, 1.5, 2.5],
      datatype: 2,
      values: new Array(16 * 12 * 8).fill(0),
    });
    const ref = await readImageVolume(nii);
    await assert.rejects(
      readLabelVolume(path.join(dir, 'case', 'labels'), ref),
      reason(/atlas and label grids differ.*\[16 × 12 × 8\].*\[16 × 12 × 7\]/),
    );
    // a SEG whose images are nowhere near
    await mkdir(path.join(dir, 'lonely', 'deeper'), { recursive: true });
    await writeFile(path.join(dir, 'lonely', 'deeper', 'seg.dcm'), Buffer.from(seg.bytes));
    await assert.rejects(
      readLabelVolume(path.join(dir, 'lonely', 'deeper')),
      reason(
        new RegExp(
          `drawn on image series ${s.seriesInstanceUID.replace(/\./g, '\\.')}, whose DICOM files were found neither`,
        ),
      ),
    );
    // readImageVolume on a SEG-only folder, readLabelVolume on an image-only folder
    await assert.rejects(
      readImageVolume(path.join(dir, 'case', 'labels')),
      reason(/found only 1 DICOM SEG object\. Pass the folder of the images/),
    );
    await assert.rejects(
      readLabelVolume(path.join(dir, 'case', 'images')),
      reason(
        /expected one DICOM SEG object in the folder, found none \(only 7 other DICOM files\)/,
      ),
    );
    await assert.rejects(
      readLabelVolume(
        path.join(dir, 'case', 'images', await listFirst(path.join(dir, 'case', 'images'))),
      ),
      reason(/expected a DICOM SEG object.*found SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.4/),
    );
  });
});

async function listFirst(dir: string): Promise<string> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir(dir)).sort()[0];
}

test('DICOM folder errors: empty, two series, a corrupt file, a missing slice, a single slice, one file', async () => {
  await withTmp(async (dir) => {
    await mkdir(path.join(dir, 'empty'));
    await assert.rejects(
      readImageVolume(path.join(dir, 'empty')),
      reason(/"empty": expected DICOM image files .* found none/),
    );

    const a = series(1, '2.25.1');
    const b = series(1, '2.25.2');
    await writeSeries(path.join(dir, 'two'), a.files);
    await writeSeries(path.join(dir, 'two', 'sub'), b.files);
    await assert.rejects(
      readImageVolume(path.join(dir, 'two')),
      reason(
        new RegExp(
          `expected one image series in the folder, found 2: .*${a.seriesInstanceUID.replace(/\./g, '\\.')} \\(7 files\\).*Put each series in its own folder`,
        ),
      ),
    );

    await writeSeries(path.join(dir, 'corrupt'), a.files);
    const victim = path.join(dir, 'corrupt', await listFirst(path.join(dir, 'corrupt')));
    const bytes = await readFile(victim);
    const broken = Buffer.concat([
      bytes.subarray(0, 132),
      Buffer.from([0x02, 0x00, 0x00, 0x00, 0x55, 0x4c, 0xff, 0xff]),
    ]);
    await writeFile(victim, broken);
    await assert.rejects(
      readImageVolume(path.join(dir, 'corrupt')),
      reason(
        new RegExp(`"${path.basename(victim)}" starts like a DICOM file but cannot be parsed`),
      ),
    );

    await writeSeries(path.join(dir, 'gap'), a.files, [0, 1, 2, 4, 5, 6]);
    await assert.rejects(
      readImageVolume(path.join(dir, 'gap')),
      reason(/is not a regular 3-D volume: .*missing 1 slice between slice 3 and 4/),
    );

    await writeSeries(path.join(dir, 'single'), a.files, [3]);
    await assert.rejects(
      readImageVolume(path.join(dir, 'single')),
      reason(/has 1 slice; expected a 3-D volume of at least 2 slices/),
    );

    await assert.rejects(
      readImageVolume(path.join(dir, 'single', await listFirst(path.join(dir, 'single')))),
      reason(/found a single DICOM file\. Pass the folder instead/),
    );
  });
});
