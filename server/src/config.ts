/**
 * Companion server configuration: defaults, then an optional JSON file, then `RRL_*` environment
 * variables, then the caller's argument (later wins). Every value is validated; an invalid value
 * throws a ConfigError that names the setting, what was expected, what was found and how to fix it.
 */
import {
  PROVIDER_SETTINGS,
  type ProviderSetting,
} from '@rrl/models/engine/runtime/providerChoice.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_ROOT } from '@rrl/models/io/installRoot.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface PacsConfig {
  /** The PACS's DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web (no trailing slash). */
  dicomWebRoot: string;
  username?: string;
  password?: string;
}

export interface ServerConfig {
  host: string;
  /** 0 = pick a free port. */
  port: number;
  pacs: PacsConfig;
  /** Folder of published models: `<modelsDir>/<modelId>/{model.onnx,metadata.json}`. */
  modelsDir: string;
  /** The prebuilt OHIF viewer (`@ohif/app`'s `dist`). */
  viewerDir: string;
  /** Our webpack output: `<pluginsDir>/extension/`, `<pluginsDir>/mode/`. */
  pluginsDir: string;
  /** Server data (jobs, caches). */
  dataDir: string;
  /**
   * Imported SAM teachers and their feature cache (default `<dataDir>/teachers`, which is where
   * `npm run teacher` keeps them by default too).
   */
  teachersDir: string;
  logLevel: LogLevel;
  /**
   * Bearer token every `/api/*` call needs (except health, session and openapi.json). Unset: the
   * server generates one at start and keeps it in `<dataDir>/api-token` (mode 0600).
   */
  apiToken?: string;
  /** SQLite file of tasks and jobs (default `<dataDir>/state.sqlite`). */
  databaseFile?: string;
  /** Training provider for jobs: auto | cpu | webgpu | cuda. */
  trainingProvider: TrainingProvider;
  /** Jobs that run at once (one per GPU). */
  jobSlots: number;
  /** Most unlabelled series one training job may use. */
  maxSeriesPerJob: number;
  /** Largest API request body, bytes. */
  maxRequestBytes: number;
  /**
   * Host names (besides localhost, 127.0.0.1, [::1] and a non-wildcard `host`) that requests may
   * name in their Host header; anything else is refused (421) against DNS rebinding.
   */
  allowedHosts: string[];
  /** An HTTPS reverse proxy fronts this server (required, or `tls`, for a non-loopback host). */
  behindProxy: boolean;
  /** Serve HTTPS with this PEM key and certificate (required, or `behindProxy`, off loopback). */
  tls?: { keyFile: string; certFile: string };
  /** Lifetime of a viewer session (cookie), seconds. */
  sessionTtlSeconds: number;
  /** Largest STOW-RS body the proxy forwards to the PACS, bytes. */
  maxStowBytes: number;
  /** STOW-RS uploads one client may have in flight at once. */
  maxUploadsPerClient: number;
  /** STOW-RS uploads in flight at once, all clients together. */
  maxUploads: number;
  /** An upload slower than this (after a 10 s grace) is cut off, bytes per second. */
  minUploadBytesPerSecond: number;
  /** Keep finished jobs' folders whole (default false: pruned to their text records). */
  keepJobData: boolean;
}

const HOST_NAME = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})$/;

