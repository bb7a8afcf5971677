/**
 * BINARY DICOM Segmentation (Segmentation Storage 1.2.840.10008.5.1.4.1.1.66.4) writer and reader
 * for labelmaps over a source image series. Browser-safe (dcmjs only).
 *
 * - one segment per label value present in `segments`, with coded anatomy (category, type,
 *   optional modifier) and a recommended display colour;
 * - same StudyInstanceUID, FrameOfReferenceUID and patient module as the source; a new series;
 * - every frame references its source instance (DerivationImageSequence/SourceImageSequence with
 *   ReferencedSOPClassUID and PurposeOfReferenceCodeSequence); ReferencedSeriesSequence lists every
 *   source instance;
 * - frames are ordered by segment, then by slice position along the slice normal; each frame's
 *   source slice is identified by its ImagePositionPatient (never by the input order);
 * - only slices where a segment has voxels are stored (plus one empty frame for an empty segment),
 *   and, where needed, extra empty frames so that the packed PixelData byte count is EVEN (an odd
 *   count never loads in OHIF 3.13).
 *
 * Labelmap layout (both directions): value at index (k·Rows + r)·Columns + c is the label of
 * row r, column c of `sourceInstances[k]`, in the order the caller gives.
 */
import {
  first,
  items,
  newUid,
  numbers,
  readPart10,
  str,
  writePart10,
  type NaturalDataset,
} from './dcmjs.js';

export const SEGMENTATION_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';
/** Label Map Segmentation Storage (what OHIF 3.13's own SEG export writes by default). */
export const LABELMAP_SEGMENTATION_STORAGE = '1.2.840.10008.5.1.4.1.1.66.7';

export interface Code {
  value: string;
  scheme: string;
  meaning: string;
}

export interface SegmentDescription {
  labelValue: number;
  label: string;
  color: [number, number, number];
  category: Code;
  type: Code;
  modifier?: Code;
  algorithmType: 'AUTOMATIC' | 'SEMIAUTOMATIC' | 'MANUAL';
  algorithmName?: string;
}

/** A label as models and atlases describe it (value, name, colour, coded anatomy). */
export interface CodedLabel {
  value: number;
  name: string;
  color: [number, number, number];
  category: Code;
  type: Code;
  modifier?: Code;
}

/** The labels as SEG segment descriptions, all made by one algorithm (or by hand). */
export function segmentsFromLabels(
  labels: readonly CodedLabel[],
  algorithmType: SegmentDescription['algorithmType'],
  algorithmName?: string,
): SegmentDescription[] {
  return labels.map((l) => ({
    labelValue: l.value,
    label: l.name,
    color: l.color,
    category: l.category,
    type: l.type,
    modifier: l.modifier,
    algorithmType,
    ...(algorithmName ? { algorithmName } : {}),
  }));
}

export interface WriteBinarySegArgs {
  sourceInstances: Record<string, unknown>[];
  labelmap: Uint8Array | Uint16Array;
  segments: SegmentDescription[];
  seriesDescription?: string;
  seriesNumber?: number;
  contentLabel?: string;
  contentDescription?: string;
  contentCreatorName?: string;
  manufacturer?: string;
  manufacturerModelName?: string;
  softwareVersions?: string;
  deviceSerialNumber?: string;
  /** Fixed UIDs (deterministic demo data); new random UIDs when absent. */
  seriesInstanceUID?: string;
  sopInstanceUID?: string;
  dimensionOrganizationUID?: string;
  /** Content date/time (YYYYMMDD / HHMMSS); now when absent. */
  contentDate?: string;
  contentTime?: string;
}

export interface WrittenSeg {
  bytes: ArrayBuffer;
  sopInstanceUID: string;
  seriesInstanceUID: string;
  frameCount: number;
  /**
   * Things the caller should tell the user: the SEG is valid DICOM but a known viewer limitation
   * applies (e.g. OHIF 3.13 misplaces voxels of 1-bit frames that do not start on a byte
   * boundary, i.e. when Rows × Columns is not a multiple of 8).
   */
  warnings: string[];
}

/** True when every 1-bit frame of a Rows × Columns SEG starts on a byte boundary. */
export function framesByteAligned(rows: number, columns: number): boolean {
  return (rows * columns) % 8 === 0;
}

export class SegError extends Error {
  override name = 'SegError';
}

type V3 = [number, number, number];

const dot = (a: V3, b: V3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: V3, b: V3): V3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];

/** Geometry of a source series, sorted along the slice normal. */
export interface SourceGeometry {
  rows: number;
  columns: number;
  orientation: number[]; // 6 values
  normal: V3;
  pixelSpacing: [number, number];
  /** Source indices (into sourceInstances) sorted by position along the normal. */
  sorted: number[];
  /** Distance along the normal of each source instance (by source index). */
  distance: number[];
  positions: V3[];
  sliceSpacing: number;
}

