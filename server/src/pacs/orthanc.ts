/**
 * Starts a real Orthanc (Debian's orthanc 1.10 + orthanc-dicomweb 1.7) as our own child process,
 * with our own configuration file and storage folder.
 *
 * Orthanc 1.10 always binds 0.0.0.0 (there is no listen-address option): it is started with an
 * LD_PRELOAD shim (loopbackShim.ts) that moves its listeners to 127.0.0.1, so neither its HTTP nor
 * its DICOM port is reachable from the network. Remote access is refused as well
 * (`RemoteAccessAllowed: false`) and authentication is on. Exposing the DICOM port to modalities
 * is an explicit option (`dicomModalities`): then only that port listens on the network, the
 * called AE title is checked, and only the listed modalities (AE title + host) may store. The
 * DICOM (DIMSE) listener is given its own free port so that several Orthancs can
 * run side by side (tests). `TCP_NODELAY=1` is set in its environment (DIMSE transfers are slow
 * with Nagle's algorithm on).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

import { loopbackShim } from './loopbackShim.js';

/** A modality allowed to send to the PACS over DICOM (C-STORE, C-ECHO). */
export interface DicomModality {
  aet: string;
  host: string;
  port: number;
}

/** Parses `AET@HOST:PORT` entries (throws an Error naming the bad one). */
export function parseModalities(entries: readonly string[]): DicomModality[] {
  return entries.map((e) => {
    const m = /^([A-Za-z0-9_ .-]{1,16})@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(
      e.trim(),
    );
    const port = Number(m?.[3]);
    if (!m || !(port > 0 && port < 65536)) {
      throw new Error(
        `A DICOM modality must be given as AET@HOST:PORT (e.g. CT01@10.1.2.3:104); found ${JSON.stringify(e)}.`,
      );
    }
    return { aet: m[1] ?? '', host: (m[2] ?? '').replace(/^\[|\]$/g, ''), port };
  });
}

export const ORTHANC_BINARY_CANDIDATES = ['/usr/sbin/Orthanc', '/usr/bin/Orthanc'];
export const DICOMWEB_PLUGIN_CANDIDATES = [
  '/usr/lib/orthanc/libOrthancDicomWeb.so.1.7',
  '/usr/share/orthanc/plugins/libOrthancDicomWeb.so',
];

export interface StartOrthancOptions {
  /** Folder for Orthanc's storage area, index database and our generated configuration. */
  storageDir: string;
  /** HTTP port; 0 or undefined picks a free port. */
  httpPort?: number;
  /** DICOM (DIMSE) port; 0 or undefined picks a free port. */
  dicomPort?: number;
  username: string;
  password: string;
  /** Orthanc's "Name" (shown in its Explorer) and DICOM AE title base. */
  name?: string;
  /** Override the Orthanc executable (default: Debian's /usr/sbin/Orthanc). */
  orthancBinary?: string;
  /** Override the DICOMweb plugin path (default: Debian's libOrthancDicomWeb.so.1.7). */
  dicomWebPlugin?: string;
  /** How long to wait for `/system` to answer, in milliseconds (default 30 s). */
  startTimeoutMs?: number;
  /**
   * Modalities that may send over DICOM. Empty (default): the DICOM port listens on 127.0.0.1
   * only. Non-empty: it listens on the network, and only these may store.
   */
  dicomModalities?: DicomModality[];
}

export interface OrthancProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  /** url + '/dicom-web' */
  dicomWebRoot: string;
  username: string;
  password: string;
  httpPort: number;
  dicomPort: number;
  /** Process id of the Orthanc child. */
  pid: number;
  /** Terminates Orthanc (SIGTERM, then SIGKILL after a grace period) and waits for it to exit. */
  stop(): Promise<void>;
}

export class OrthancStartError extends Error {
  override name = 'OrthancStartError';
}

function firstExisting(candidates: string[]): string | undefined {
  return candidates.find((p) => existsSync(p));
}

