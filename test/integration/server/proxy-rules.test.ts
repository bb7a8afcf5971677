/** What the DICOMweb proxy forwards, and its query fix-up for Orthanc (pure functions). */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { checkDicomWebRequest, normalizeQuery } from '@rrl/server/proxy/dicomweb.js';

test('only DICOMweb resources are forwarded: QIDO/WADO GET/HEAD, STOW POST to studies', () => {
  const allowed: [string, string][] = [
    ['GET', '/studies'],
    ['GET', '/series'],
    ['GET', '/instances'],
    ['HEAD', '/studies/1.2.3/series/4.5/instances/6.7/frames/1'],
    ['GET', '/studies/1.2.3/series/4.5/metadata'],
    ['GET', '/studies/1.2.3/series/4.5/instances/6.7/bulk/7fe00010'],
    ['POST', '/studies'],
    ['POST', '/studies/1.2.3'],
  ];
  for (const [m, p] of allowed) assert.equal(checkDicomWebRequest(m, p), undefined, `${m} ${p}`);
  const refused: [string, string, RegExp][] = [
    ['GET', '', /only DICOMweb resources/],
    ['GET', '/', /only DICOMweb resources/],
    ['GET', '/servers', /only DICOMweb resources/],
    ['POST', '/servers/peer/stow', /only DICOMweb resources/],
    ['GET', '/../system', /dot segments/],
    ['GET', '/studies/%2e%2e/%2e%2e/system', /dot segments/],
    ['GET', '/studies/..%5csystem', /invalid characters/],
    ['GET', '/studies/%zz', /percent-encoding/],
    ['DELETE', '/studies/1.2.3', /DELETE is not allowed/],
    ['PUT', '/studies', /PUT is not allowed/],
    ['POST', '/studies/1.2.3/series/4.5', /POST is not allowed/],
  ];
  for (const [m, p, why] of refused)
    assert.match(checkDicomWebRequest(m, p) ?? '', why, `${m} ${p}`);
});

test('includefield comma lists are sent with literal commas; other parameters unchanged', () => {
  assert.equal(
    normalizeQuery('?limit=101&includefield=00081030%2C00080060&PatientName=A%2CB'),
    '?limit=101&includefield=00081030,00080060&PatientName=A%2CB',
  );
  assert.equal(
    normalizeQuery('?includefield=00081030%2c00080060'),
    '?includefield=00081030,00080060',
  );
  assert.equal(normalizeQuery('?StudyDate=20260101'), '?StudyDate=20260101');
  assert.equal(normalizeQuery(''), '');
});