function requireString(ds: Record<string, unknown>, key: string, k: number): string {
  const v = str(ds[key]);
  if (!v) {
    throw new SegError(
      `Source instance ${k} has no ${key}: a SEG needs it. Pass the series' DICOM metadata ` +
        '(dcmjs naturalized or OHIF metadata) for every slice.',
    );
  }
  return v;
}

/** Checks the source instances form one volumetric series and sorts them along the normal. */
export function sourceGeometry(sourceInstances: Record<string, unknown>[]): SourceGeometry {
  if (sourceInstances.length === 0) {
    throw new SegError('A SEG needs the source series: no source instances were given.');
  }
  const head = sourceInstances[0]!;
  const rows = Number(first(head.Rows));
  const columns = Number(first(head.Columns));
  const orientation = numbers(head.ImageOrientationPatient);
  const pixelSpacingArr = numbers(head.PixelSpacing);
  if (!(rows > 0 && columns > 0)) {
    throw new SegError(
      `Source instance 0 has no valid Rows/Columns (found ${String(rows)}×${String(columns)}).`,
    );
  }
  if (orientation.length !== 6 || orientation.some((x) => !Number.isFinite(x))) {
    throw new SegError('Source instance 0 has no valid ImageOrientationPatient (6 numbers).');
  }
  const rowDir: V3 = [orientation[0]!, orientation[1]!, orientation[2]!];
  const colDir: V3 = [orientation[3]!, orientation[4]!, orientation[5]!];
  const normal = cross(rowDir, colDir);
  const frameUID = str(head.FrameOfReferenceUID);
  const positions: V3[] = [];
  const distance: number[] = [];
  sourceInstances.forEach((inst, k) => {
    const r = Number(first(inst.Rows));
    const c = Number(first(inst.Columns));
    if (r !== rows || c !== columns) {
      throw new SegError(
        `Source instance ${k} is ${r}×${c} but instance 0 is ${rows}×${columns}: ` +
          'a SEG covers one volumetric series with one image size.',
      );
    }
    const frames = Number(first(inst.NumberOfFrames) ?? 1);
    if (frames > 1) {
      throw new SegError(
        `Source instance ${k} is a multi-frame image (${frames} frames): only series with one ` +
          'image per instance can be segmented and saved.',
      );
    }
    const o = numbers(inst.ImageOrientationPatient);
    if (o.length !== 6 || o.some((x, i) => Math.abs(x - orientation[i]!) > 1e-3)) {
      throw new SegError(
        `Source instance ${k} has a different ImageOrientationPatient than instance 0: ` +
          'mixed orientations cannot be saved as one SEG.',
      );
    }
    if (str(inst.FrameOfReferenceUID) !== frameUID) {
      throw new SegError(
        `Source instance ${k} has a different FrameOfReferenceUID than instance 0.`,
      );
    }
    const p = numbers(inst.ImagePositionPatient);
    if (p.length !== 3 || p.some((x) => !Number.isFinite(x))) {
      throw new SegError(`Source instance ${k} has no valid ImagePositionPatient (3 numbers).`);
    }
    positions.push([p[0]!, p[1]!, p[2]!]);
    distance.push(dot(normal, [p[0]!, p[1]!, p[2]!]));
  });
  const sorted = distance.map((_, i) => i).sort((a, b) => distance[a]! - distance[b]!);
  for (let i = 1; i < sorted.length; i++) {
    if (Math.abs(distance[sorted[i]!]! - distance[sorted[i - 1]!]!) < 1e-4) {
      throw new SegError(
        `Source instances ${sorted[i - 1]} and ${sorted[i]} are at the same position: ` +
          'a SEG needs one instance per slice.',
      );
    }
  }
  const gaps: number[] = [];
  for (let i = 1; i < sorted.length; i++)
    gaps.push(distance[sorted[i]!]! - distance[sorted[i - 1]!]!);
  gaps.sort((a, b) => a - b);
  const sliceThicknessAttr = Number(first(head.SliceThickness));
  const sliceSpacing =
    gaps.length > 0
      ? gaps[Math.floor(gaps.length / 2)]!
      : Number.isFinite(sliceThicknessAttr) && sliceThicknessAttr > 0
        ? sliceThicknessAttr
        : 1;
  const pixelSpacing: [number, number] =
    pixelSpacingArr.length === 2 && pixelSpacingArr.every((x) => x > 0)
      ? [pixelSpacingArr[0]!, pixelSpacingArr[1]!]
      : [1, 1];
  return {
    rows,
    columns,
    orientation,
    normal,
    pixelSpacing,
    sorted,
    distance,
    positions,
    sliceSpacing,
  };
}

