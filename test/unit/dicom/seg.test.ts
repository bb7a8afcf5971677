import { test } from 'node:test';
import assert from 'node:assert/strict';
import { items, numbers, readPart10, str, writePart10 } from '@rrl/core/dicom/dcmjs.js';
import {
  LABELMAP_SEGMENTATION_STORAGE,
  SEGMENTATION_STORAGE,
  SegError,
  dicomLabToRgb,
  readBinarySeg,
  rgbToDicomLab,
  toContentLabel,
  writeBinarySeg,
} from '@rrl/core/dicom/seg.js';
import { SEGMENTS, blobLabelmap, smallSeries } from './helpers.js';

function shuffle<T>(arr: T[], order: number[]): T[] {
  return order.map((k) => arr[k]);
}

function reorderLabelmap(lm: Uint8Array, order: number[], frame: number): Uint8Array {
  const out = new Uint8Array(lm.length);
  order.forEach((k, j) => out.set(lm.subarray(k * frame, (k + 1) * frame), j * frame));
  return out;
}

test('write → read round trip gives back the labelmap and segments, whatever the slice order', () => {
  const [nx, ny, nz] = [16, 12, 6];
  const s = smallSeries(nx, ny, nz);
  const lm = blobLabelmap(nx, ny, nz);
  const order = [4, 0, 5, 2, 1, 3];
  const seg = writeBinarySeg({
    sourceInstances: shuffle(s.datasets, order),
    labelmap: reorderLabelmap(lm, order, nx * ny),
    segments: SEGMENTS,
    seriesDescription: 'unit SEG',
  });
  // read against the original order
  const back = readBinarySeg(seg.bytes, s.datasets);
  assert.deepEqual(Array.from(back.labelmap), Array.from(lm));
  assert.equal(back.segments.length, 2);
  assert.deepEqual(
    back.segments.map((x) => [
      x.labelValue,
      x.label,
      x.type.value,
      x.modifier?.value,
      x.algorithmType,
    ]),
    [
      [1, 'Left hippocampus', '5366008', '7771000', 'AUTOMATIC'],
      [2, 'Right thalamus', '42695009', '24028007', 'MANUAL'],
    ],
  );
  assert.equal(back.segments[0].algorithmName, 'unit-test');
  back.segments.forEach((x, i) =>
    x.color.forEach((c, j) => assert.ok(Math.abs(c - SEGMENTS[i].color[j]) <= 1, `colour ${c}`)),
  );
});