/** 127.0.0.0/8, ::1 and `localhost`: addresses only this machine reaches. */
export function isLoopbackAddress(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** 0.0.0.0 and ::, every interface. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

export type TrainingProvider = ProviderSetting;
export const TRAINING_PROVIDERS: readonly TrainingProvider[] = PROVIDER_SETTINGS;

/** A partial config as given by a file, the environment or a caller. */
export type ServerConfigInput = Partial<Omit<ServerConfig, 'pacs'>> & {
  pacs?: Partial<PacsConfig>;
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The installation's root folder (sources and the compiled dist/node bundles alike). */
export { REPO_ROOT };

/** `node_modules/@ohif/app/dist`, resolved through Node's module resolution. */
export function defaultViewerDir(): string {
  try {
    const require = createRequire(path.join(REPO_ROOT, 'package.json'));
    return path.join(path.dirname(require.resolve('@ohif/app/package.json')), 'dist');
  } catch {
    return path.join(REPO_ROOT, 'node_modules', '@ohif', 'app', 'dist');
  }
}

export function defaultConfig(): ServerConfig {
  return {
    host: '127.0.0.1',
    port: 3000,
    pacs: { dicomWebRoot: 'http://127.0.0.1:8042/dicom-web' },
    modelsDir: path.join(REPO_ROOT, 'var', 'models'),
    viewerDir: defaultViewerDir(),
    pluginsDir: path.join(REPO_ROOT, 'dist'),
    dataDir: path.join(REPO_ROOT, 'var', 'server'),
    // '' = `<dataDir>/teachers`, decided once dataDir is known (validateConfig)
    teachersDir: '',
    logLevel: 'info',
    trainingProvider: 'auto',
    jobSlots: 1,
    maxSeriesPerJob: 200,
    maxRequestBytes: 256 * 1024,
    allowedHosts: [],
    behindProxy: false,
    sessionTtlSeconds: 12 * 3600,
    // A BINARY SEG of 10 structures over 512×512×600 voxels packs to ~200 MB.
    maxStowBytes: 256 * 1024 * 1024,
    maxUploadsPerClient: 2,
    maxUploads: 4,
    minUploadBytesPerSecond: 16 * 1024,
    keepJobData: false,
  };
}

/** Environment variables understood by the server (documented in the README). */
export const ENV_VARS = {
  RRL_CONFIG: 'path of a JSON config file (same keys as ServerConfig)',
  RRL_HOST: 'address to listen on (default 127.0.0.1)',
  RRL_PORT: 'port to listen on (default 3000; 0 = any free port)',
  RRL_PACS_URL: "the PACS's DICOMweb root (default http://127.0.0.1:8042/dicom-web)",
  RRL_PACS_USERNAME: 'PACS user (HTTP Basic), added by the server to proxied requests',
  RRL_PACS_PASSWORD: 'PACS password (HTTP Basic)',
  RRL_MODELS_DIR: 'folder of published models (default var/models)',
  RRL_VIEWER_DIR: 'prebuilt OHIF viewer (default node_modules/@ohif/app/dist)',
  RRL_PLUGINS_DIR: 'webpack output with extension/ and mode/ (default dist)',
  RRL_DATA_DIR: 'server data folder (default var/server)',
  RRL_TEACHERS_DIR: 'imported SAM teachers and their feature cache (default <dataDir>/teachers)',
  RRL_LOG_LEVEL: 'debug | info | warn | error (default info)',
  RRL_API_TOKEN: 'bearer token for /api/* (default: generated, kept in <dataDir>/api-token)',
  RRL_DATABASE: 'SQLite file for tasks and jobs (default <dataDir>/state.sqlite)',
  RRL_TRAINING_PROVIDER: 'auto | cpu | webgpu | cuda (default auto)',
  RRL_JOB_SLOTS: 'training jobs run at once, one per GPU (default 1)',
  RRL_MAX_SERIES_PER_JOB: 'most unlabelled series per training job (default 200)',
  RRL_ALLOWED_HOSTS:
    'comma-separated host names the server answers to besides localhost/127.0.0.1/[::1] (default none)',
  RRL_BEHIND_PROXY:
    '1 when an HTTPS reverse proxy fronts the server (needed off loopback without TLS)',
  RRL_TLS_KEY: 'PEM private key: serve HTTPS (with RRL_TLS_CERT)',
  RRL_TLS_CERT: 'PEM certificate chain for RRL_TLS_KEY',
  RRL_SESSION_TTL: 'viewer session lifetime, seconds (default 43200)',
  RRL_KEEP_JOB_DATA: "1: keep finished jobs' folders whole (default: pruned to their text records)",
  RRL_MAX_STOW_BYTES: 'largest STOW-RS upload through the proxy, bytes (default 268435456)',
} as const;

/** A yes/no environment value: 1, true or yes (any case) is yes. */
export function envFlag(v: string): boolean {
  return /^(1|true|yes)$/i.test(v);
}

/** A comma-separated environment value as its non-empty, trimmed items. */
export function commaList(v: string | undefined): string[] {
  return (v ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

/** Reads the `RRL_*` variables into a partial config (no validation yet). */
export function configFromEnv(env: NodeJS.ProcessEnv): ServerConfigInput {
  const out: ServerConfigInput = {};
  const pacs: Partial<PacsConfig> = {};
  if (env.RRL_HOST) out.host = env.RRL_HOST;
  if (env.RRL_PORT !== undefined && env.RRL_PORT !== '') {
    const n = Number(env.RRL_PORT);
    if (!Number.isInteger(n)) {
      throw new ConfigError(
        `RRL_PORT must be an integer port number (0-65535); found "${env.RRL_PORT}". ` +
          'Set it to e.g. 3000, or 0 for any free port.',
      );
    }
    out.port = n;
  }
  if (env.RRL_PACS_URL) pacs.dicomWebRoot = env.RRL_PACS_URL;
  if (env.RRL_PACS_USERNAME !== undefined) pacs.username = env.RRL_PACS_USERNAME;
  if (env.RRL_PACS_PASSWORD !== undefined) pacs.password = env.RRL_PACS_PASSWORD;
  if (Object.keys(pacs).length > 0) out.pacs = pacs;
  if (env.RRL_MODELS_DIR) out.modelsDir = env.RRL_MODELS_DIR;
  if (env.RRL_VIEWER_DIR) out.viewerDir = env.RRL_VIEWER_DIR;
  if (env.RRL_PLUGINS_DIR) out.pluginsDir = env.RRL_PLUGINS_DIR;
  if (env.RRL_DATA_DIR) out.dataDir = env.RRL_DATA_DIR;
  if (env.RRL_TEACHERS_DIR) out.teachersDir = env.RRL_TEACHERS_DIR;
  if (env.RRL_LOG_LEVEL) out.logLevel = env.RRL_LOG_LEVEL as LogLevel;
  if (env.RRL_API_TOKEN) out.apiToken = env.RRL_API_TOKEN;
  if (env.RRL_DATABASE) out.databaseFile = env.RRL_DATABASE;
  if (env.RRL_ALLOWED_HOSTS) out.allowedHosts = commaList(env.RRL_ALLOWED_HOSTS);
  if (env.RRL_BEHIND_PROXY) out.behindProxy = envFlag(env.RRL_BEHIND_PROXY);
  if (env.RRL_KEEP_JOB_DATA) out.keepJobData = envFlag(env.RRL_KEEP_JOB_DATA);
  if (env.RRL_TLS_KEY || env.RRL_TLS_CERT) {
    out.tls = { keyFile: env.RRL_TLS_KEY ?? '', certFile: env.RRL_TLS_CERT ?? '' };
  }
  if (env.RRL_TRAINING_PROVIDER) {
    out.trainingProvider = env.RRL_TRAINING_PROVIDER as TrainingProvider;
  }
  for (const [name, key] of [
    ['RRL_JOB_SLOTS', 'jobSlots'],
    ['RRL_MAX_SERIES_PER_JOB', 'maxSeriesPerJob'],
    ['RRL_SESSION_TTL', 'sessionTtlSeconds'],
    ['RRL_MAX_STOW_BYTES', 'maxStowBytes'],
  ] as const) {
    const v = env[name];
    if (v !== undefined && v !== '') {
      const n = Number(v);
      if (!Number.isInteger(n)) {
        throw new ConfigError(`${name} must be a positive integer; found "${v}".`);
      }
      out[key] = n;
    }
  }
  return out;
}

const TOP_KEYS = new Set([
  'host',
  'port',
  'pacs',
  'modelsDir',
  'viewerDir',
  'pluginsDir',
  'dataDir',
  'teachersDir',
  'logLevel',
  'apiToken',
  'databaseFile',
  'trainingProvider',
  'jobSlots',
  'maxSeriesPerJob',
  'maxRequestBytes',
  'allowedHosts',
  'behindProxy',
  'tls',
  'sessionTtlSeconds',
  'maxStowBytes',
  'maxUploadsPerClient',
  'maxUploads',
  'minUploadBytesPerSecond',
  'keepJobData',
]);
const PACS_KEYS = new Set(['dicomWebRoot', 'username', 'password']);

/** Reads a JSON config file; relative folder paths in it are resolved against the file's folder. */
export function configFromFile(file: string): ServerConfigInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `Cannot read the config file ${file} (${(e as Error).message}). ` +
        'Check RRL_CONFIG / --config points at a readable JSON file.',
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `The config file ${file} is not valid JSON (${(e as Error).message}). Fix its syntax.`,
    );
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`The config file ${file} must hold a JSON object; found ${typeof raw}.`);
  }
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!TOP_KEYS.has(k)) {
      throw new ConfigError(
        `Unknown key "${k}" in config file ${file}; expected one of ${[...TOP_KEYS].join(', ')}.`,
      );
    }
  }
  if (obj.pacs !== undefined) {
    if (obj.pacs === null || typeof obj.pacs !== 'object' || Array.isArray(obj.pacs)) {
      throw new ConfigError(`"pacs" in config file ${file} must be an object.`);
    }
    for (const k of Object.keys(obj.pacs)) {
      if (!PACS_KEYS.has(k)) {
        throw new ConfigError(
          `Unknown key "pacs.${k}" in config file ${file}; expected one of ${[...PACS_KEYS].join(', ')}.`,
        );
      }
    }
  }
  const base = path.dirname(path.resolve(file));
  const out = { ...obj } as ServerConfigInput & Record<string, unknown>;
  for (const k of [
    'modelsDir',
    'viewerDir',
    'pluginsDir',
    'dataDir',
    'teachersDir',
    'databaseFile',
  ] as const) {
    const v = out[k];
    if (typeof v === 'string' && v !== '') out[k] = path.resolve(base, v);
  }
  const tls = out.tls as { keyFile?: unknown; certFile?: unknown } | undefined;
  if (tls && typeof tls === 'object') {
    out.tls = {
      keyFile: typeof tls.keyFile === 'string' ? path.resolve(base, tls.keyFile) : '',
      certFile: typeof tls.certFile === 'string' ? path.resolve(base, tls.certFile) : '',
    };
  }
  return out;
}

