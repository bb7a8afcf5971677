/**
 * Helpers for the security catalogue (test/security/*.test.ts): raw HTTP requests that may set
 * any Host, header or body (fetch may not), a capturing stand-in PACS that records what the proxy
 * forwards, and the listening sockets of a process read from /proc.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { startServer, type RunningServer, type StartServerOptions } from '@rrl/server/app.js';
import type { PacsConfig } from '@rrl/server/config.js';
import { TEST_API_TOKEN } from '../helpers/server.js';

/** How many studies the PACS holds, asked of the PACS directly (not through the server). */
export async function pacsStudyCount(pacs: {
  dicomWebRoot: string;
  username: string;
  password: string;
}): Promise<number> {
  const auth = 'Basic ' + Buffer.from(`${pacs.username}:${pacs.password}`).toString('base64');
  const res = await fetch(`${pacs.dicomWebRoot}/studies`, {
    headers: { Authorization: auth, Accept: 'application/dicom+json' },
  });
  const text = await res.text();
  return text.trim() === '' ? 0 : (JSON.parse(text) as unknown[]).length;
}

/**
 * A companion server in front of `pacs` (a stand-in, usually) with a temporary data folder and
 * the test API token; `close()` also removes the folder.
 */
export async function serverFor(
  pacs: PacsConfig,
  options: Omit<StartServerOptions, 'env' | 'logSink'> = {},
): Promise<{ server: RunningServer; url: string; close(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-sec-'));
  const server = await startServer(
    {
      host: '127.0.0.1',
      port: 0,
      dataDir: path.join(dir, 'data'),
      modelsDir: path.join(dir, 'models'),
      apiToken: TEST_API_TOKEN,
      pacs,
    },
    { env: {}, logSink: () => {}, ...options },
  );
  return {
    server,
    url: server.url,
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request exactly as written (path, Host and every header kept). */
export function raw(
  url: string,
  opts: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: Uint8Array | string;
    timeoutMs?: number;
  },
): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: opts.path,
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        setHost: !(opts.headers && Object.keys(opts.headers).some((k) => /^host$/i.test(k))),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The session cookie (`name=value`) the viewer page sets. */
export async function viewerCookie(url: string): Promise<string> {
  const page = await raw(url, { path: '/' });
  const set = page.headers['set-cookie'] ?? [];
  const c = set.find((x) => x.startsWith('rrl_session='));
  if (!c) throw new Error(`the viewer page set no session cookie (status ${page.status})`);
  return c.split(';')[0] ?? '';
}

export interface CapturedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bytes: number;
}

/** A stand-in DICOMweb PACS that answers `[]` and records every request it receives. */
export async function capturingPacs(): Promise<{
  root: string;
  seen: CapturedRequest[];
  close(): Promise<void>;
}> {
  const seen: CapturedRequest[] = [];
  const server = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bytes });
      res.setHeader('Content-Type', 'application/dicom+json');
      res.end('[]');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    root: `http://127.0.0.1:${port}/dicom-web`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Listening TCP sockets of process `pid`: local address (IPv4/IPv6 text) and port. */
export function listeningSockets(pid: number): { address: string; port: number }[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  const out: { address: string; port: number }[] = [];
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9] ?? '')) continue;
      const [hex, portHex] = (f[1] ?? '').split(':');
      out.push({
        address: v6 ? ipv6(hex ?? '') : ipv4(hex ?? ''),
        port: parseInt(portHex ?? '0', 16),
      });
    }
  }
  return out;
}

function ipv4(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  return [b[3], b[2], b[1], b[0]].join('.');
}

function ipv6(hex: string): string {
  if (hex === '00000000000000000000000001000000') return '::1';
  if (/^0+$/.test(hex)) return '::';
  return hex;
}
