/**
 * Integration tests against a real Orthanc (started here on free ports, temporary storage):
 * STOW / QIDO / WADO round trip, SEG round trip through the PACS, dciodvfy on what we write,
 * per-frame retrieval of the SEG, and the errors a user sees when the PACS is down or refuses.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { naturalizeJson, numbers, readPart10, str } from '@rrl/core/dicom/dcmjs.js';
import { readBinarySeg, writeBinarySeg } from '@rrl/core/dicom/seg.js';
import {
  DicomWebClient,
  PacsError,
  jsonString,
  type DicomJsonDataset,
} from '@rrl/server/pacs/dicomweb.js';
import { startTestOrthanc, type TestOrthanc } from '../../helpers/orthanc.js';
import { SEGMENTS, blobLabelmap, smallGeometry, smallSeries } from '../../unit/dicom/helpers.js';
import { writeImageSeries } from '@rrl/core/dicom/series.js';
import { dciodvfyErrors } from './dciodvfy.js';
import { fetchSegLabelmap, fetchSeriesVolume } from '@rrl/server/pacs/volume.js';

const execFileAsync = promisify(execFile);
let pacs: TestOrthanc;
let client: DicomWebClient;
const STUDY = '2.25.310000000000000000000000000000000001';
const [NX, NY, NZ] = [16, 12, 6];
const series = smallSeries(NX, NY, NZ, STUDY);
const labelmap = blobLabelmap(NX, NY, NZ);

before(async () => {
  pacs = await startTestOrthanc('RRL-PACS-IT');
  client = new DicomWebClient({
    root: pacs.dicomWebRoot,
    username: pacs.username,
    password: pacs.password,
  });
});

after(async () => {
  await pacs?.stop();
});

test('STOW-RS stores a generated MR series; QIDO finds it; WADO-RS returns the same pixels', async () => {
  const res = await client.stow(series.files);
  assert.deepEqual([...res.stored].sort(), [...series.sopInstanceUIDs].sort());
  assert.deepEqual(res.failed, []);

  assert.equal(await client.hasStudy(STUDY), true);
  assert.equal(await client.hasStudy('2.25.1'), false);
  const studies = await client.qidoStudies({ StudyInstanceUID: STUDY, includefield: '00081030' });
  assert.equal(studies.length, 1);
  assert.equal(jsonString(studies[0], '00081030'), 'SYNTHETIC DEMO unit test');

  const ser = await client.qidoSeries(STUDY);
  assert.equal(ser.length, 1);
  assert.equal(jsonString(ser[0], '0020000E'), series.seriesInstanceUID);
  assert.equal(jsonString(ser[0], '00080060'), 'MR');

  const inst = await client.qidoInstances(STUDY, series.seriesInstanceUID);
  assert.equal(inst.length, NZ);

  const meta = await client.seriesMetadata(STUDY, series.seriesInstanceUID);
  assert.equal(meta.length, NZ);
  const natural = meta.map((m) => naturalizeJson(m));
  for (const m of natural) {
    const k = series.sopInstanceUIDs.indexOf(str(m.SOPInstanceUID) ?? '');
    assert.ok(k >= 0);
    assert.deepEqual(numbers(m.ImagePositionPatient), [-10, -20, 30 - 2.5 * k]);
  }

  const k = 3;
  const part10 = await client.retrieveInstance(
    STUDY,
    series.seriesInstanceUID,
    series.sopInstanceUIDs[k],
  );
  const ds = readPart10(part10);
  assert.equal(str(ds.SOPInstanceUID), series.sopInstanceUIDs[k]);
  const px = new Int16Array((ds.PixelData as ArrayBuffer[])[0]);
  const original = new Int16Array((readPart10(series.files[k]).PixelData as ArrayBuffer[])[0]);
  assert.deepEqual(Array.from(px), Array.from(original));

  const all = await client.retrieveSeries(STUDY, series.seriesInstanceUID);
  assert.equal(all.length, NZ);
});

test('WADO-RS metadata BulkDataURIs follow the request Host header (what the proxy relies on)', async () => {
  const u = new URL(
    `${pacs.dicomWebRoot}/studies/${STUDY}/series/${series.seriesInstanceUID}/metadata`,
  );
  const body = await new Promise<string>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: Number(u.port),
        path: u.pathname,
        headers: {
          Host: 'viewer.example:8123',
          Accept: 'application/dicom+json',
          Authorization:
            'Basic ' + Buffer.from(`${pacs.username}:${pacs.password}`).toString('base64'),
        },
      },
      (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (s += c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(s) : reject(new Error(`HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
  const meta = JSON.parse(body) as DicomJsonDataset[];
  const uri = meta[0]['7FE00010']?.BulkDataURI ?? '';
  assert.match(uri, /^http:\/\/viewer\.example:8123\/dicom-web\/studies\//);
});

test('generated MR and CT instances pass dciodvfy with no errors', async () => {
  const { errors, output } = await dciodvfyErrors(series.files[0]);
  assert.deepEqual(errors, [], output);
  const ct = writeImageSeries({
    modality: 'CT',
    geometry: smallGeometry(8, 8, 2),
    voxels: new Int16Array(128).fill(-1000),
    patient: { name: 'SYNTHETIC^CT', id: 'SYN-CT' },
    study: { studyInstanceUID: '2.25.77' },
    synthetic: true,
  });
  const r = await dciodvfyErrors(ct.files[1]);
  assert.deepEqual(r.errors, [], r.output);
});

test('SEG round trip through the PACS: write → dciodvfy → STOW → QIDO → WADO → read equals the labelmap', async () => {
  // the source instances come from the PACS's own metadata, as in the viewer
  const meta = await client.seriesMetadata(STUDY, series.seriesInstanceUID);
  const sources = meta.map((m) => naturalizeJson(m));
  const order = sources.map((s) => series.sopInstanceUIDs.indexOf(str(s.SOPInstanceUID) ?? ''));
  const lm = new Uint8Array(labelmap.length);
  order.forEach((k, j) => lm.set(labelmap.subarray(k * NX * NY, (k + 1) * NX * NY), j * NX * NY));

  const seg = writeBinarySeg({
    sourceInstances: sources,
    labelmap: lm,
    segments: SEGMENTS,
    seriesDescription: 'One-shot segmentation (integration test)',
  });
  const { errors, output } = await dciodvfyErrors(seg.bytes);
  assert.deepEqual(errors, [], output);

  await client.stow([seg.bytes], STUDY);
  const segSeries = await client.qidoSeries(STUDY, { Modality: 'SEG' });
  assert.equal(segSeries.length, 1);
  assert.equal(jsonString(segSeries[0], '0020000E'), seg.seriesInstanceUID);

  const back = await client.retrieveInstance(STUDY, seg.seriesInstanceUID, seg.sopInstanceUID);
  // read against the series in our own slice order
  const read = readBinarySeg(back, series.datasets);
  assert.deepEqual(Array.from(read.labelmap), Array.from(labelmap));
  assert.deepEqual(
    read.segments.map((s) => s.label),
    SEGMENTS.map((s) => s.label),
  );

  // per-frame retrieval works too (16 columns: every frame starts on a byte boundary)
  const res = await fetch(
    `${pacs.dicomWebRoot}/studies/${STUDY}/series/${seg.seriesInstanceUID}/instances/${seg.sopInstanceUID}/frames/2`,
    {
      headers: {
        Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
        Authorization:
          'Basic ' + Buffer.from(`${pacs.username}:${pacs.password}`).toString('base64'),
      },
    },
  );
  assert.equal(res.status, 200);
  await res.arrayBuffer();

  // a second save is a new series
  const seg2 = writeBinarySeg({ sourceInstances: sources, labelmap: lm, segments: SEGMENTS });
  await client.stow([seg2.bytes]);
  assert.equal((await client.qidoSeries(STUDY, { Modality: 'SEG' })).length, 2);
});

test('fetchSeriesVolume / fetchSegLabelmap read the series and its SEG back on one grid', async () => {
  const vol = await fetchSeriesVolume(client, STUDY, series.seriesInstanceUID);
  assert.deepEqual(vol.geometry.dims, [NX, NY, NZ]);
  assert.equal(vol.modality, 'MR');
  const frame = NX * NY;
  // volume slice z = source slice NZ − 1 − z (sorted ascending along the normal)
  const expected = new Uint8Array(labelmap.length);
  for (let z = 0; z < NZ; z++) {
    const k = NZ - 1 - z;
    expected.set(labelmap.subarray(k * frame, (k + 1) * frame), z * frame);
    assert.equal(vol.voxels[z * frame + 5], ((k * frame + 5) * 37) % 1000);
  }
  const segSeries = await client.qidoSeries(STUDY, { Modality: 'SEG' });
  const segUID = jsonString(segSeries[0], '0020000E') ?? '';
  const seg = await fetchSegLabelmap(client, vol, segUID);
  assert.deepEqual(Array.from(seg.labelmap), Array.from(expected));
});

test('fetchSeriesVolume reads an RLE-compressed series (the PACS transcodes on request)', async () => {
  const rleSeries = smallSeries(16, 12, 3, '2.25.320000000000000000000000000000000002');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-rle-'));
  try {
    const rle: ArrayBuffer[] = [];
    for (let k = 0; k < 3; k++) {
      const plain = path.join(dir, `${k}.dcm`);
      const packed = path.join(dir, `${k}.rle.dcm`);
      await writeFile(plain, new Uint8Array(rleSeries.files[k]));
      await execFileAsync('dcmcrle', [plain, packed]);
      const b = await readFile(packed);
      rle.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
    }
    assert.equal(
      str((readPart10(rle[0])._meta as Record<string, unknown>).TransferSyntaxUID),
      '1.2.840.10008.1.2.5',
    );
    await client.stow(rle);
    const vol = await fetchSeriesVolume(
      client,
      '2.25.320000000000000000000000000000000002',
      rleSeries.seriesInstanceUID,
    );
    const frame = 16 * 12;
    for (let z = 0; z < 3; z++) {
      const k = 2 - z;
      for (const i of [0, 33, frame - 1]) {
        assert.equal(vol.voxels[z * frame + i], ((k * frame + i) * 37) % 1000);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('wrong password: PacsError "unauthorized" that says what to check, without the password', async () => {
  const bad = new DicomWebClient({
    root: pacs.dicomWebRoot,
    username: pacs.username,
    password: 'wrong-secret',
  });
  await assert.rejects(
    () => bad.qidoStudies(),
    (e: unknown) =>
      e instanceof PacsError &&
      e.kind === 'unauthorized' &&
      e.status === 401 &&
      /username and password/.test(e.message) &&
      !e.message.includes('wrong-secret'),
  );
});

test('the PACS refuses garbage: PacsError with the reason', async () => {
  const garbage = new TextEncoder().encode('this is not DICOM').buffer;
  await assert.rejects(
    () => client.stow([garbage]),
    (e: unknown) => e instanceof PacsError && e.kind !== 'unreachable' && /PACS/.test(e.message),
  );
});

test('unknown study: PacsError "not-found" for WADO-RS metadata', async () => {
  await assert.rejects(
    () => client.seriesMetadata('2.25.1', '2.25.2'),
    (e: unknown) => e instanceof PacsError && e.kind === 'not-found' && /2\.25\.2/.test(e.message),
  );
});

test('PACS down: PacsError "unreachable" that tells the user to check the PACS', async () => {
  const other = await startTestOrthanc('RRL-PACS-DOWN');
  const c = new DicomWebClient({
    root: other.dicomWebRoot,
    username: other.username,
    password: other.password,
  });
  assert.deepEqual(await c.qidoStudies(), []);
  await other.stop();
  await assert.rejects(
    () => c.qidoStudies({ PatientName: 'SECRET^NAME' }),
    (e: unknown) =>
      e instanceof PacsError &&
      e.kind === 'unreachable' &&
      /Could not reach the PACS/.test(e.message) &&
      /running/.test(e.message) &&
      !e.message.includes('SECRET'),
  );
  await assert.rejects(
    () => c.stow([series.files[0]]),
    (e: unknown) => e instanceof PacsError && e.kind === 'unreachable',
  );
});