/** Asks the kernel for a free TCP port (bound on 0.0.0.0, as Orthanc will bind). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '0.0.0.0', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}

/** The Orthanc configuration we write (exported for tests and for the docs). */
export function orthancConfig(opts: {
  storageDir: string;
  httpPort: number;
  dicomPort: number;
  username: string;
  password: string;
  name: string;
  dicomWebPlugin: string;
  dicomModalities?: DicomModality[];
}): Record<string, unknown> {
  const modalities = Object.fromEntries(
    (opts.dicomModalities ?? []).map((m, i) => [
      `modality${i + 1}`,
      {
        AET: m.aet,
        Host: m.host,
        Port: m.port,
        AllowEcho: true,
        AllowStore: true,
        AllowFind: false,
        AllowMove: false,
        AllowGet: false,
      },
    ]),
  );
  const aet = opts.name
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, '_')
    .slice(0, 16);
  return {
    Name: opts.name,
    StorageDirectory: path.join(opts.storageDir, 'storage'),
    IndexDirectory: path.join(opts.storageDir, 'index'),
    StorageCompression: false,
    MaximumStorageSize: 0,
    MaximumPatientCount: 0,
    HttpServerEnabled: true,
    HttpPort: opts.httpPort,
    HttpDescribeErrors: true,
    HttpCompressionEnabled: false,
    KeepAlive: true,
    TcpNoDelay: true,
    HttpThreadsCount: 16,
    HttpTimeout: 60,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: true,
    RegisteredUsers: { [opts.username]: opts.password },
    SslEnabled: false,
    DicomServerEnabled: true,
    DicomAet: aet || 'RRL_ORTHANC',
    DicomPort: opts.dicomPort,
    // Exposed to modalities: only calls to our AE title, from a listed AE title and host.
    DicomCheckCalledAet: (opts.dicomModalities ?? []).length > 0,
    DicomModalities: modalities,
    OrthancPeers: {},
    UnknownSopClassAccepted: false,
    DicomAlwaysAllowEcho: (opts.dicomModalities ?? []).length === 0,
    DicomAlwaysAllowStore: false,
    CheckModalityHost: true,
    SaveJobs: false,
    JobsHistorySize: 10,
    ConcurrentJobs: 2,
    StableAge: 5,
    OverwriteInstances: false,
    DefaultEncoding: 'Utf8',
    LimitFindResults: 0,
    LimitFindInstances: 0,
    // Orthanc's own Lua/web-explorer extras are not needed.
    LuaScripts: [],
    Plugins: [opts.dicomWebPlugin],
    DicomWeb: {
      Enable: true,
      Root: '/dicom-web/',
      EnableWado: true,
      WadoRoot: '/wado',
      Ssl: false,
      // No "Host": the plugin then builds BulkDataURIs from the request's Host header, so a proxy
      // that preserves Host gets URIs pointing back at its own origin.
      StudiesMetadata: 'Full',
      SeriesMetadata: 'Full',
      EnableMetadataCache: true,
    },
  };
}

async function waitForSystem(
  url: string,
  auth: string,
  child: ChildProcess,
  timeoutMs: number,
  logTail: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new OrthancStartError(
        `Orthanc exited during start-up (code ${String(child.exitCode)}, signal ${String(
          child.signalCode,
        )}). Its last log lines:\n${logTail()}\nCheck that the ports are free and the storage folder is writable.`,
      );
    }
    try {
      const res = await fetch(`${url}/system`, {
        headers: { Authorization: auth },
        signal: AbortSignal.timeout(2000),
      });
      if (res.ok) {
        await res.arrayBuffer();
        return;
      }
      lastError = `HTTP ${res.status}`;
      await res.arrayBuffer();
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new OrthancStartError(
    `Orthanc did not answer ${url}/system within ${timeoutMs} ms (last error: ${lastError}). ` +
      `Its last log lines:\n${logTail()}`,
  );
}

