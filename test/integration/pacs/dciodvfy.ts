/** Runs dicom3tools' dciodvfy on a Part 10 file and returns its error lines. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export async function dciodvfyErrors(
  bytes: ArrayBuffer,
): Promise<{ errors: string[]; output: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-dciodvfy-'));
  try {
    const file = path.join(dir, 'object.dcm');
    await writeFile(file, new Uint8Array(bytes));
    const output = await new Promise<string>((resolve, reject) => {
      execFile('dciodvfy', [file], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        // dciodvfy exits non-zero when it finds errors; its report is what we want either way
        const text = `${stdout}${stderr}`;
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new Error('dciodvfy not found: install the Debian package dicom3tools'));
        } else resolve(text);
      });
    });
    const errors = output.split('\n').filter((l) => /^Error/i.test(l.trim()));
    return { errors, output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