function merge(base: ServerConfig, over: ServerConfigInput): ServerConfig {
  const out: ServerConfig = { ...base, pacs: { ...base.pacs } };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined || k === 'pacs') continue;
    (out as unknown as Record<string, unknown>)[k] = v;
  }
  if (over.pacs) {
    for (const [k, v] of Object.entries(over.pacs)) {
      if (v !== undefined) (out.pacs as unknown as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

function checkDir(name: string, value: unknown, mustExist: boolean, hint: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new ConfigError(`${name} must be a folder path; found ${JSON.stringify(value)}.`);
  }
  const abs = path.resolve(value);
  if (mustExist) {
    if (!existsSync(abs) || !statSync(abs).isDirectory()) {
      throw new ConfigError(`${name} must be an existing folder; ${abs} is not one. ${hint}`);
    }
  }
  return abs;
}

/** Validates a merged config and returns it with absolute paths and a normalised PACS root. */
export function validateConfig(c: ServerConfig): ServerConfig {
  if (typeof c.host !== 'string' || c.host === '') {
    throw new ConfigError(`host must be a non-empty address; found ${JSON.stringify(c.host)}.`);
  }
  if (!Number.isInteger(c.port) || c.port < 0 || c.port > 65535) {
    throw new ConfigError(
      `port must be an integer from 0 to 65535 (0 = any free port); found ${JSON.stringify(c.port)}.`,
    );
  }
  if (!LOG_LEVELS.includes(c.logLevel)) {
    throw new ConfigError(
      `logLevel must be one of ${LOG_LEVELS.join(', ')}; found ${JSON.stringify(c.logLevel)}.`,
    );
  }
  const root = c.pacs?.dicomWebRoot;
  let url: URL;
  try {
    url = new URL(String(root));
  } catch {
    throw new ConfigError(
      `pacs.dicomWebRoot (RRL_PACS_URL) must be an absolute http(s) URL such as ` +
        `http://127.0.0.1:8042/dicom-web; found ${JSON.stringify(root)}.`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(
      `pacs.dicomWebRoot must use http or https; found "${url.protocol}" in ${String(root)}.`,
    );
  }
  if (url.username || url.password) {
    throw new ConfigError(
      'pacs.dicomWebRoot must not carry credentials in the URL; set pacs.username / pacs.password ' +
        '(RRL_PACS_USERNAME / RRL_PACS_PASSWORD) instead.',
    );
  }
  if (url.search || url.hash) {
    throw new ConfigError(
      `pacs.dicomWebRoot must not have a query or fragment; found ${String(root)}.`,
    );
  }
  const { username, password } = c.pacs;
  if (username !== undefined && typeof username !== 'string') {
    throw new ConfigError('pacs.username must be a string.');
  }
  if (password !== undefined && typeof password !== 'string') {
    throw new ConfigError('pacs.password must be a string.');
  }
  if ((password && !username) || (username && password === undefined)) {
    throw new ConfigError(
      'pacs.username and pacs.password go together: set both (RRL_PACS_USERNAME and ' +
        'RRL_PACS_PASSWORD) or neither.',
    );
  }
  const dicomWebRoot = url.toString().replace(/\/+$/, '');
  if (c.apiToken !== undefined && (typeof c.apiToken !== 'string' || c.apiToken.length < 16)) {
    throw new ConfigError(
      'apiToken (RRL_API_TOKEN) must be a string of at least 16 characters; generate one with ' +
        '`openssl rand -hex 24`, or leave it unset to let the server generate one.',
    );
  }
  if (!TRAINING_PROVIDERS.includes(c.trainingProvider)) {
    throw new ConfigError(
      `trainingProvider (RRL_TRAINING_PROVIDER) must be one of ${TRAINING_PROVIDERS.join(', ')}; ` +
        `found ${JSON.stringify(c.trainingProvider)}.`,
    );
  }
  for (const [k, max] of [
    ['jobSlots', 64],
    ['maxSeriesPerJob', 100_000],
    ['maxRequestBytes', 64 * 1024 * 1024],
    ['sessionTtlSeconds', 30 * 24 * 3600],
    ['maxStowBytes', 16 * 1024 * 1024 * 1024],
    ['maxUploadsPerClient', 64],
    ['maxUploads', 256],
    ['minUploadBytesPerSecond', 1024 * 1024 * 1024],
  ] as const) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1 || v > max) {
      throw new ConfigError(
        `${k} must be an integer from 1 to ${max}; found ${JSON.stringify(v)}.`,
      );
    }
  }
  if (
    !Array.isArray(c.allowedHosts) ||
    c.allowedHosts.some((h) => typeof h !== 'string' || !HOST_NAME.test(h))
  ) {
    throw new ConfigError(
      `allowedHosts (RRL_ALLOWED_HOSTS) must be host names such as viewer.hospital.example; found ${JSON.stringify(c.allowedHosts)}.`,
    );
  }
  if (typeof c.behindProxy !== 'boolean') {
    throw new ConfigError(
      `behindProxy must be true or false; found ${JSON.stringify(c.behindProxy)}.`,
    );
  }
  let tls: ServerConfig['tls'];
  if (c.tls !== undefined) {
    const keyFile = c.tls?.keyFile;
    const certFile = c.tls?.certFile;
    if (
      typeof keyFile !== 'string' ||
      keyFile === '' ||
      typeof certFile !== 'string' ||
      certFile === ''
    ) {
      throw new ConfigError(
        'tls needs both a key and a certificate file (tls.keyFile and tls.certFile, or RRL_TLS_KEY and RRL_TLS_CERT).',
      );
    }
    for (const f of [keyFile, certFile]) {
      if (!existsSync(f))
        throw new ConfigError(
          `The TLS file ${path.basename(f)} does not exist; check tls.keyFile / tls.certFile.`,
        );
    }
    tls = { keyFile: path.resolve(keyFile), certFile: path.resolve(certFile) };
  }
  if (!isLoopbackAddress(c.host) && !tls && !c.behindProxy) {
    throw new ConfigError(
      `Refusing to listen on ${c.host}: off the loopback address the viewer, the PACS proxy and the API ` +
        'would be served over plain HTTP to the network. Either serve HTTPS (--tls-key/--tls-cert, ' +
        'RRL_TLS_KEY/RRL_TLS_CERT), or state that an HTTPS reverse proxy fronts this server ' +
        '(--behind-proxy, RRL_BEHIND_PROXY=1) and bind it where only that proxy reaches it.',
    );
  }
  if (isWildcardHost(c.host) && c.allowedHosts.length === 0) {
    throw new ConfigError(
      `Listening on all interfaces (${c.host}) needs the host names clients use: set allowedHosts ` +
        '(--allowed-host, RRL_ALLOWED_HOSTS), e.g. viewer.hospital.example.',
    );
  }
  return {
    host: c.host,
    port: c.port,
    pacs: {
      dicomWebRoot,
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
    },
    modelsDir: checkDir('modelsDir', c.modelsDir, false, ''),
    viewerDir: checkDir(
      'viewerDir',
      c.viewerDir,
      true,
      'Run `npm install` (it installs @ohif/app) or set RRL_VIEWER_DIR to a built OHIF viewer.',
    ),
    pluginsDir: checkDir('pluginsDir', c.pluginsDir, false, ''),
    dataDir: checkDir('dataDir', c.dataDir, false, ''),
    teachersDir: c.teachersDir
      ? checkDir('teachersDir', c.teachersDir, false, '')
      : path.join(checkDir('dataDir', c.dataDir, false, ''), 'teachers'),
    logLevel: c.logLevel,
    ...(c.apiToken !== undefined ? { apiToken: c.apiToken } : {}),
    ...(c.databaseFile ? { databaseFile: path.resolve(c.databaseFile) } : {}),
    trainingProvider: c.trainingProvider,
    jobSlots: c.jobSlots,
    maxSeriesPerJob: c.maxSeriesPerJob,
    maxRequestBytes: c.maxRequestBytes,
    allowedHosts: [...c.allowedHosts],
    behindProxy: c.behindProxy,
    ...(tls ? { tls } : {}),
    sessionTtlSeconds: c.sessionTtlSeconds,
    maxStowBytes: c.maxStowBytes,
    maxUploadsPerClient: c.maxUploadsPerClient,
    maxUploads: c.maxUploads,
    minUploadBytesPerSecond: c.minUploadBytesPerSecond,
    keepJobData: c.keepJobData === true,
  };
}

/**
 * The effective config: defaults < config file (RRL_CONFIG or `file`) < environment < `override`.
 */
export function loadConfig(
  override: ServerConfigInput = {},
  env: NodeJS.ProcessEnv = process.env,
  file?: string,
): ServerConfig {
  let merged = defaultConfig();
  const cfgFile = file ?? (env.RRL_CONFIG || undefined);
  if (cfgFile) merged = merge(merged, configFromFile(cfgFile));
  merged = merge(merged, configFromEnv(env));
  merged = merge(merged, override);
  return validateConfig(merged);
}