// ---------- colour: sRGB (0–255) ↔ DICOM CIELab (0–65535 scaled) ----------

const D65: V3 = [0.95047, 1.0, 1.08883];

function srgbToLinear(c: number): number {
  const x = c / 255;
  return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
}
function linearToSrgb(x: number): number {
  const v = x <= 0.0031308 ? 12.92 * x : 1.055 * x ** (1 / 2.4) - 0.055;
  return Math.max(0, Math.min(255, Math.round(v * 255)));
}

/** sRGB [0–255]³ → DICOM RecommendedDisplayCIELabValue ([0–65535]³). */
export function rgbToDicomLab(rgb: [number, number, number]): [number, number, number] {
  const [r, g, b] = [srgbToLinear(rgb[0]), srgbToLinear(rgb[1]), srgbToLinear(rgb[2])];
  const X = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / D65[0];
  const Y = (0.2126729 * r + 0.7151522 * g + 0.072175 * b) / D65[1];
  const Z = (0.0193339 * r + 0.119192 * g + 0.9503041 * b) / D65[2];
  const f = (t: number): number => (t > 216 / 24389 ? Math.cbrt(t) : ((24389 / 27) * t + 16) / 116);
  const L = 116 * f(Y) - 16;
  const a = 500 * (f(X) - f(Y));
  const bb = 200 * (f(Y) - f(Z));
  const clamp = (v: number): number => Math.max(0, Math.min(65535, Math.round(v)));
  return [
    clamp((L * 65535) / 100),
    clamp(((a + 128) * 65535) / 255),
    clamp(((bb + 128) * 65535) / 255),
  ];
}

/** DICOM CIELab ([0–65535]³) → sRGB [0–255]³. */
export function dicomLabToRgb(lab: number[]): [number, number, number] {
  const L = (lab[0]! * 100) / 65535;
  const a = (lab[1]! * 255) / 65535 - 128;
  const b = (lab[2]! * 255) / 65535 - 128;
  const fy = (L + 16) / 116;
  const fx = fy + a / 500;
  const fz = fy - b / 200;
  const inv = (t: number): number =>
    t ** 3 > 216 / 24389 ? t ** 3 : (116 * t - 16) / (24389 / 27);
  const X = inv(fx) * D65[0];
  const Y = inv(fy) * D65[1];
  const Z = inv(fz) * D65[2];
  const r = 3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z;
  const g = -0.969266 * X + 1.8760108 * Y + 0.041556 * Z;
  const bl = 0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z;
  return [linearToSrgb(r), linearToSrgb(g), linearToSrgb(bl)];
}

// ---------- codes ----------

function codeItem(c: Code): NaturalDataset {
  return { CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning };
}
function readCode(v: unknown): Code | undefined {
  const it = items(v)[0];
  if (!it) return undefined;
  const value = str(it.CodeValue) ?? str(it.LongCodeValue) ?? str(it.URNCodeValue);
  if (!value) return undefined;
  return {
    value,
    scheme: str(it.CodingSchemeDesignator) ?? '',
    meaning: str(it.CodeMeaning) ?? '',
  };
}

function checkCode(c: Code | undefined, what: string, label: string): void {
  if (!c || !c.value || !c.scheme || !c.meaning) {
    throw new SegError(
      `Segment "${label}" has no complete ${what} code (value, scheme and meaning are required).`,
    );
  }
}

/** A DICOM CS value for ContentLabel: upper case, [A-Z0-9_ ], ≤ 16 characters. */
export function toContentLabel(s: string): string {
  const v = s
    .toUpperCase()
    .replace(/[^A-Z0-9_ ]/g, '_')
    .slice(0, 16)
    .trim();
  return v || 'SEGMENTATION';
}

const PATIENT_STUDY_KEYS = [
  'PatientName',
  'PatientID',
  'IssuerOfPatientID',
  'PatientBirthDate',
  'PatientSex',
  'PatientAge',
  'PatientIdentityRemoved',
  'DeidentificationMethod',
  'StudyInstanceUID',
  'StudyDate',
  'StudyTime',
  'ReferringPhysicianName',
  'StudyID',
  'AccessionNumber',
  'StudyDescription',
];

function copyValue(v: unknown): unknown {
  if (v === undefined) return undefined;
  if (v === null) return '';
  if (Array.isArray(v)) {
    if (v.length === 0) return '';
    if (v.length === 1) return copyValue(v[0]);
    return v.map((x) => copyValue(x));
  }
  if (typeof v === 'object' && v !== null && 'Alphabetic' in v) {
    return String((v as Record<string, unknown>).Alphabetic ?? '');
  }
  return v;
}

