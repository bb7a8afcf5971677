/**
 * Test helper: the product as a user starts it (scripts/start.ts, what `bash scripts/start.sh`
 * runs after installing), on a data folder of the test's own and free ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

import { REPO_ROOT } from '../../server/src/config';

export interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Every start spawned so far (a test's finally stops those still running). */
export const running: ChildProcess[] = [];

/** Spawns the start script and resolves once it prints the viewer URL. */
export function startProduct(varDir: string): Promise<Started> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(REPO_ROOT, 'scripts', 'start.ts'),
      '--var-dir',
      varDir,
      '--port',
      '0',
      '--pacs-port',
      '0',
      '--pacs-dicom-port',
      '0',
      '--no-seed',
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RRL_CONFIG: '' } },
  );
  running.push(child);
  let out = '';
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      out += chunk.toString('utf8');
      const m = /Viewer:\s+(http:\/\/\S+?)\/?\s/.exec(out);
      if (m?.[1]) {
        child.stdout?.off('data', onData);
        child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
        resolve({ child, url: m[1], output: () => out, exit });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
    void exit.then(({ code, signal }) =>
      reject(new Error(`start.ts exited (${signal ?? code}) before printing the URL:\n${out}`)),
    );
  });
}

/** Spawns the start script and waits for it to exit by itself (a refused start). */
export function startProductExpectingExit(
  varDir: string,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(REPO_ROOT, 'scripts', 'start.ts'),
      '--var-dir',
      varDir,
      '--port',
      '0',
      '--no-seed',
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RRL_CONFIG: '' } },
  );
  running.push(child);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output: out })));
}
