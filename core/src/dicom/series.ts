/**
 * Writes a 3-D volume as a DICOM image series (MR or CT Image Storage, one Part 10 instance per
 * slice) with dcmjs. Browser-safe. Output passes dciodvfy with no errors.
 *
 * Geometry is in DICOM patient coordinates (LPS, mm). The voxel array is x (column) fastest, then
 * y (row), then z (slice): voxel (x, y, z) is at origin + x·sx·row + y·sy·col + z·sz·slice.
 */
import { newUid, writePart10, type NaturalDataset } from './dcmjs.js';

export const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

export type Vec3 = [number, number, number];

export interface VolumeGeometry {
  /** [nx (columns), ny (rows), nz (slices)] */
  dims: Vec3;
  /** [column spacing, row spacing, slice spacing] in mm */
  spacing: Vec3;
  /** LPS position (mm) of the centre of voxel (0, 0, 0) */
  origin: Vec3;
  /** Unit vectors, LPS: [row (increasing x) ×3, column (increasing y) ×3, slice (increasing z) ×3] */
  direction: [number, number, number, number, number, number, number, number, number];
}

export interface PatientInfo {
  name: string;
  id: string;
  birthDate?: string;
  sex?: 'M' | 'F' | 'O' | '';
}

export interface StudyInfo {
  studyInstanceUID: string;
  studyId?: string;
  studyDate?: string;
  studyTime?: string;
  description?: string;
  accessionNumber?: string;
}

export interface SeriesInfo {
  seriesInstanceUID?: string;
  seriesNumber?: number;
  description?: string;
  frameOfReferenceUID?: string;
  bodyPartExamined?: string;
  /** One UID per slice; generated when absent. */
  sopInstanceUIDs?: string[];
}

export interface WriteImageSeriesArgs {
  modality: 'MR' | 'CT';
  geometry: VolumeGeometry;
  /** Stored pixel values, x fastest (length nx·ny·nz). CT: Hounsfield units (Int16Array). */
  voxels: Int16Array | Uint16Array;
  patient: PatientInfo;
  study: StudyInfo;
  series?: SeriesInfo;
  window?: { center: number; width: number };
  manufacturer?: string;
  institutionName?: string;
  /** Marks the data as synthetic/de-identified (PatientIdentityRemoved = YES). */
  synthetic?: boolean;
}

export interface WrittenSeries {
  seriesInstanceUID: string;
  frameOfReferenceUID: string;
  sopInstanceUIDs: string[];
  /** One Part 10 file per slice, in slice order (z = 0 first). */
  files: ArrayBuffer[];
  /** The naturalized datasets without PixelData, in slice order (for SEG writing and tests). */
  datasets: NaturalDataset[];
}

/** Formats a number for a DS value (≤ 16 characters). */
export function ds(v: number): string {
  if (Object.is(v, -0) || Math.abs(v) < 1e-10) return '0';
  let s = String(Number(v.toPrecision(10)));
  if (s.length > 16) s = v.toExponential(8);
  if (s.length > 16) s = v.toExponential(5);
  return s;
}

function dateTimeNow(): { date: string; time: string } {
  const iso = new Date().toISOString();
  return { date: iso.slice(0, 10).replace(/-/g, ''), time: iso.slice(11, 19).replace(/:/g, '') };
}

function checkGeometry(g: VolumeGeometry, voxelCount: number): void {
  const [nx, ny, nz] = g.dims;
  if (![nx, ny, nz].every((n) => Number.isInteger(n) && n > 0)) {
    throw new Error(
      `writeImageSeries: dims must be positive integers, found [${g.dims.join(', ')}]`,
    );
  }
  if (nx * ny * nz !== voxelCount) {
    throw new Error(
      `writeImageSeries: expected ${nx * ny * nz} voxels for dims [${g.dims.join(', ')}], found ${voxelCount}`,
    );
  }
  if (!g.spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new Error(`writeImageSeries: spacing must be positive, found [${g.spacing.join(', ')}]`);
  }
}

/** The LPS position of the centre of the first voxel of slice z. */
export function slicePosition(g: VolumeGeometry, z: number): Vec3 {
  const d = g.direction;
  return [
    g.origin[0] + z * g.spacing[2] * d[6],
    g.origin[1] + z * g.spacing[2] * d[7],
    g.origin[2] + z * g.spacing[2] * d[8],
  ];
}

