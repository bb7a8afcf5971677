/** Save to PACS is idempotent: a retried save of the same labelmap reuses the SEG's UIDs. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { labelmapKey, saveIdentityFor } from '@rrl/extension/seg/saveToPacs.js';

test(
  'the same labelmap keeps its SEG identity; a corrected one gets a new series',
  { timeout: 10_000 },
  () => {
    const a = new Uint8Array(1000);
    a[10] = 1;
    const b = a.slice();
    b[500] = 2; // a brush stroke
    assert.equal(labelmapKey('seg1', a), labelmapKey('seg1', a.slice()));
    assert.notEqual(labelmapKey('seg1', a), labelmapKey('seg1', b));
    assert.notEqual(labelmapKey('seg1', a), labelmapKey('seg2', a));

    let numbers = 9000;
    const next = (): number => ++numbers;
    const first = saveIdentityFor(undefined, labelmapKey('seg1', a), next);
    assert.match(first.sopInstanceUID, /^[0-9.]+$/);
    assert.equal(first.seriesNumber, 9001);
    const retry = saveIdentityFor(first, labelmapKey('seg1', a.slice()), next);
    assert.equal(retry, first, 'a retry reuses the UIDs and the series number');
    assert.equal(numbers, 9001, 'no new series number was taken');
    const corrected = saveIdentityFor(first, labelmapKey('seg1', b), next);
    assert.notEqual(corrected.sopInstanceUID, first.sopInstanceUID);
    assert.notEqual(corrected.seriesInstanceUID, first.seriesInstanceUID);
    assert.equal(corrected.seriesNumber, 9002);
  },
);