function formatDs(v: number): string {
  if (Math.abs(v) < 1e-10) return '0';
  let s = String(Number(v.toPrecision(10)));
  if (s.length > 16) s = v.toExponential(8);
  if (s.length > 16) s = v.toExponential(5);
  return s;
}

function nowDateTime(): { date: string; time: string } {
  const iso = new Date().toISOString();
  return { date: iso.slice(0, 10).replace(/-/g, ''), time: iso.slice(11, 19).replace(/:/g, '') };
}

/** Writes a BINARY SEG of `labelmap` over `sourceInstances`. */
export function writeBinarySeg(args: WriteBinarySegArgs): WrittenSeg {
  const src = args.sourceInstances;
  const geo = sourceGeometry(src);
  const { rows, columns } = geo;
  const frameSize = rows * columns;
  if (args.labelmap.length !== frameSize * src.length) {
    throw new SegError(
      `The labelmap has ${args.labelmap.length} values but the source series has ` +
        `${src.length} slices of ${rows}×${columns} (${frameSize * src.length} voxels).`,
    );
  }
  const studyUID = requireString(src[0]!, 'StudyInstanceUID', 0);
  const seriesUIDSrc = requireString(src[0]!, 'SeriesInstanceUID', 0);
  const frameOfReferenceUID = requireString(src[0]!, 'FrameOfReferenceUID', 0);
  const sopClassUIDs = src.map((d, k) => requireString(d, 'SOPClassUID', k));
  const sopInstanceUIDs = src.map((d, k) => requireString(d, 'SOPInstanceUID', k));
  src.forEach((d, k) => {
    if (str(d.StudyInstanceUID) !== studyUID || str(d.SeriesInstanceUID) !== seriesUIDSrc) {
      throw new SegError(
        `Source instance ${k} belongs to another study or series than instance 0.`,
      );
    }
  });

  // Segments: sorted by label value; SegmentNumber = 1..N (DICOM requires consecutive numbers).
  const segs = [...args.segments].sort((a, b) => a.labelValue - b.labelValue);
  if (segs.length === 0) {
    throw new SegError('Nothing to save: no segments were given.');
  }
  const seen = new Set<number>();
  for (const s of segs) {
    if (!Number.isInteger(s.labelValue) || s.labelValue <= 0 || s.labelValue > 65535) {
      throw new SegError(`Segment "${s.label}" has an invalid label value ${s.labelValue}.`);
    }
    if (seen.has(s.labelValue)) {
      throw new SegError(`Two segments use label value ${s.labelValue}.`);
    }
    seen.add(s.labelValue);
    checkCode(s.category, 'category', s.label);
    checkCode(s.type, 'type', s.label);
    if (s.modifier) checkCode(s.modifier, 'modifier', s.label);
  }
  const segNumberOfLabel = new Map<number, number>();
  segs.forEach((s, i) => segNumberOfLabel.set(s.labelValue, i + 1));

  // Which (segment, slice) pairs have voxels. present[s]![k] for source index k.
  const nSeg = segs.length;
  const present: Uint8Array[] = segs.map(() => new Uint8Array(src.length));
  const lm = args.labelmap;
  for (let k = 0; k < src.length; k++) {
    const off = k * frameSize;
    for (let i = 0; i < frameSize; i++) {
      const v = lm[off + i]!;
      if (v === 0) continue;
      const sn = segNumberOfLabel.get(v);
      if (sn !== undefined) present[sn - 1]![k] = 1;
    }
  }
  // Frames: (segment index, sorted slice index)
  const chosen: Uint8Array[] = segs.map(() => new Uint8Array(src.length)); // by sorted position
  let frameCount = 0;
  for (let s = 0; s < nSeg; s++) {
    let any = false;
    for (let j = 0; j < src.length; j++) {
      if (present[s]![geo.sorted[j]!]) {
        chosen[s]![j] = 1;
        frameCount++;
        any = true;
      }
    }
    if (!any) {
      chosen[s]![Math.floor(src.length / 2)] = 1; // one empty frame so the segment has a frame
      frameCount++;
    }
  }
  const packedBytes = (n: number): number => Math.ceil((n * frameSize) / 8);
  // Add empty frames (next to existing ones first) until the packed length is even.
  if (packedBytes(frameCount) % 2 === 1) {
    const candidates: [number, number][] = [];
    for (let s = 0; s < nSeg; s++) {
      for (let j = 0; j < src.length; j++) {
        if (
          !chosen[s]![j] &&
          ((j > 0 && chosen[s]![j - 1]) || (j + 1 < src.length && chosen[s]![j + 1]))
        ) {
          candidates.push([s, j]);
        }
      }
    }
    for (let s = 0; s < nSeg; s++) {
      for (let j = 0; j < src.length; j++) if (!chosen[s]![j]) candidates.push([s, j]);
    }
    for (const [s, j] of candidates) {
      if (packedBytes(frameCount) % 2 === 0) break;
      if (chosen[s]![j]) continue;
      chosen[s]![j] = 1;
      frameCount++;
    }
    // Still odd only when every slice of every segment is stored (tiny images with an odd pixel
    // count): the file is still valid DICOM (PixelData is padded), OHIF's whole-instance load may
    // then fall back to per-frame retrieval.
  }

  // Pack bits (LSB first; frames concatenated without padding, DICOM PS3.5 8.1.1).
  const totalBytes = packedBytes(frameCount);
  const pixel = new Uint8Array(totalBytes + (totalBytes % 2));
  const perFrame: NaturalDataset[] = [];
  let f = 0;
  const purpose = [
    {
      CodeValue: '121322',
      CodingSchemeDesignator: 'DCM',
      CodeMeaning: 'Source image for image processing operation',
    },
  ];
  const derivationCode = [
    { CodeValue: '113076', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Segmentation' },
  ];
  for (let s = 0; s < nSeg; s++) {
    const label = segs[s]!.labelValue;
    for (let j = 0; j < src.length; j++) {
      if (!chosen[s]![j]) continue;
      const k = geo.sorted[j]!;
      const srcOff = k * frameSize;
      const bitBase = f * frameSize;
      for (let i = 0; i < frameSize; i++) {
        if (lm[srcOff + i] === label) {
          const bit = bitBase + i;
          pixel[bit >> 3]! |= 1 << (bit & 7);
        }
      }
      perFrame.push({
        DerivationImageSequence: [
          {
            SourceImageSequence: [
              {
                ReferencedSOPClassUID: sopClassUIDs[k],
                ReferencedSOPInstanceUID: sopInstanceUIDs[k],
                PurposeOfReferenceCodeSequence: purpose,
              },
            ],
            DerivationCodeSequence: derivationCode,
          },
        ],
        FrameContentSequence: [{ DimensionIndexValues: [s + 1, j + 1] }],
        PlanePositionSequence: [{ ImagePositionPatient: geo.positions[k]!.map(formatDs) }],
        SegmentIdentificationSequence: [{ ReferencedSegmentNumber: s + 1 }],
      });
      f++;
    }
  }

  const segmentSequence: NaturalDataset[] = segs.map((s, i) => {
    const typeItem: NaturalDataset = codeItem(s.type);
    if (s.modifier) typeItem.SegmentedPropertyTypeModifierCodeSequence = [codeItem(s.modifier)];
    const item: NaturalDataset = {
      SegmentNumber: i + 1,
      SegmentLabel: s.label.slice(0, 64),
      SegmentAlgorithmType: s.algorithmType,
      SegmentedPropertyCategoryCodeSequence: [codeItem(s.category)],
      SegmentedPropertyTypeCodeSequence: [typeItem],
      RecommendedDisplayCIELabValue: rgbToDicomLab(s.color),
    };
    if (s.algorithmType !== 'MANUAL') item.SegmentAlgorithmName = s.algorithmName ?? 'RRL-MedSAM';
    if (s.labelValue !== i + 1) {
      // Keeps the labelmap value for readers (readBinarySeg) when values are not 1..N.
      item.TrackingID = `label ${s.labelValue}`;
      item.TrackingUID = newUid();
    }
    return item;
  });

  const now = nowDateTime();
  const contentDate = args.contentDate ?? now.date;
  const contentTime = args.contentTime ?? now.time;
  const sopInstanceUID = args.sopInstanceUID ?? newUid();
  const seriesInstanceUID = args.seriesInstanceUID ?? newUid();
  const dimOrgUID = args.dimensionOrganizationUID ?? newUid();
  const first0 = src[0]!;

  const dataset: NaturalDataset = {
    SpecificCharacterSet: str(first0.SpecificCharacterSet) ?? 'ISO_IR 192',
    ImageType: ['DERIVED', 'PRIMARY'],
    SOPClassUID: SEGMENTATION_STORAGE,
    SOPInstanceUID: sopInstanceUID,
    SeriesDate: contentDate,
    ContentDate: contentDate,
    SeriesTime: contentTime,
    ContentTime: contentTime,
    Modality: 'SEG',
    Manufacturer: args.manufacturer ?? 'RRL-MedSAM',
    ManufacturerModelName: args.manufacturerModelName ?? 'RRL-MedSAM for OHIF',
    DeviceSerialNumber: args.deviceSerialNumber ?? '0',
    SoftwareVersions: args.softwareVersions ?? '0.1.0',
    SeriesDescription: (args.seriesDescription ?? 'Segmentation').slice(0, 64),
    SeriesInstanceUID: seriesInstanceUID,
    SeriesNumber: String(args.seriesNumber ?? 300),
    InstanceNumber: '1',
    FrameOfReferenceUID: frameOfReferenceUID,
    PositionReferenceIndicator: copyValue(first0.PositionReferenceIndicator) ?? '',
    ContentLabel: toContentLabel(args.contentLabel ?? 'SEGMENTATION'),
    ContentDescription: (args.contentDescription ?? args.seriesDescription ?? 'Segmentation').slice(
      0,
      64,
    ),
    ContentCreatorName: args.contentCreatorName ?? 'RRL-MedSAM^Algorithm',
    SegmentationType: 'BINARY',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: columns,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    NumberOfFrames: String(frameCount),
    DimensionOrganizationType: '3D',
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimOrgUID }],
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimOrgUID,
        DimensionIndexPointer: 0x0062000b, // ReferencedSegmentNumber
        FunctionalGroupPointer: 0x0062000a, // SegmentIdentificationSequence
        DimensionDescriptionLabel: 'ReferencedSegmentNumber',
      },
      {
        DimensionOrganizationUID: dimOrgUID,
        DimensionIndexPointer: 0x00200032, // ImagePositionPatient
        FunctionalGroupPointer: 0x00209113, // PlanePositionSequence
        DimensionDescriptionLabel: 'ImagePositionPatient',
      },
    ],
    SegmentSequence: segmentSequence,
    SharedFunctionalGroupsSequence: [
      {
        PlaneOrientationSequence: [{ ImageOrientationPatient: geo.orientation.map(formatDs) }],
        PixelMeasuresSequence: [
          {
            PixelSpacing: geo.pixelSpacing.map(formatDs),
            SliceThickness: formatDs(geo.sliceSpacing),
            SpacingBetweenSlices: formatDs(geo.sliceSpacing),
          },
        ],
      },
    ],
    PerFrameFunctionalGroupsSequence: perFrame,
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: seriesUIDSrc,
        ReferencedInstanceSequence: src.map((_, k) => ({
          ReferencedSOPClassUID: sopClassUIDs[k],
          ReferencedSOPInstanceUID: sopInstanceUIDs[k],
        })),
      },
    ],
    PixelData: pixel.buffer,
    _vrMap: { PixelData: 'OB' },
  };
  for (const key of PATIENT_STUDY_KEYS) {
    const v = copyValue(first0[key]);
    if (v !== undefined) dataset[key] = v;
    else if (
      [
        'PatientName',
        'PatientID',
        'PatientBirthDate',
        'PatientSex',
        'StudyDate',
        'StudyTime',
        'ReferringPhysicianName',
        'StudyID',
        'AccessionNumber',
      ].includes(key)
    ) {
      dataset[key] = ''; // type 2: present, may be empty
    }
  }
  dataset.StudyInstanceUID = studyUID;
  const body = copyValue(first0.BodyPartExamined);
  if (typeof body === 'string' && body) dataset.BodyPartExamined = body;

  const bytes = writePart10(dataset);
  const warnings: string[] = [];
  if (!framesByteAligned(rows, columns)) {
    warnings.push(
      `The series' images are ${columns}×${rows} pixels (not a multiple of 8): the SEG is valid ` +
        'DICOM, but OHIF 3.13 shows such 1-bit SEGs with misplaced voxels when they are reloaded. ' +
        'Check the reloaded overlay before relying on it.',
    );
  }
  if (packedBytes(frameCount) % 2 === 1) {
    warnings.push(
      'The packed SEG pixel data has an odd byte count; OHIF 3.13 may refuse to load it whole.',
    );
  }
  return { bytes, sopInstanceUID, seriesInstanceUID, frameCount, warnings };
}