/** Starts Orthanc and resolves once its REST API answers. */
export async function startOrthanc(options: StartOrthancOptions): Promise<OrthancProcess> {
  const binary = options.orthancBinary ?? firstExisting(ORTHANC_BINARY_CANDIDATES);
  if (!binary || !existsSync(binary)) {
    throw new OrthancStartError(
      `Orthanc executable not found (looked for ${ORTHANC_BINARY_CANDIDATES.join(', ')}). ` +
        'Install the Debian packages: apt-get install -y --no-install-recommends orthanc orthanc-dicomweb',
    );
  }
  const plugin = options.dicomWebPlugin ?? firstExisting(DICOMWEB_PLUGIN_CANDIDATES);
  if (!plugin || !existsSync(plugin)) {
    throw new OrthancStartError(
      `Orthanc's DICOMweb plugin not found (looked for ${DICOMWEB_PLUGIN_CANDIDATES.join(', ')}). ` +
        'Install the Debian package: apt-get install -y --no-install-recommends orthanc-dicomweb',
    );
  }
  if (!options.username || !options.password) {
    throw new OrthancStartError(
      'startOrthanc needs a username and a password: authentication is always on.',
    );
  }
  const storageDir = path.resolve(options.storageDir);
  await mkdir(path.join(storageDir, 'storage'), { recursive: true });
  await mkdir(path.join(storageDir, 'index'), { recursive: true });

  const wantHttp = options.httpPort && options.httpPort > 0 ? options.httpPort : undefined;
  const wantDicom = options.dicomPort && options.dicomPort > 0 ? options.dicomPort : undefined;
  const attempts = wantHttp && wantDicom ? 1 : 3;
  let lastErr: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const httpPort = wantHttp ?? (await freePort());
    let dicomPort = wantDicom ?? (await freePort());
    while (dicomPort === httpPort) dicomPort = await freePort();
    try {
      return await launch(binary, plugin, storageDir, httpPort, dicomPort, options);
    } catch (e) {
      lastErr = e;
    }
  }
  throw lastErr;
}

async function launch(
  binary: string,
  plugin: string,
  storageDir: string,
  httpPort: number,
  dicomPort: number,
  options: StartOrthancOptions,
): Promise<OrthancProcess> {
  const config = orthancConfig({
    storageDir,
    httpPort,
    dicomPort,
    username: options.username,
    password: options.password,
    name: options.name ?? 'RRL-Orthanc',
    dicomWebPlugin: plugin,
    ...(options.dicomModalities ? { dicomModalities: options.dicomModalities } : {}),
  });
  const shim = await loopbackShim();
  const configPath = path.join(storageDir, 'orthanc.json');
  await writeFile(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });

  const child = spawn(binary, [configPath], {
    cwd: storageDir,
    env: {
      ...process.env,
      TCP_NODELAY: '1',
      LD_PRELOAD: [shim, process.env.LD_PRELOAD].filter(Boolean).join(' '),
      RRL_BIND_PUBLIC_PORTS: (options.dicomModalities ?? []).length > 0 ? String(dicomPort) : '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Keep a short tail of Orthanc's log for error messages (never printed on success: it may name
  // patients at higher verbosity).
  const tail: string[] = [];
  const keep = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 30) tail.shift();
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // Safety net: never leave an orphaned Orthanc behind when this Node process exits without
  // calling stop() (a crashed test, an uncaught error).
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => {
    const done = (): void => {
      process.removeListener('exit', killOnExit);
      resolve();
    };
    if (child.exitCode !== null) done();
    else child.once('exit', done);
  });
  child.once('error', (e) => tail.push(`spawn error: ${e.message}`));

  const url = `http://127.0.0.1:${httpPort}`;
  const auth = 'Basic ' + Buffer.from(`${options.username}:${options.password}`).toString('base64');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    if (stopping) return stopping;
    stopping = (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
    })();
    return stopping;
  };

  try {
    await waitForSystem(url, auth, child, options.startTimeoutMs ?? 30_000, () => tail.join('\n'));
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    url,
    dicomWebRoot: `${url}/dicom-web`,
    username: options.username,
    password: options.password,
    httpPort,
    dicomPort,
    pid: child.pid ?? -1,
    stop,
  };
}
