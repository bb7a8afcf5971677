/**
 * Builds (once, cached by the source's hash) the LD_PRELOAD shim that keeps Orthanc 1.10's
 * listeners on the loopback address (server/native/loopback-bind.c). Orthanc 1.10 has no
 * listen-address setting; without the shim its HTTP and DICOM ports answer on every interface.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { REPO_ROOT } from '@rrl/models/io/installRoot.js';

const SOURCE = path.join(REPO_ROOT, 'server', 'native', 'loopback-bind.c');

export class ShimBuildError extends Error {
  override name = 'ShimBuildError';
}

function cacheDirs(): string[] {
  return [
    path.join(path.dirname(SOURCE), '..', '..', 'node_modules', '.cache', 'rrl-native'),
    path.join(os.tmpdir(), `rrl-native-${process.getuid?.() ?? 'u'}`),
  ];
}

let building: Promise<string> | undefined;

/** The path of the built shim (compiled with `cc` on first use). */
export function loopbackShim(): Promise<string> {
  building ??= build().catch((e: unknown) => {
    building = undefined;
    throw e;
  });
  return building;
}

async function build(): Promise<string> {
  const src = await readFile(SOURCE);
  const hash = createHash('sha256').update(src).digest('hex').slice(0, 16);
  let lastError = '';
  for (const dir of cacheDirs()) {
    const out = path.join(dir, `loopback-bind-${hash}.so`);
    if (existsSync(out)) return out;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const tmp = `${out}.${process.pid}.tmp`;
      await new Promise<void>((resolve, reject) => {
        execFile(
          'cc',
          ['-shared', '-fPIC', '-O2', '-Wall', '-o', tmp, SOURCE, '-ldl'],
          { timeout: 60_000 },
          (err, _stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve()),
        );
      });
      await rename(tmp, out);
      return out;
    } catch (e) {
      lastError = (e as Error).message;
      await rm(path.join(dir, `loopback-bind-${hash}.so.${process.pid}.tmp`), { force: true });
    }
  }
  throw new ShimBuildError(
    'Could not build the loopback shim that keeps Orthanc off the network (a C compiler is ' +
      `needed: apt-get install -y gcc libc6-dev). Compiler said: ${lastError.slice(0, 300)}`,
  );
}
