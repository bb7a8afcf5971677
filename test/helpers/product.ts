/**
 * Test helper: the product as a user starts it (the compiled dist/node/start.js, what
 * `bash scripts/start.sh` runs after installing and building), on a data folder of the test's own
 * and free ports.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';

import { REPO_ROOT } from '@rrl/server/config.js';

export interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Every start spawned so far (a test's finally stops those still running). */
export const running: ChildProcess[] = [];

let built = false;

/** The compiled Node side from the current sources (once per test process; about 0.1 s). */
export function buildNode(): void {
  if (built) return;
  execFileSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build-node.mjs')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  built = true;
}

function spawnStart(varDir: string, args: string[]): ChildProcess {
  buildNode();
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'dist', 'node', 'start.js'), '--var-dir', varDir, ...args],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RRL_CONFIG: '' } },
  );
  running.push(child);
  return child;
}

/** Spawns the start script and resolves once it prints the viewer URL. */
export function startProduct(varDir: string): Promise<Started> {
  const child = spawnStart(varDir, [
    '--port',
    '0',
    '--pacs-port',
    '0',
    '--pacs-dicom-port',
    '0',
    '--no-seed',
  ]);
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
      reject(new Error(`start.js exited (${signal ?? code}) before printing the URL:\n${out}`)),
    );
  });
}

/** Spawns the start script and waits for it to exit by itself (a refused start). */
export function startProductExpectingExit(
  varDir: string,
): Promise<{ code: number | null; output: string }> {
  const child = spawnStart(varDir, ['--port', '0', '--no-seed']);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output: out })));
}

/**
 * For a test's `finally`: stops every start still running, kills an Orthanc of `varDir` that
 * outlived it (an orphan, if an assertion failed) and removes the folder.
 */
export async function cleanUpProducts(varDir: string): Promise<void> {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
  }
  const pidFile = path.join(varDir, 'orthanc.pid');
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(varDir)) process.kill(pid, 'SIGKILL');
  }
  await rm(varDir, { recursive: true, force: true });
}