test('frames: ordered by segment then position, only non-empty slices, each references its source', () => {
  const [nx, ny, nz] = [16, 12, 6];
  const s = smallSeries(nx, ny, nz);
  const lm = blobLabelmap(nx, ny, nz); // label 1 on z=1..3, label 2 on z=2..5
  const seg = writeBinarySeg({ sourceInstances: s.datasets, labelmap: lm, segments: SEGMENTS });
  assert.equal(seg.frameCount, 3 + 4);
  assert.deepEqual(seg.warnings, []); // 16 × 12 pixels: byte-aligned frames
  const ds = readPart10(seg.bytes);
  assert.equal(str(ds.SOPClassUID), SEGMENTATION_STORAGE);
  assert.equal(str(ds.SegmentationType), 'BINARY');
  assert.equal(str(ds.StudyInstanceUID), str(s.datasets[0].StudyInstanceUID));
  assert.equal(str(ds.FrameOfReferenceUID), s.frameOfReferenceUID);
  assert.notEqual(str(ds.SeriesInstanceUID), s.seriesInstanceUID);
  assert.equal(str(ds.PatientID), 'SYN-UNIT');
  const frames = items(ds.PerFrameFunctionalGroupsSequence);
  assert.equal(frames.length, 7);
  const segNums = frames.map((f) =>
    Number(items(f.SegmentIdentificationSequence)[0].ReferencedSegmentNumber),
  );
  assert.deepEqual(segNums, [1, 1, 1, 2, 2, 2, 2]);
  // slice normal = row × col = +z; slices are at z = 30 − 2.5·k: ascending position = descending k
  const zs = frames.map((f) => numbers(items(f.PlanePositionSequence)[0].ImagePositionPatient)[2]);
  assert.deepEqual(zs.slice(0, 3), [30 - 2.5 * 3, 30 - 2.5 * 2, 30 - 2.5 * 1]);
  assert.deepEqual(zs.slice(3), [30 - 2.5 * 5, 30 - 2.5 * 4, 30 - 2.5 * 3, 30 - 2.5 * 2]);
  for (const f of frames) {
    const der = items(f.DerivationImageSequence)[0];
    const src = items(der.SourceImageSequence)[0];
    const k = s.sopInstanceUIDs.indexOf(str(src.ReferencedSOPInstanceUID) ?? '');
    assert.ok(k >= 0);
    assert.equal(numbers(items(f.PlanePositionSequence)[0].ImagePositionPatient)[2], 30 - 2.5 * k);
    assert.equal(str(src.ReferencedSOPClassUID), '1.2.840.10008.5.1.4.1.1.4');
    assert.equal(str(items(src.PurposeOfReferenceCodeSequence)[0].CodeValue), '121322');
    assert.equal(str(items(der.DerivationCodeSequence)[0].CodeValue), '113076');
  }
  const refSeries = items(ds.ReferencedSeriesSequence);
  assert.equal(refSeries.length, 1);
  assert.equal(str(refSeries[0].SeriesInstanceUID), s.seriesInstanceUID);
  const refs = items(refSeries[0].ReferencedInstanceSequence).map((r) =>
    str(r.ReferencedSOPInstanceUID),
  );
  assert.deepEqual([...refs].sort(), [...s.sopInstanceUIDs].sort());
  // no MR frame type in the shared groups (dciodvfy complains about it in a SEG)
  const shared = items(ds.SharedFunctionalGroupsSequence)[0];
  assert.equal(shared.MRImageFrameTypeSequence, undefined);
  assert.deepEqual(numbers(items(shared.PixelMeasuresSequence)[0].PixelSpacing), [1.5, 1]);
});

test('bits are packed LSB first, frames back to back', () => {
  const [nx, ny, nz] = [8, 2, 2];
  const s = smallSeries(nx, ny, nz);
  const lm = new Uint8Array(nx * ny * nz);
  // slice 0 (position z=30, the higher one → sorted second), first pixel and pixel 9
  lm[0] = 1;
  lm[9] = 1;
  // slice 1 (z=27.5 → sorted first) pixel 15
  lm[16 + 15] = 1;
  const seg = writeBinarySeg({
    sourceInstances: s.datasets,
    labelmap: lm,
    segments: [SEGMENTS[0]],
  });
  assert.equal(seg.frameCount, 2);
  const px = new Uint8Array((readPart10(seg.bytes).PixelData as ArrayBuffer[])[0]);
  assert.equal(px.length, 4);
  // frame 0 = slice 1: bit 15 → byte 1, bit 7
  assert.deepEqual(Array.from(px), [0x00, 0x80, 0x01, 0x02]);
});

test('the packed PixelData length comes out even (adds an empty frame when needed)', () => {
  // 5 × 5 = 25 bits per frame: one frame = 4 bytes (even), two = 7 bytes (odd) → three frames
  const [nx, ny, nz] = [5, 5, 4];
  const s = smallSeries(nx, ny, nz);
  const lm = new Uint8Array(nx * ny * nz);
  lm[0] = 1; // slice 0
  lm[25 + 3] = 1; // slice 1
  const seg = writeBinarySeg({
    sourceInstances: s.datasets,
    labelmap: lm,
    segments: [SEGMENTS[0]],
  });
  assert.equal(seg.frameCount, 3);
  assert.equal(seg.warnings.length, 1);
  assert.match(seg.warnings[0], /not a multiple of 8/);
  const px = new Uint8Array((readPart10(seg.bytes).PixelData as ArrayBuffer[])[0]);
  assert.equal(Math.ceil((3 * 25) / 8), 10);
  assert.equal(px.length % 2, 0);
  assert.equal(px.length, 10);
  const back = readBinarySeg(seg.bytes, s.datasets);
  assert.deepEqual(Array.from(back.labelmap), Array.from(lm));
});

