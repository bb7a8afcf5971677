import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  listVolumes,
  readImageVolume,
  readLabelVolume,
  VolumeReadError,
} from '@rrl/models/io/index.js';
import { encodeNiftiFixture, writeNiftiFixture } from './niftiFixture.js';

async function tmp(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'rrl-io-'));
}

const DIMS = [3, 4, 5];
const N = 60;
const ramp = Array.from({ length: N }, (_, i) => i - 10);

test('readImageVolume reads every scalar datatype in either byte order, gzip or not', async () => {
  const dir = await tmp();
  try {
    const cases: [number, (i: number) => number][] = [
      [2, (i) => i],
      [256, (i) => i - 30],
      [4, (i) => i * 100 - 3000],
      [512, (i) => i * 1000],
      [8, (i) => i * 70000 - 10],
      [768, (i) => i * 70000],
      [16, (i) => i * 0.25 - 3],
      [64, (i) => i * 0.125 - 1e-3],
      [1024, (i) => i - 20],
      [1280, (i) => i * 3],
    ];
    for (const [dt, f] of cases) {
      for (const bigEndian of [false, true]) {
        const gzip = dt % 3 === 0 || bigEndian;
        const file = path.join(dir, `v${dt}${bigEndian ? 'be' : 'le'}.nii${gzip ? '.gz' : ''}`);
        const values = Array.from({ length: N }, (_, i) => f(i));
        await writeNiftiFixture(file, {
          dims: DIMS,
          pixdim: [0.5, 1, 2.5],
          datatype: dt,
          values,
          bigEndian,
          gzip,
        });
        const v = await readImageVolume(file);
        assert.deepEqual(v.dims, [3, 4, 5]);
        assert.deepEqual(v.spacing, [0.5, 1, 2.5]);
        assert.equal(v.source, path.basename(file));
        assert.ok(v.data instanceof Float32Array);
        for (let i = 0; i < N; i++)
          assert.equal(v.data[i], Math.fround(values[i]), `dt ${dt} voxel ${i}`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('scl_slope/scl_inter are applied; a singleton 4th dim is accepted; units convert to mm', async () => {
  const dir = await tmp();
  try {
    const file = path.join(dir, 'scaled.nii.gz');
    await writeNiftiFixture(file, {
      dims: [3, 4, 5, 1],
      pixdim: [0.001, 0.002, 0.003],
      xyztUnits: 1, // metre
      datatype: 4,
      values: ramp,
      slope: 2,
      inter: 5,
      gzip: true,
    });
    const v = await readImageVolume(file);
    assert.deepEqual(v.dims, [3, 4, 5]);
    v.spacing.forEach((s, i) => assert.ok(Math.abs(s - [1, 2, 3][i]) < 1e-4, `spacing ${s}`));
    assert.equal(v.data[0], -20 + 5);
    assert.equal(v.data[59], 49 * 2 + 5);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a real 4-D volume, an unknown datatype, a non-NIfTI file and a missing file are clear VolumeReadErrors', async () => {
  const dir = await tmp();
  try {
    const four = path.join(dir, 'four.nii');
    await writeNiftiFixture(four, {
      dims: [3, 4, 5, 2],
      pixdim: [1, 1, 1],
      datatype: 2,
      values: new Array(120).fill(1),
    });
    await assert.rejects(readImageVolume(four), (e: unknown) => {
      assert.ok(e instanceof VolumeReadError);
      assert.equal(e.path, four);
      assert.match(e.message, /four\.nii.*expected a 3-D volume.*2 along dimension 4/);
      return true;
    });
    const rgb = path.join(dir, 'rgb.nii');
    const buf = encodeNiftiFixture({
      dims: DIMS,
      pixdim: [1, 1, 1],
      datatype: 2,
      values: new Array(N).fill(1),
    });
    buf.writeInt16LE(128, 70); // RGB24
    await writeFile(rgb, buf);
    await assert.rejects(
      readImageVolume(rgb),
      /expected a scalar datatype.*found datatype code 128/,
    );
    const junk = path.join(dir, 'junk.nii');
    await writeFile(junk, Buffer.alloc(400, 7));
    await assert.rejects(readImageVolume(junk), /junk\.nii.*expected a NIfTI-1 or NIfTI-2/);
    const gz = path.join(dir, 'broken.nii.gz');
    await writeFile(gz, Buffer.from([0x1f, 0x8b, 1, 2, 3]));
    await assert.rejects(readImageVolume(gz), /gzip-compressed but does not decompress/);
    await assert.rejects(readImageVolume(path.join(dir, 'nope.nii')), (e: unknown) => {
      assert.ok(e instanceof VolumeReadError);
      assert.match(e.reason, /does not exist/);
      return true;
    });
    const txt = path.join(dir, 'notes.txt');
    await writeFile(txt, 'hello');
    await assert.rejects(readImageVolume(txt), /expected a \.nii \/ \.nii\.gz file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readLabelVolume: integer values packed small, values listed; reference grid checked', async () => {
  const dir = await tmp();
  try {
    const labels = Array.from({ length: N }, (_, i) => (i % 7 === 0 ? 3 : i % 5 === 0 ? 1 : 0));
    const lf = path.join(dir, 'lab.nii.gz');
    await writeNiftiFixture(lf, {
      dims: DIMS,
      pixdim: [1, 1, 2],
      datatype: 16,
      values: labels,
      gzip: true,
    });
    const img = path.join(dir, 'img.nii');
    await writeNiftiFixture(img, { dims: DIMS, pixdim: [1, 1, 2], datatype: 4, values: ramp });
    const ref = await readImageVolume(img);
    const l = await readLabelVolume(lf, ref);
    assert.ok(l.data instanceof Uint8Array);
    assert.deepEqual(Array.from(l.data), labels);
    assert.deepEqual(l.values, [1, 3]);
    assert.equal(l.source, 'lab.nii.gz');

    const big = path.join(dir, 'big.nii');
    await writeNiftiFixture(big, {
      dims: DIMS,
      pixdim: [1, 1, 2],
      datatype: 512,
      values: labels.map((v) => v * 1000),
    });
    const b = await readLabelVolume(big);
    assert.ok(b.data instanceof Uint16Array);
    assert.deepEqual(b.values, [1000, 3000]);

    const other = path.join(dir, 'other.nii');
    await writeNiftiFixture(other, {
      dims: [3, 4, 6],
      pixdim: [1, 1, 2],
      datatype: 2,
      values: new Array(72).fill(0),
    });
    await assert.rejects(readLabelVolume(other, ref), (e: unknown) => {
      assert.ok(e instanceof VolumeReadError);
      assert.match(e.message, /atlas and label grids differ.*\[3 × 4 × 5\].*\[3 × 4 × 6\]/);
      return true;
    });
    const otherSp = path.join(dir, 'sp.nii');
    await writeNiftiFixture(otherSp, {
      dims: DIMS,
      pixdim: [1, 1, 1],
      datatype: 2,
      values: labels,
    });
    await assert.rejects(
      readLabelVolume(otherSp, ref),
      /atlas and label grids differ.*\[1, 1, 2\] mm.*\[1, 1, 1\] mm/,
    );

    const frac = path.join(dir, 'prob.nii');
    await writeNiftiFixture(frac, {
      dims: DIMS,
      pixdim: [1, 1, 2],
      datatype: 16,
      values: ramp.map((v) => v / 3),
    });
    await assert.rejects(
      readLabelVolume(frac),
      /expected integer label values 0\.\.65535, found -3\.33/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('listVolumes: NIfTI files and DICOM sub-folders, sorted, ids without extension', async () => {
  const dir = await tmp();
  try {
    const fx = {
      dims: DIMS,
      pixdim: [1, 1, 1] as [number, number, number],
      datatype: 2,
      values: new Array(N).fill(0),
    };
    await writeNiftiFixture(path.join(dir, 'b.nii.gz'), { ...fx, gzip: true });
    await writeNiftiFixture(path.join(dir, 'a.nii'), fx);
    await writeFile(path.join(dir, 'readme.txt'), 'x');
    await writeFile(path.join(dir, '.hidden.nii'), 'x');
    await mkdir(path.join(dir, 'c_dicom'));
    const dcm = Buffer.alloc(200);
    dcm.write('DICM', 128, 'latin1');
    await writeFile(path.join(dir, 'c_dicom', 'IM0001'), dcm);
    await mkdir(path.join(dir, 'empty'));
    await mkdir(path.join(dir, 'textonly'));
    await writeFile(path.join(dir, 'textonly', 'x.txt'), 'x');
    const list = await listVolumes(dir);
    assert.deepEqual(
      list.map((e) => [e.id, path.basename(e.path)]),
      [
        ['a', 'a.nii'],
        ['b', 'b.nii.gz'],
        ['c_dicom', 'c_dicom'],
      ],
    );
    await assert.rejects(listVolumes(path.join(dir, 'missing')), VolumeReadError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const dataDir =
  process.env.RRL_DATA_DIR ?? path.resolve(import.meta.dirname, '../../../../shared/data');
const hippo = path.join(dataDir, 'hippocampus');

test(
  'the hippocampus atlas and its labels read on one grid',
  { skip: !existsSync(hippo) && `no data at ${hippo} (set RRL_DATA_DIR)` },
  async () => {
    const imgs = await listVolumes(path.join(hippo, 'images'));
    assert.ok(imgs.length >= 60, `found ${imgs.length} images`);
    const first = imgs[0];
    const img = await readImageVolume(first.path);
    const lab = await readLabelVolume(path.join(hippo, 'labels', path.basename(first.path)), img);
    assert.deepEqual(lab.values, [1, 2]);
    assert.equal(img.data.length, img.dims[0] * img.dims[1] * img.dims[2]);
    assert.deepEqual(img.spacing, [1, 1, 1]);
  },
);
