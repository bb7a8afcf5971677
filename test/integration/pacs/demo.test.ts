/**
 * Demo seeding against a real Orthanc: the atlas (MR + SEG) and one synthetic subject are
 * generated, stored, found through QIDO; a second run stores nothing; the atlas SEG read back
 * from the PACS equals the atlas labels; the ground truth stays on disk only.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { naturalizeJson, numbers, str } from '@rrl/core/dicom/dcmjs.js';
import { readBinarySeg } from '@rrl/core/dicom/seg.js';
import { loadDemoAtlas } from '@rrl/server/demo/atlas.js';
import { readNifti } from '@rrl/server/demo/nifti.js';
import { seedDemo, type SeedDemoResult } from '@rrl/server/demo/seed.js';
import { DicomWebClient, jsonString } from '@rrl/server/pacs/dicomweb.js';
import { startTestOrthanc, type TestOrthanc } from '../../helpers/orthanc.js';
import { dciodvfyErrors } from './dciodvfy.js';

let pacs: TestOrthanc;
let client: DicomWebClient;
let dataDir: string;
let first: SeedDemoResult;

before(async () => {
  pacs = await startTestOrthanc('RRL-DEMO-IT');
  client = new DicomWebClient({
    root: pacs.dicomWebRoot,
    username: pacs.username,
    password: pacs.password,
  });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'rrl-demo-'));
  first = await seedDemo({ client, dataDir, subjects: 1 });
});

after(async () => {
  await pacs?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('seedDemo stores the atlas (MR + SEG) and the subjects as distinct synthetic studies', async () => {
  assert.equal(first.subjects.length, 1);
  assert.deepEqual(
    [...first.stored].sort(),
    [first.atlas.studyUID, first.subjects[0].studyUID].sort(),
  );
  const studies = await client.qidoStudies({ includefield: '00081030' });
  assert.equal(studies.length, 2);
  const names = studies.map((s) => JSON.stringify(s['00100010']?.Value ?? []));
  for (const n of names) assert.match(n, /SYNTHETIC\^DEMO-/);
  for (const s of studies) assert.match(jsonString(s, '00081030') ?? '', /^SYNTHETIC DEMO/);
  const ids = new Set(studies.map((s) => jsonString(s, '00100020')));
  assert.equal(ids.size, 2);

  const atlasSeries = await client.qidoSeries(first.atlas.studyUID);
  const byModality = new Map(
    atlasSeries.map((s) => [jsonString(s, '00080060'), jsonString(s, '0020000E')]),
  );
  assert.equal(byModality.get('MR'), first.atlas.seriesUID);
  assert.equal(byModality.get('SEG'), first.atlas.segSeriesUID);
  const subjectSeries = await client.qidoSeries(first.subjects[0].studyUID);
  assert.deepEqual(
    subjectSeries.map((s) => jsonString(s, '00080060')),
    ['MR'],
    'ground truth must not be in the PACS',
  );
  const inst = await client.qidoInstances(first.subjects[0].studyUID, first.subjects[0].seriesUID);
  assert.equal(inst.length, 181);
});

test('a second seedDemo reuses the files and stores nothing', async () => {
  const again = await seedDemo({ client, dataDir, subjects: 1 });
  assert.deepEqual(again.stored, []);
  assert.equal(again.atlas.studyUID, first.atlas.studyUID);
  assert.equal(again.subjects[0].studyUID, first.subjects[0].studyUID);
});

test('the atlas SEG from the PACS reads back as the AAL labels and passes dciodvfy', async () => {
  const segInst = await client.qidoInstances(first.atlas.studyUID, first.atlas.segSeriesUID);
  assert.equal(segInst.length, 1);
  const sop = jsonString(segInst[0], '00080018') ?? '';
  const bytes = await client.retrieveInstance(first.atlas.studyUID, first.atlas.segSeriesUID, sop);
  const { errors, output } = await dciodvfyErrors(bytes);
  assert.deepEqual(errors, [], output);
  assert.equal((bytes.byteLength & 1) === 0, true);

  const meta = await client.seriesMetadata(first.atlas.studyUID, first.atlas.seriesUID);
  const sources = meta.map((m) => naturalizeJson(m));
  const read = readBinarySeg(bytes, sources);
  assert.equal(read.segments.length, 8);
  assert.equal(read.segments[0].label, 'Left hippocampus');
  assert.equal(read.segments[0].type.value, '5366008');
  assert.equal(read.segments[0].category.value, '91723000');
  assert.equal(read.segments[0].modifier?.value, '7771000');

  const atlas = await loadDemoAtlas();
  const [nx, ny] = atlas.geometry.dims;
  const frame = nx * ny;
  // sources come in the PACS's order: place each slice by its position (z = IPP z − origin z)
  let mismatches = 0;
  sources.forEach((s, j) => {
    const z = Math.round(numbers(s.ImagePositionPatient)[2] - atlas.geometry.origin[2]);
    for (let i = 0; i < frame; i++)
      if (read.labelmap[j * frame + i] !== atlas.labels[z * frame + i]) mismatches++;
  });
  assert.equal(mismatches, 0);
  assert.equal(str(sources[0].PatientPosition), 'HFS');
});

test('ground truth stays on disk: NIfTI labels 1..8 on the series grid, with an index', async () => {
  const gtDir = path.join(dataDir, 'demo', 'ground-truth');
  const index = JSON.parse(await readFile(path.join(gtDir, 'index.json'), 'utf8')) as {
    labels: { value: number; name: string }[];
    studies: { studyInstanceUID: string; file: string; role: string; dims: number[] }[];
  };
  assert.equal(index.labels.length, 8);
  const subj = index.studies.find((s) => s.studyInstanceUID === first.subjects[0].studyUID);
  assert.ok(subj);
  assert.equal(subj.role, 'subject');
  assert.ok(existsSync(path.join(gtDir, subj.file)));
  const gt = await readNifti(path.join(gtDir, subj.file));
  assert.deepEqual(gt.dims, [184, 217, 181]);
  const seen = new Set<number>();
  for (const v of gt.data) seen.add(v);
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8],
  );
  const files = await readdir(path.join(dataDir, 'demo', 'dicom'));
  assert.equal(files.length, 2);
});
