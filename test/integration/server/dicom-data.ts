/**
 * A tiny synthetic MR series (Part 10 files written with dcmjs through the PACS team's wrapper)
 * and a STOW-RS multipart body builder, for the server's proxy tests.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { newUid, writePart10 } from '@rrl/core/dicom/dcmjs.js';
import { authedFetch } from '../../helpers/server.js';

export const SECRET_PATIENT_NAME = 'Zzsecret^Patientname';
export const SECRET_PATIENT_ID = 'PID-SECRET-4711';

export interface TinySeries {
  studyUID: string;
  seriesUID: string;
  sopUIDs: string[];
  files: ArrayBuffer[];
  rows: number;
  columns: number;
}

/** `slices` MR slices of rows×columns uint16 pixels (value = x + y + z). */
export function makeTinySeries(
  slices = 3,
  rows = 16,
  columns = 16,
  studyDescription = 'RRL server test study',
): TinySeries {
  const studyUID = newUid();
  const seriesUID = newUid();
  const frameUID = newUid();
  const sopUIDs: string[] = [];
  const files: ArrayBuffer[] = [];
  for (let z = 0; z < slices; z++) {
    const sop = newUid();
    sopUIDs.push(sop);
    const px = new Uint16Array(rows * columns);
    for (let y = 0; y < rows; y++)
      for (let x = 0; x < columns; x++) px[y * columns + x] = x + y + z;
    files.push(
      writePart10({
        SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
        SOPInstanceUID: sop,
        StudyInstanceUID: studyUID,
        SeriesInstanceUID: seriesUID,
        FrameOfReferenceUID: frameUID,
        PatientName: SECRET_PATIENT_NAME,
        PatientID: SECRET_PATIENT_ID,
        StudyDate: '20260101',
        StudyTime: '120000',
        StudyID: '1',
        StudyDescription: studyDescription,
        SeriesDescription: 'RRL server test series',
        AccessionNumber: '',
        ReferringPhysicianName: '',
        PatientBirthDate: '',
        PatientSex: 'O',
        Modality: 'MR',
        SeriesNumber: '1',
        InstanceNumber: String(z + 1),
        ImagePositionPatient: [0, 0, z * 2],
        ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
        PixelSpacing: [1, 1],
        SliceThickness: '2',
        SamplesPerPixel: 1,
        PhotometricInterpretation: 'MONOCHROME2',
        Rows: rows,
        Columns: columns,
        BitsAllocated: 16,
        BitsStored: 16,
        HighBit: 15,
        PixelRepresentation: 0,
        PixelData: px.buffer,
        _vrMap: { PixelData: 'OW' },
      }),
    );
  }
  return { studyUID, seriesUID, sopUIDs, files, rows, columns };
}

/** A multipart/related; type="application/dicom" body (STOW-RS). */
export function stowBody(files: ArrayBuffer[]): {
  body: Uint8Array<ArrayBuffer>;
  contentType: string;
} {
  const boundary = 'rrl-' + randomBytes(12).toString('hex');
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`));
    parts.push(Buffer.from(f));
    parts.push(Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    body: new Uint8Array(Buffer.concat(parts)),
    contentType: `multipart/related; type="application/dicom"; boundary=${boundary}`,
  };
}

/** STOW-RS of `files` to `<origin>/dicom-web/studies` (through the companion server); asserts 200. */
export async function stowThrough(
  origin: string,
  files: ArrayBuffer[],
  token?: string,
): Promise<void> {
  const { body, contentType } = stowBody(files);
  const stow = await authedFetch(`${origin}/dicom-web/studies`, {
    method: 'POST',
    headers: {
      'Content-Type': contentType,
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body,
  });
  assert.equal(stow.status, 200, `STOW through ${origin}: HTTP ${stow.status}`);
  await stow.arrayBuffer();
}