test('a segment with no voxels still gets one (empty) frame; unknown labels are ignored', () => {
  const [nx, ny, nz] = [8, 8, 4];
  const s = smallSeries(nx, ny, nz);
  const lm = new Uint8Array(nx * ny * nz);
  lm[5] = 1;
  lm[70] = 9; // not in the segment list
  const seg = writeBinarySeg({ sourceInstances: s.datasets, labelmap: lm, segments: SEGMENTS });
  assert.equal(seg.frameCount, 2);
  const back = readBinarySeg(seg.bytes, s.datasets);
  const expected = new Uint8Array(lm.length);
  expected[5] = 1;
  assert.deepEqual(Array.from(back.labelmap), Array.from(expected));
  assert.equal(back.segments.length, 2);
});

test('label values that are not 1..N survive the round trip (segment numbers stay 1..N)', () => {
  const [nx, ny, nz] = [8, 8, 3];
  const s = smallSeries(nx, ny, nz);
  const lm = new Uint8Array(nx * ny * nz);
  lm[3] = 37;
  lm[64 + 10] = 41;
  const segments = [
    { ...SEGMENTS[0], labelValue: 41 },
    { ...SEGMENTS[1], labelValue: 37 },
  ];
  const seg = writeBinarySeg({ sourceInstances: s.datasets, labelmap: lm, segments });
  const ds = readPart10(seg.bytes);
  assert.deepEqual(
    items(ds.SegmentSequence).map((x) => Number(x.SegmentNumber)),
    [1, 2],
  );
  const back = readBinarySeg(seg.bytes, s.datasets);
  assert.deepEqual(Array.from(back.labelmap), Array.from(lm));
  assert.deepEqual(
    back.segments.map((x) => [x.labelValue, x.label]),
    [
      [37, 'Right thalamus'],
      [41, 'Left hippocampus'],
    ],
  );
});

test('bad input gives clear errors', () => {
  const s = smallSeries(8, 8, 3);
  const lm = new Uint8Array(8 * 8 * 3);
  assert.throws(
    () =>
      writeBinarySeg({ sourceInstances: s.datasets, labelmap: lm.subarray(1), segments: SEGMENTS }),
    (e: unknown) => e instanceof SegError && /labelmap has 191 values/.test(e.message),
  );
  const tilted = s.datasets.map((d, k) =>
    k === 1 ? { ...d, ImageOrientationPatient: ['1', '0', '0', '0', '0', '-1'] } : d,
  );
  assert.throws(
    () => writeBinarySeg({ sourceInstances: tilted, labelmap: lm, segments: SEGMENTS }),
    /mixed orientations/,
  );
  const dup = [s.datasets[0], s.datasets[0], s.datasets[2]];
  assert.throws(
    () => writeBinarySeg({ sourceInstances: dup, labelmap: lm, segments: SEGMENTS }),
    /same position/,
  );
  assert.throws(
    () => writeBinarySeg({ sourceInstances: s.datasets, labelmap: lm, segments: [] }),
    /no segments/,
  );
  assert.throws(
    () =>
      writeBinarySeg({
        sourceInstances: s.datasets,
        labelmap: lm,
        segments: [{ ...SEGMENTS[0], type: { value: '', scheme: 'SCT', meaning: '' } }],
      }),
    /type code/,
  );
  // a SEG read against another series
  const seg = writeBinarySeg({ sourceInstances: s.datasets, labelmap: lm, segments: SEGMENTS });
  const other = smallSeries(8, 8, 3, '2.25.424242');
  const shifted = other.datasets.map((d) => ({ ...d, ImagePositionPatient: ['0', '0', '500'] }));
  assert.throws(() => readBinarySeg(seg.bytes, shifted), /same position|matches no slice/);
  assert.throws(() => readBinarySeg(seg.bytes, smallSeries(9, 8, 3).datasets), /does not belong/);
});

