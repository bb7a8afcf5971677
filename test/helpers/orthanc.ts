/**
 * Test helpers: a real Orthanc on free ports with a temporary storage folder, removed afterwards.
 *
 *   const pacs = await startTestOrthanc();   // ... await pacs.stop();
 *   await withOrthanc(async (pacs) => { ... });
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startOrthanc, type OrthancProcess } from '@rrl/server/pacs/orthanc.js';

export type { OrthancProcess } from '@rrl/server/pacs/orthanc.js';

export const TEST_PACS_USER = 'rrl-test';
export const TEST_PACS_PASSWORD = 'rrl-test-password';

export interface TestOrthanc extends OrthancProcess {
  storageDir: string;
}

/** Starts Orthanc in a fresh temporary folder; `stop()` also deletes the folder. */
export async function startTestOrthanc(name = 'RRL-Test'): Promise<TestOrthanc> {
  const storageDir = await mkdtemp(path.join(os.tmpdir(), 'rrl-orthanc-'));
  let pacs: OrthancProcess;
  try {
    pacs = await startOrthanc({
      storageDir,
      username: TEST_PACS_USER,
      password: TEST_PACS_PASSWORD,
      name,
    });
  } catch (e) {
    await rm(storageDir, { recursive: true, force: true });
    throw e;
  }
  return {
    ...pacs,
    storageDir,
    async stop() {
      await pacs.stop();
      await rm(storageDir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` against a fresh Orthanc and always stops it (and removes its folder) afterwards. */
export async function withOrthanc<T>(fn: (pacs: TestOrthanc) => Promise<T>): Promise<T> {
  const pacs = await startTestOrthanc();
  try {
    return await fn(pacs);
  } finally {
    await pacs.stop();
  }
}
