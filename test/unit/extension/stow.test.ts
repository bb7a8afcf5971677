import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StowError, buildMultipart, stowInstances } from '@rrl/extension/seg/stow.js';

type FetchArgs = { url: string; init: RequestInit };

function fakeFetch(res: () => Response | Promise<Response>, calls: FetchArgs[] = []): typeof fetch {
  return (async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    return res();
  }) as typeof fetch;
}

test('buildMultipart frames each part with the boundary and application/dicom', async () => {
  const a = new Uint8Array([1, 2, 3]).buffer;
  const b = new Uint8Array([4]).buffer;
  const body = new Uint8Array(await buildMultipart([a, b], 'XYZ').arrayBuffer());
  const text = Buffer.from(body).toString('latin1');
  assert.equal(
    text,
    '--XYZ\r\nContent-Type: application/dicom\r\n\r\n\x01\x02\x03\r\n' +
      '--XYZ\r\nContent-Type: application/dicom\r\n\r\n\x04\r\n--XYZ--\r\n',
  );
});

test('stowInstances posts multipart/related to <root>/studies and accepts a clean answer', async () => {
  const calls: FetchArgs[] = [];
  const ok = { '00081199': { vr: 'SQ', Value: [{}] } };
  await stowInstances(
    'http://h/dicom-web/',
    [new ArrayBuffer(4)],
    fakeFetch(() => new Response(JSON.stringify(ok)), calls),
  );
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, 'http://h/dicom-web/studies');
  assert.equal(calls[0].init.method, 'POST');
  const ct = (calls[0].init.headers as Record<string, string>)['content-type'];
  assert.match(
    ct,
    /^multipart\/related; type="application\/dicom"; boundary=rrl-medsam-[0-9a-f]+$/,
  );
});

test('a FailedSOPSequence in a 200 answer is an error with the failure reason', async () => {
  const failed = {
    '00081198': { vr: 'SQ', Value: [{ '00081197': { vr: 'US', Value: [42752] } }] },
  };
  await assert.rejects(
    stowInstances(
      'http://h/dw',
      [new ArrayBuffer(2)],
      fakeFetch(() => new Response(JSON.stringify(failed))),
    ),
    (e: unknown) =>
      e instanceof StowError &&
      /refused the segmentation \(failure reason 42752\)/.test(e.message) &&
      /still in the viewer/.test(e.message),
  );
});

test('PACS down, refused credentials and network errors give clear messages', async () => {
  await assert.rejects(
    stowInstances(
      'http://h/dw',
      [new ArrayBuffer(2)],
      fakeFetch(() => new Response('upstream down', { status: 502 })),
    ),
    (e: unknown) =>
      e instanceof StowError &&
      e.status === 502 &&
      /PACS is not reachable/.test(e.message) &&
      /press Save again/.test(e.message),
  );
  await assert.rejects(
    stowInstances(
      'http://h/dw',
      [new ArrayBuffer(2)],
      fakeFetch(() => new Response('', { status: 401 })),
    ),
    /refused the credentials/,
  );
  await assert.rejects(
    stowInstances(
      'http://h/dw',
      [new ArrayBuffer(2)],
      fakeFetch(() => new Response('Bad file format', { status: 400 })),
    ),
    /answered HTTP 400: Bad file format/,
  );
  await assert.rejects(
    stowInstances(
      'http://h/dw',
      [new ArrayBuffer(2)],
      fakeFetch(() => Promise.reject(new TypeError('fetch failed'))),
    ),
    /Could not reach the PACS .*fetch failed/,
  );
});