function pixelBytes(v: unknown): Uint8Array {
  const x = Array.isArray(v) ? v[0] : v;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  throw new SegError('The SEG has no PixelData.');
}

/**
 * Reads a SEG back into a labelmap over `sourceInstances` (same indexing as the writer): BINARY
 * (what `writeBinarySeg` writes), and also, uncompressed, FRACTIONAL (8-bit, > half the maximum
 * counts as inside) and LABELMAP (Label Map Segmentation Storage, as OHIF's own export writes).
 * Where segments overlap, the later frame wins.
 */
/** The most frames a SEG may declare (e.g. 255 segments × 2000 slices). */
export const MAX_SEG_FRAMES = 510_000;

export function readBinarySeg(
  bytes: ArrayBuffer,
  sourceInstances: Record<string, unknown>[],
): { labelmap: Uint8Array; segments: SegmentDescription[] } {
  const ds = readPart10(bytes);
  const sopClass = str(ds.SOPClassUID);
  if (sopClass !== SEGMENTATION_STORAGE && sopClass !== LABELMAP_SEGMENTATION_STORAGE) {
    throw new SegError(
      `Expected a Segmentation Storage object (${SEGMENTATION_STORAGE} or ` +
        `${LABELMAP_SEGMENTATION_STORAGE}), found SOP class ${String(sopClass)}.`,
    );
  }
  const ts = str((ds._meta as NaturalDataset | undefined)?.TransferSyntaxUID);
  if (ts && ts !== '1.2.840.10008.1.2.1' && ts !== '1.2.840.10008.1.2') {
    throw new SegError(
      `The SEG's pixel data is compressed (transfer syntax ${ts}); ask the PACS for explicit VR ` +
        'little endian (WADO-RS transfer-syntax=1.2.840.10008.1.2.1) to read it.',
    );
  }
  const segType = str(ds.SegmentationType);
  const bitsAllocated = Number(first(ds.BitsAllocated));
  const kind: 'BINARY' | 'FRACTIONAL' | 'LABELMAP' | undefined =
    segType === 'BINARY' && bitsAllocated === 1
      ? 'BINARY'
      : segType === 'FRACTIONAL' && bitsAllocated === 8
        ? 'FRACTIONAL'
        : segType === 'LABELMAP' && (bitsAllocated === 8 || bitsAllocated === 16)
          ? 'LABELMAP'
          : undefined;
  if (!kind) {
    throw new SegError(
      `Unsupported segmentation: SegmentationType ${String(segType)} with ${bitsAllocated} bits ` +
        'allocated (expected BINARY 1-bit, FRACTIONAL 8-bit or LABELMAP 8/16-bit).',
    );
  }
  const geo = sourceGeometry(sourceInstances);
  const rows = Number(first(ds.Rows));
  const columns = Number(first(ds.Columns));
  if (rows !== geo.rows || columns !== geo.columns) {
    throw new SegError(
      `The SEG is ${rows}×${columns} but the source series is ${geo.rows}×${geo.columns}: ` +
        'it does not belong to this series.',
    );
  }
  const frameSize = rows * columns;
  const nFrames = Number(first(ds.NumberOfFrames) ?? 1);
  if (!Number.isInteger(nFrames) || nFrames < 1 || nFrames > MAX_SEG_FRAMES) {
    throw new SegError(
      `The SEG declares ${String(first(ds.NumberOfFrames))} frames; between 1 and ${MAX_SEG_FRAMES} are accepted.`,
    );
  }
  const declaredSegments = items(ds.SegmentSequence).length;
  if (declaredSegments > 255) {
    throw new SegError(`The SEG defines ${declaredSegments} segments; at most 255 are supported.`);
  }
  const perFrameCount = items(ds.PerFrameFunctionalGroupsSequence).length;
  if (perFrameCount !== nFrames) {
    throw new SegError(
      `The SEG declares ${nFrames} frames but describes ${perFrameCount} ` +
        '(PerFrameFunctionalGroupsSequence): it is inconsistent and cannot be read safely.',
    );
  }
  const pixel = pixelBytes(ds.PixelData);
  const bitsPerPixel = kind === 'BINARY' ? 1 : bitsAllocated;
  const needBytes = Math.ceil((nFrames * frameSize * bitsPerPixel) / 8);
  if (pixel.length < needBytes) {
    throw new SegError(
      `The SEG's PixelData has ${pixel.length} bytes, fewer than the ${needBytes} that ` +
        `${nFrames} frames of ${rows}×${columns} pixels need.`,
    );
  }
  const pixel16 =
    kind === 'LABELMAP' && bitsAllocated === 16
      ? new Uint16Array(pixel.buffer.slice(pixel.byteOffset, pixel.byteOffset + needBytes))
      : undefined;
  const fractionalThreshold = Number(first(ds.MaximumFractionalValue) ?? 255) / 2;

  // Segments
  const segNumberToLabel = new Map<number, number>();
  const segments: SegmentDescription[] = items(ds.SegmentSequence).map((it) => {
    const number = Number(first(it.SegmentNumber));
    const tracking = /^label (\d+)$/.exec(str(it.TrackingID) ?? '');
    const labelValue = tracking ? Number(tracking[1]) : number;
    if (labelValue > 255) {
      throw new SegError(
        `Segment ${number} has label value ${labelValue}; at most 255 are supported.`,
      );
    }
    segNumberToLabel.set(number, labelValue);
    const typeItem = items(it.SegmentedPropertyTypeCodeSequence)[0] ?? {};
    const lab = numbers(it.RecommendedDisplayCIELabValue);
    const algo = str(it.SegmentAlgorithmType);
    const d: SegmentDescription = {
      labelValue,
      label: str(it.SegmentLabel) ?? `Segment ${number}`,
      color: lab.length === 3 ? dicomLabToRgb(lab) : [255, 0, 0],
      category: readCode(it.SegmentedPropertyCategoryCodeSequence) ?? {
        value: '',
        scheme: '',
        meaning: '',
      },
      type: readCode(it.SegmentedPropertyTypeCodeSequence) ?? {
        value: '',
        scheme: '',
        meaning: '',
      },
      algorithmType: algo === 'AUTOMATIC' || algo === 'SEMIAUTOMATIC' ? algo : 'MANUAL',
    };
    const modifier = readCode(typeItem.SegmentedPropertyTypeModifierCodeSequence);
    if (modifier) d.modifier = modifier;
    const algoName = str(it.SegmentAlgorithmName);
    if (algoName) d.algorithmName = algoName;
    return d;
  });

  const sopToIndex = new Map<string, number>();
  sourceInstances.forEach((inst, k) => {
    const u = str(inst.SOPInstanceUID);
    if (u) sopToIndex.set(u, k);
  });
  const sorted = geo.sorted.map((k) => geo.distance[k]);
  const tol = Math.max(1e-3, geo.sliceSpacing * 0.25);
  const sliceOf = (frame: NaturalDataset, fi: number): number => {
    const der = items(frame.DerivationImageSequence)[0];
    const srcRef = der ? items(der.SourceImageSequence)[0] : undefined;
    const ref = srcRef ? str(srcRef.ReferencedSOPInstanceUID) : undefined;
    if (ref && sopToIndex.has(ref)) return sopToIndex.get(ref) as number;
    const pos = numbers(items(frame.PlanePositionSequence)[0]?.ImagePositionPatient);
    if (pos.length === 3) {
      const d = dot(geo.normal, [pos[0]!, pos[1]!, pos[2]!]);
      // binary search for the nearest source slice along the normal
      let lo = 0;
      let hi = sorted.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sorted[mid]! < d) lo = mid + 1;
        else hi = mid;
      }
      let best = lo;
      if (lo > 0 && Math.abs(sorted[lo - 1]! - d) < Math.abs(sorted[lo]! - d)) best = lo - 1;
      if (Math.abs(sorted[best]! - d) <= tol) return geo.sorted[best]!;
    }
    throw new SegError(
      `SEG frame ${fi + 1} matches no slice of the source series (neither by referenced SOP ` +
        'instance nor by position): the SEG does not belong to this series.',
    );
  };

  const perFrame = items(ds.PerFrameFunctionalGroupsSequence);
  const shared = items(ds.SharedFunctionalGroupsSequence)[0] ?? {};
  const sharedSeg = items(shared.SegmentIdentificationSequence)[0];
  const labelmap = new Uint8Array(frameSize * sourceInstances.length);
  for (let fi = 0; fi < nFrames; fi++) {
    const frame = perFrame[fi] ?? {};
    const k = sliceOf(frame, fi);
    const outOff = k * frameSize;
    if (kind === 'LABELMAP') {
      // Pixel values are segment numbers (0 = background).
      const base = fi * frameSize;
      for (let i = 0; i < frameSize; i++) {
        const v = (pixel16 ? pixel16[base + i] : pixel[base + i]) ?? 0;
        if (v === 0) continue;
        const label = segNumberToLabel.get(v);
        if (label === undefined) {
          throw new SegError(`SEG frame ${fi + 1} holds segment ${v}, which is not defined.`);
        }
        labelmap[outOff + i] = label;
      }
      continue;
    }
    const segItem = items(frame.SegmentIdentificationSequence)[0] ?? sharedSeg;
    const segNumber = Number(first(segItem?.ReferencedSegmentNumber));
    const label = segNumberToLabel.get(segNumber);
    if (label === undefined) {
      throw new SegError(
        `SEG frame ${fi + 1} refers to segment ${segNumber}, which is not defined.`,
      );
    }
    if (kind === 'FRACTIONAL') {
      const base = fi * frameSize;
      for (let i = 0; i < frameSize; i++) {
        if (pixel[base + i]! > fractionalThreshold) labelmap[outOff + i] = label;
      }
      continue;
    }
    const bitBase = fi * frameSize;
    for (let i = 0; i < frameSize; i++) {
      const bit = bitBase + i;
      if (pixel[bit >> 3]! & (1 << (bit & 7))) labelmap[outOff + i] = label;
    }
  }
  return { labelmap, segments };
}