test('OHIF-style metadata (numbers, PN objects) is accepted as source instances', () => {
  const s = smallSeries(8, 8, 3);
  const ohif = s.datasets.map((d) => ({
    ...d,
    PatientName: [{ Alphabetic: 'SYNTHETIC^UNIT' }],
    ImagePositionPatient: (d.ImagePositionPatient as string[]).map(Number),
    ImageOrientationPatient: (d.ImageOrientationPatient as string[]).map(Number),
    PixelSpacing: (d.PixelSpacing as string[]).map(Number),
  }));
  const lm = new Uint8Array(8 * 8 * 3);
  lm[100] = 2;
  const seg = writeBinarySeg({ sourceInstances: ohif, labelmap: lm, segments: SEGMENTS });
  const ds = readPart10(seg.bytes);
  assert.equal(str(ds.PatientName), 'SYNTHETIC^UNIT');
  assert.deepEqual(Array.from(readBinarySeg(seg.bytes, ohif).labelmap), Array.from(lm));
});

test('colour conversion and content label helpers', () => {
  for (const rgb of [
    [0, 0, 0],
    [255, 255, 255],
    [220, 180, 140],
    [12, 200, 77],
  ] as [number, number, number][]) {
    const back = dicomLabToRgb(rgbToDicomLab(rgb));
    back.forEach((c, i) => assert.ok(Math.abs(c - rgb[i]) <= 1, `${rgb} → ${back}`));
  }
  assert.equal(toContentLabel('One-shot seg: brain'), 'ONE_SHOT SEG_ BR');
  assert.equal(toContentLabel(''), 'SEGMENTATION');
});

test('multi-frame source images are refused with a clear message', () => {
  const s = smallSeries(8, 8, 2);
  const mf = s.datasets.map((d) => ({ ...d, NumberOfFrames: '4' }));
  assert.throws(
    () =>
      writeBinarySeg({ sourceInstances: mf, labelmap: new Uint8Array(128), segments: SEGMENTS }),
    /multi-frame/,
  );
});

test('LABELMAP (…66.7) and FRACTIONAL SEGs read back into the same labelmap', () => {
  const [nx, ny, nz] = [16, 12, 6];
  const frame = nx * ny;
  const s = smallSeries(nx, ny, nz);
  const lm = blobLabelmap(nx, ny, nz);
  const binary = writeBinarySeg({ sourceInstances: s.datasets, labelmap: lm, segments: SEGMENTS });
  const base = readPart10(binary.bytes);
  delete base._meta;

  // LABELMAP: one 8-bit frame per slice, pixel value = segment number
  const lmPixels = new Uint8Array(frame * nz);
  lmPixels.set(lm); // label values 1, 2 are the segment numbers here
  const labelmapSeg = {
    ...base,
    SOPClassUID: LABELMAP_SEGMENTATION_STORAGE,
    SegmentationType: 'LABELMAP',
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    NumberOfFrames: String(nz),
    PerFrameFunctionalGroupsSequence: s.datasets.map((d) => ({
      DerivationImageSequence: [
        {
          SourceImageSequence: [
            { ReferencedSOPClassUID: d.SOPClassUID, ReferencedSOPInstanceUID: d.SOPInstanceUID },
          ],
        },
      ],
      PlanePositionSequence: [{ ImagePositionPatient: d.ImagePositionPatient }],
    })),
    PixelData: lmPixels.buffer,
    _vrMap: { PixelData: 'OB' },
  };
  const back1 = readBinarySeg(writePart10(labelmapSeg), s.datasets);
  assert.deepEqual(Array.from(back1.labelmap), Array.from(lm));

  // FRACTIONAL: the binary frames as 8-bit 0/255
  const packed = new Uint8Array((base.PixelData as ArrayBuffer[])[0]);
  const fr = new Uint8Array(binary.frameCount * frame);
  for (let i = 0; i < fr.length; i++) fr[i] = packed[i >> 3] & (1 << (i & 7)) ? 255 : 0;
  const fractional = {
    ...base,
    SegmentationType: 'FRACTIONAL',
    SegmentationFractionalType: 'PROBABILITY',
    MaximumFractionalValue: 255,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelData: fr.buffer,
    _vrMap: { PixelData: 'OB' },
  };
  const back2 = readBinarySeg(writePart10(fractional), s.datasets);
  assert.deepEqual(Array.from(back2.labelmap), Array.from(lm));
});