/** Writes the volume as one instance per slice. */
export function writeImageSeries(args: WriteImageSeriesArgs): WrittenSeries {
  const { geometry: g, voxels, patient, study } = args;
  checkGeometry(g, voxels.length);
  const [nx, ny, nz] = g.dims;
  const series = args.series ?? {};
  const seriesInstanceUID = series.seriesInstanceUID ?? newUid();
  const frameOfReferenceUID = series.frameOfReferenceUID ?? newUid();
  const sopInstanceUIDs = series.sopInstanceUIDs ?? Array.from({ length: nz }, () => newUid());
  if (sopInstanceUIDs.length !== nz) {
    throw new Error(
      `writeImageSeries: expected ${nz} SOP Instance UIDs (one per slice), found ${sopInstanceUIDs.length}`,
    );
  }
  const signed = voxels instanceof Int16Array;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < voxels.length; i++) {
    const v = voxels[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const win = args.window ?? {
    center: (lo + hi) / 2,
    width: Math.max(1, hi - lo),
  };
  const now = dateTimeNow();
  const isMR = args.modality === 'MR';
  const sliceThickness = ds(g.spacing[2]);
  const iop = g.direction.slice(0, 6).map(ds);
  const pixelSpacing = [ds(g.spacing[1]), ds(g.spacing[0])]; // row spacing \ column spacing
  const frameSize = nx * ny;
  const bodyPart = series.bodyPartExamined ?? (isMR ? 'BRAIN' : '');

  const files: ArrayBuffer[] = [];
  const datasets: NaturalDataset[] = [];
  for (let z = 0; z < nz; z++) {
    const pos = slicePosition(g, z);
    const dsBase: NaturalDataset = {
      SpecificCharacterSet: 'ISO_IR 192',
      ImageType: isMR ? ['DERIVED', 'PRIMARY', 'OTHER'] : ['DERIVED', 'PRIMARY', 'AXIAL'],
      SOPClassUID: isMR ? MR_IMAGE_STORAGE : CT_IMAGE_STORAGE,
      SOPInstanceUID: sopInstanceUIDs[z],
      StudyDate: study.studyDate ?? now.date,
      SeriesDate: study.studyDate ?? now.date,
      ContentDate: study.studyDate ?? now.date,
      StudyTime: study.studyTime ?? now.time,
      SeriesTime: study.studyTime ?? now.time,
      ContentTime: study.studyTime ?? now.time,
      AccessionNumber: study.accessionNumber ?? '',
      Modality: args.modality,
      Manufacturer: args.manufacturer ?? 'RRL-MedSAM',
      InstitutionName: args.institutionName ?? '',
      ReferringPhysicianName: '',
      StudyDescription: study.description ?? '',
      SeriesDescription: series.description ?? '',
      PatientName: patient.name,
      PatientID: patient.id,
      PatientBirthDate: patient.birthDate ?? '',
      PatientSex: patient.sex ?? '',
      ...(args.synthetic
        ? {
            PatientIdentityRemoved: 'YES',
            DeidentificationMethod: 'SYNTHETIC DATA, NO REAL PATIENT',
          }
        : {}),
      BodyPartExamined: bodyPart,
      ...(bodyPart ? {} : { Laterality: '' }),
      SliceThickness: sliceThickness,
      SpacingBetweenSlices: sliceThickness,
      ...(isMR
        ? {
            ScanningSequence: 'RM',
            SequenceVariant: 'NONE',
            ScanOptions: '',
            MRAcquisitionType: '3D',
            RepetitionTime: '8',
            EchoTime: '2',
            EchoTrainLength: '1',
            MagneticFieldStrength: '3',
          }
        : { KVP: '' }),
      PatientPosition: 'HFS',
      StudyInstanceUID: study.studyInstanceUID,
      SeriesInstanceUID: seriesInstanceUID,
      StudyID: study.studyId ?? '',
      SeriesNumber: String(series.seriesNumber ?? 1),
      AcquisitionNumber: '1',
      InstanceNumber: String(z + 1),
      ImagePositionPatient: pos.map(ds),
      ImageOrientationPatient: iop,
      FrameOfReferenceUID: frameOfReferenceUID,
      PositionReferenceIndicator: '',
      SliceLocation: ds(
        pos[0] * g.direction[6] + pos[1] * g.direction[7] + pos[2] * g.direction[8],
      ),
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: ny,
      Columns: nx,
      PixelSpacing: pixelSpacing,
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: signed ? 1 : 0,
      WindowCenter: ds(win.center),
      WindowWidth: ds(win.width),
      ...(isMR ? {} : { RescaleIntercept: '0', RescaleSlope: '1', RescaleType: 'HU' }),
      LossyImageCompression: '00',
    };
    const slice = voxels.slice(z * frameSize, (z + 1) * frameSize);
    const full: NaturalDataset = {
      ...dsBase,
      PixelData: slice.buffer,
      _vrMap: { PixelData: 'OW' },
    };
    files.push(writePart10(full));
    datasets.push(dsBase);
  }
  return { seriesInstanceUID, frameOfReferenceUID, sopInstanceUIDs, files, datasets };
}

/**
 * Converts a NIfTI voxel→world affine (RAS+, 4×4 row-major, e.g. from sform/qform) into the
 * DICOM LPS geometry of `writeImageSeries`, for an image whose voxel array keeps NIfTI's order
 * (i fastest). Axes are not permuted or flipped: column = i, row = j, slice = k.
 */
export function geometryFromNiftiAffine(affine: number[][], dims: Vec3): VolumeGeometry {
  // A missing entry reads NaN, which the zero-length check below refuses.
  const m = (r: number, c: number): number => affine[r]?.[c] ?? NaN;
  const col = (c: number): Vec3 => [-m(0, c), -m(1, c), m(2, c)]; // RAS → LPS
  const norm = (v: Vec3): number => Math.hypot(v[0], v[1], v[2]);
  const a = col(0);
  const b = col(1);
  const c = col(2);
  const sa = norm(a);
  const sb = norm(b);
  const sc = norm(c);
  if (!(sa > 0 && sb > 0 && sc > 0)) {
    throw new Error('geometryFromNiftiAffine: the affine has a zero-length axis');
  }
  return {
    dims,
    spacing: [sa, sb, sc],
    origin: [-m(0, 3), -m(1, 3), m(2, 3)],
    direction: [
      a[0] / sa,
      a[1] / sa,
      a[2] / sa,
      b[0] / sb,
      b[1] / sb,
      b[2] / sb,
      c[0] / sc,
      c[1] / sc,
      c[2] / sc,
    ],
  };
}
