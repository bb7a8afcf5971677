/**
 * Test helper: a real Orthanc (fresh temporary storage) plus the companion server in front of it,
 * both on free ports, stopped (and their folders removed) afterwards.
 *
 *   const stack = await startTestStack({ modelsDir });   // stack.url is the viewer's origin
 *   ...
 *   await stack.stop();
 *
 *   await withTestStack(async (stack) => { ... }, { modelsDir });
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { startServer, type RunningServer, type StartServerOptions } from '@rrl/server/app.js';
import type { ServerConfigInput } from '@rrl/server/config.js';
import { startTestOrthanc, type TestOrthanc } from './orthanc.js';

/** The API token every test stack is started with (scripts' way in; the viewer uses a session). */
export const TEST_API_TOKEN = 'test-stack-token-0123456789abcdef';

/** `fetch` with the test stack's API token (unless the caller sets Authorization itself). */
export function authedFetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has('Authorization')) headers.set('Authorization', `Bearer ${TEST_API_TOKEN}`);
  return fetch(input, { ...init, headers });
}

export interface TestStack {
  /** The companion server's origin, e.g. http://127.0.0.1:41234 (the viewer is at url + '/'). */
  url: string;
  server: RunningServer;
  /** The PACS itself (direct access with its credentials: pacs.url, pacs.dicomWebRoot). */
  pacs: TestOrthanc;
  /** Every log line the server wrote, parsed. */
  logs: Record<string, unknown>[];
  /** Temporary folder (models and data, unless given) removed by stop(). */
  tmpDir: string;
  modelsDir: string;
  /** Stops the server and Orthanc and removes the temporary folders. */
  stop(): Promise<void>;
}

export interface TestStackOptions {
  /** Models folder to serve (default: an empty folder under tmpDir). */
  modelsDir?: string;
  /** Plugins folder (default: the repository's dist/). */
  pluginsDir?: string;
  /** Other config overrides (port, logLevel ...). */
  config?: ServerConfigInput;
  /** Also print the server's log lines (default: only collect them). */
  printLogs?: boolean;
  /** Start with an existing PACS instead of a fresh Orthanc (it is then not stopped). */
  pacs?: TestOrthanc;
  proxy?: StartServerOptions['proxy'];
}

export async function startTestStack(opts: TestStackOptions = {}): Promise<TestStack> {
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'rrl-server-'));
  const ownPacs = !opts.pacs;
  let pacs: TestOrthanc | undefined = opts.pacs;
  try {
    pacs ??= await startTestOrthanc();
    const logs: Record<string, unknown>[] = [];
    const modelsDir = opts.modelsDir ?? path.join(tmpDir, 'models');
    const server = await startServer(
      {
        host: '127.0.0.1',
        port: 0,
        logLevel: 'info',
        modelsDir,
        dataDir: path.join(tmpDir, 'data'),
        apiToken: TEST_API_TOKEN,
        ...(opts.pluginsDir ? { pluginsDir: opts.pluginsDir } : {}),
        ...opts.config,
        pacs: {
          dicomWebRoot: pacs.dicomWebRoot,
          username: pacs.username,
          password: pacs.password,
        },
      },
      {
        // Tests never pick up a developer's RRL_* settings.
        env: {},
        logSink: (line) => {
          logs.push(JSON.parse(line) as Record<string, unknown>);
          if (opts.printLogs) process.stdout.write(line + '\n');
        },
        ...(opts.proxy ? { proxy: opts.proxy } : {}),
      },
    );
    const started = pacs;
    return {
      url: server.url,
      server,
      pacs: started,
      logs,
      tmpDir,
      modelsDir,
      async stop() {
        await server.close();
        if (ownPacs) await started.stop();
        await rm(tmpDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    if (ownPacs && pacs) await pacs.stop();
    await rm(tmpDir, { recursive: true, force: true });
    throw e;
  }
}

/** Runs `fn` against a fresh Orthanc + server and always stops both afterwards. */
export async function withTestStack<T>(
  fn: (stack: TestStack) => Promise<T>,
  opts: TestStackOptions = {},
): Promise<T> {
  const stack = await startTestStack(opts);
  try {
    return await fn(stack);
  } finally {
    await stack.stop();
  }
}
