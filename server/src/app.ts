/**
 * The companion server: one origin for the prebuilt OHIF viewer (with our generated
 * `/app-config.js`), our extension and mode bundles (`/plugins/...`), the published models
 * (`/models/...`), the DICOMweb proxy to the PACS (`/dicom-web/...`) and `/api/health`.
 * Every response carries COOP/COEP/CORP (cross-origin isolation for onnxruntime-web's threads).
 */
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';

import { Api } from './api/index.js';
import { registerApi, schemaErrorMessage, serveRaw } from './api/routes.js';
import { ROUTE_SCHEMAS } from './api/schemas.js';
import { resolveApiToken } from './api/auth.js';
import type { JobExecutor } from './jobs/runner.js';
import {
  isWildcardHost,
  loadConfig,
  REPO_ROOT,
  type ServerConfig,
  type ServerConfigInput,
} from './config.js';
import { sendError, sendJson, setIsolationHeaders } from './http/headers.js';
import { addRedaction } from './http/redact.js';
import {
  CACHE_IMMUTABLE,
  CACHE_REVALIDATE,
  fileInfo,
  hasKnownExtension,
  isHashedName,
  resolveUnder,
  sendFile,
} from './http/static.js';
import { createLogger, type LogSink, type Logger } from './log.js';
import { requestOrigin, requestProto } from './http/origin.js';
import { allowedHostNames, hostProblem, loadSessionSecret, Sessions } from './http/guard.js';
import { crossOriginProblem, requestToken, tokenMatches } from './api/auth.js';
import { ModelRegistry } from './models/registry.js';
import { createDicomWebProxy, type ProxyOptions } from './proxy/dicomweb.js';
import { EXTENSION_URL, MODE_URL, renderAppConfig } from './viewer/appConfig.js';

export type { ServerConfig } from './config.js';
export { requestOrigin } from './http/origin.js';

export interface RunningServer {
  /** http://HOST:PORT (127.0.0.1 when listening on all interfaces). */
  url: string;
  port: number;
  config: ServerConfig;
  close(): Promise<void>;
}

export interface StartServerOptions {
  /** Where log lines go (default: stdout). */
  logSink?: LogSink;
  /** Environment to read `RRL_*` from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Config file (default: RRL_CONFIG). */
  configFile?: string;
  proxy?: ProxyOptions;
  /** Training job executor (default: the PACS training pipeline in a worker thread). */
  jobExecutor?: JobExecutor;
  /** Server-sent events heartbeat interval, ms (default 15 s). */
  sseHeartbeatMs?: number;
  /** Retry delay of a job that found the PACS unreachable, ms per attempt (default 30 s). */
  jobRetryDelayMs?: number;
  /** Plan check that goes with a custom job executor (default: models/plans). */
  checkPlan?: (name: string) => Promise<{ classes?: number }>;
}

export const SERVER_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

interface Ctx {
  sessions: Sessions;
  /** Whether the request carries a valid session cookie or token, or the API token. */
  authorized: (req: IncomingMessage, allowQuery: boolean) => boolean;
  config: ServerConfig;
  log: Logger;
  models: ModelRegistry;
  proxy: ReturnType<typeof createDicomWebProxy>;
  listenHost: () => string;
  api: Api;
}

async function pluginUrls(
  config: ServerConfig,
): Promise<{ extensions: string[]; modes: string[] }> {
  const ext = await fileInfo(path.join(config.pluginsDir, 'extension', 'index.js'));
  const mode = await fileInfo(path.join(config.pluginsDir, 'mode', 'index.js'));
  return { extensions: ext ? [EXTENSION_URL] : [], modes: mode ? [MODE_URL] : [] };
}

/** One GET to the PACS with node:http(s) (fetch refuses some ports); status, or an error code. */
function probe(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? https : http).request(
      u,
      { method: 'GET', headers, timeout: timeoutMs },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

async function pacsHealth(
  config: ServerConfig,
): Promise<{ reachable: boolean; status?: number; ms: number; error?: string }> {
  const started = Date.now();
  const headers: Record<string, string> = { Accept: 'application/dicom+json' };
  if (config.pacs.username !== undefined) {
    headers.Authorization =
      'Basic ' +
      Buffer.from(`${config.pacs.username}:${config.pacs.password ?? ''}`).toString('base64');
  }
  const r = await probe(`${config.pacs.dicomWebRoot}/studies?limit=1`, headers, 3000);
  const ms = Date.now() - started;
  if ('error' in r) return { reachable: false, ms, error: r.error };
  if (r.status >= 200 && r.status < 300) return { reachable: true, status: r.status, ms };
  return {
    reachable: false,
    status: r.status,
    ms,
    error:
      r.status === 401 || r.status === 403
        ? 'the PACS refused the server credentials'
        : `the PACS answered HTTP ${r.status}`,
  };
}

/** Free space where the server keeps its data (jobs, database, models); < 1 GiB is not ok. */
async function diskHealth(
  dir: string,
): Promise<{ ok: boolean; freeBytes?: number; error?: string }> {
  try {
    const st = await statfs(dir);
    const freeBytes = Number(st.bavail) * Number(st.bsize);
    return { ok: freeBytes >= MIN_FREE_BYTES, freeBytes };
  } catch (e) {
    return { ok: false, error: (e as NodeJS.ErrnoException).code ?? 'unreadable' };
  }
}

const MIN_FREE_BYTES = 1024 ** 3;

async function serveStatic(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  subPath: string,
): Promise<boolean> {
  const file = resolveUnder(root, subPath);
  if (!file) return false;
  const info = await fileInfo(file);
  if (!info) return false;
  await sendFile(req, res, file, info, {
    cacheControl: isHashedName(file) ? CACHE_IMMUTABLE : CACHE_REVALIDATE,
  });
  return true;
}

async function handleModels(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  rest: string,
): Promise<void> {
  if (rest === '/index.json' || rest === '/' || rest === '') {
    const { models } = await ctx.models.list();
    sendJson(res, 200, models);
    return;
  }
  const m = /^\/([^/]+)\/([^/]+)$/.exec(rest);
  let id = '';
  let name = '';
  try {
    id = m ? decodeURIComponent(m[1] ?? '') : '';
    name = m ? decodeURIComponent(m[2] ?? '') : '';
  } catch {
    /* leaves id empty */
  }
  const found = id && name ? await ctx.models.modelFile(id, name) : undefined;
  if (!found) {
    sendError(
      res,
      404,
      `No such model file: ${rest}. /models/index.json lists the models this server has.`,
    );
    return;
  }
  if (name.endsWith('.onnx')) {
    const sha = await ctx.models.sha256(found.file, found.info);
    await sendFile(req, res, found.file, found.info, {
      cacheControl: CACHE_REVALIDATE,
      etag: `"${sha}"`,
      extraHeaders: { 'X-Content-SHA256': sha },
    });
    return;
  }
  await sendFile(req, res, found.file, found.info, { cacheControl: CACHE_REVALIDATE });
}

function secureRequest(ctx: Ctx, req: IncomingMessage): boolean {
  return ctx.config.tls !== undefined || requestProto(req) === 'https';
}

async function route(ctx: Ctx, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const rawUrl = req.url ?? '/';
  const q = rawUrl.indexOf('?');
  const pathname = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const method = req.method ?? 'GET';

  if (pathname === '/dicom-web' || pathname.startsWith('/dicom-web/')) {
    const problem = crossOriginProblem(req, ctx.listenHost());
    if (problem) {
      req.resume();
      sendError(res, 403, problem);
      return;
    }
    if (!ctx.authorized(req, false)) {
      req.resume();
      res.setHeader('WWW-Authenticate', 'Bearer realm="rrl-medsam"');
      sendError(
        res,
        401,
        'The PACS is reached only through a viewer session: open the viewer page of this server ' +
          '(it starts one), or send "Authorization: Bearer <API token>" from a script.',
      );
      return;
    }
    ctx.proxy(req, res, pathname.slice('/dicom-web'.length));
    return;
  }
  if (method !== 'GET' && method !== 'HEAD') {
    req.resume();
    sendError(res, 405, `${method} is not supported on ${pathname}; only GET and HEAD are.`);
    return;
  }
  if (pathname === '/api/health') {
    const [pacs, plugins, listing, disk] = await Promise.all([
      pacsHealth(ctx.config),
      pluginUrls(ctx.config),
      ctx.models.list(),
      diskHealth(ctx.config.dataDir),
    ]);
    const workers = ctx.api.workerHealth();
    const problems: string[] = [];
    if (!pacs.reachable) problems.push('the PACS is not reachable');
    if (!disk.ok) problems.push('the data folder is (nearly) full');
    if (!workers.ok) problems.push('the training worker is not running');
    // 503 tells a load balancer or a monitor that the product cannot work now.
    sendJson(res, problems.length === 0 ? 200 : 503, {
      status: problems.length === 0 ? 'ok' : 'degraded',
      ...(problems.length > 0 ? { problems } : {}),
      version: SERVER_VERSION,
      pacs,
      disk,
      workers,
      plugins: { extension: plugins.extensions.length > 0, mode: plugins.modes.length > 0 },
      models: { count: listing.models.length, skipped: listing.problems.length },
    });
    return;
  }
  if (pathname.startsWith('/api/')) {
    sendError(res, 404, `No API endpoint ${pathname}.`);
    return;
  }
  if (pathname === '/app-config.js') {
    ctx.sessions.ensureCookie(req, res, secureRequest(ctx, req));
    const origin = requestOrigin(req, ctx.listenHost());
    const body = renderAppConfig({ origin, ...(await pluginUrls(ctx.config)) });
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/javascript; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(method === 'HEAD' ? undefined : body);
    return;
  }
  for (const [prefix, sub] of [
    ['/plugins/extension/', 'extension'],
    ['/plugins/mode/', 'mode'],
  ] as const) {
    if (pathname.startsWith(prefix)) {
      const ok = await serveStatic(
        req,
        res,
        path.join(ctx.config.pluginsDir, sub),
        pathname.slice(prefix.length),
      );
      if (!ok) {
        sendError(
          res,
          404,
          `No plugin file ${pathname}. Build the browser bundles with ` +
            '`npx webpack --mode production` (output dist/extension and dist/mode).',
        );
      }
      return;
    }
  }
  if (pathname.startsWith('/plugins/')) {
    sendError(res, 404, `No plugin file ${pathname}.`);
    return;
  }
  if (pathname === '/models' || pathname.startsWith('/models/')) {
    await handleModels(ctx, req, res, pathname.slice('/models'.length));
    return;
  }
  // The viewer: a file of the OHIF dist, else (a client-side route) its index.html. Loading the
  // viewer's page starts (or refreshes) the session that the proxy and the API ask for.
  if (pathname === '/' || pathname.endsWith('.html')) {
    ctx.sessions.ensureCookie(req, res, secureRequest(ctx, req));
  }
  if (await serveStatic(req, res, ctx.config.viewerDir, pathname)) return;
  // A missing asset is a 404; anything else (e.g. /viewer/1.2.840.10008...) is a client route.
  if (hasKnownExtension(pathname)) {
    sendError(res, 404, `No such file: ${pathname}.`);
    return;
  }
  const index = path.join(ctx.config.viewerDir, 'index.html');
  const info = await fileInfo(index);
  if (!info) {
    ctx.log.error('viewer index.html missing', { viewerDir: ctx.config.viewerDir });
    sendError(
      res,
      500,
      "The viewer's index.html is missing; an administrator must reinstall the viewer (see the server log).",
    );
    return;
  }
  ctx.sessions.ensureCookie(req, res, secureRequest(ctx, req));
  await sendFile(req, res, index, info, { cacheControl: CACHE_REVALIDATE });
}

/**
 * Starts the server. Config: defaults < config file (RRL_CONFIG) < `RRL_*` environment < `config`.
 */
export async function startServer(
  config: ServerConfigInput = {},
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const cfg = loadConfig(config, options.env ?? process.env, options.configFile);
  const log = createLogger(cfg.logLevel, options.logSink);
  // Everything this server writes (job data with pixel data, the database, models, secrets) is
  // private to its user: files 0600, folders 0700 — also what an earlier version left behind.
  process.umask(0o077);
  addRedaction(new URL(cfg.pacs.dicomWebRoot).origin, 'the PACS');
  addRedaction(new URL(cfg.pacs.dicomWebRoot).host, "the PACS's address");
  for (const dir of [cfg.dataDir, cfg.modelsDir, cfg.viewerDir, cfg.pluginsDir, REPO_ROOT]) {
    addRedaction(dir, '<server folder>');
  }
  for (const dir of [cfg.dataDir, cfg.modelsDir]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  let boundHost = cfg.host;
  const allowedHosts = allowedHostNames(cfg.host, cfg.allowedHosts);
  const sessions = new Sessions({
    secret: loadSessionSecret(cfg.dataDir),
    ttlSeconds: cfg.sessionTtlSeconds,
  });
  const apiToken = resolveApiToken(cfg.apiToken, cfg.dataDir);
  const authorized = (req: IncomingMessage, allowQuery: boolean): boolean => {
    if (sessions.fromCookie(req) !== undefined) return true;
    const given = requestToken(req, allowQuery);
    return tokenMatches(given, apiToken) || sessions.check(given, 'b') !== undefined;
  };
  const models = new ModelRegistry(cfg.modelsDir, log);
  const api = new Api({
    config: cfg,
    log,
    models,
    sessions,
    authorized,
    listenHost: () => boundHost,
    ...(options.jobExecutor ? { executor: options.jobExecutor } : {}),
    ...(options.sseHeartbeatMs ? { heartbeatMs: options.sseHeartbeatMs } : {}),
    ...(options.checkPlan ? { checkPlan: options.checkPlan } : {}),
    ...(options.jobRetryDelayMs !== undefined ? { jobRetryDelayMs: options.jobRetryDelayMs } : {}),
  });
  const ctx: Ctx = {
    sessions,
    authorized,
    config: cfg,
    log,
    models,
    proxy: createDicomWebProxy(cfg.pacs, log, options.proxy ?? {}, {
      maxBytes: cfg.maxStowBytes,
      perClient: cfg.maxUploadsPerClient,
      total: cfg.maxUploads,
      minBytesPerSecond: cfg.minUploadBytesPerSecond,
    }),
    listenHost: () => boundHost,
    api,
  };

  /**
   * Before Fastify routes a request: the isolation headers, the request log line, no method
   * overrides, and the host check (DNS rebinding) — for every request, whatever answers it.
   */
  const guarded =
    (next: (req: IncomingMessage, res: ServerResponse) => void) =>
    (req: IncomingMessage, res: ServerResponse): void => {
      const started = process.hrtime.bigint();
      const rawUrl = req.url ?? '/';
      const q = rawUrl.indexOf('?');
      // Never log the query string: QIDO queries may carry patient names or IDs.
      const logPath = (q >= 0 ? rawUrl.slice(0, q) : rawUrl).slice(0, 512);
      setIsolationHeaders(res);
      res.on('close', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const finished = res.writableFinished;
        log.info('request', {
          method: req.method,
          path: logPath,
          // 499: the client closed the connection before the response was complete (nginx's
          // code); what was begun, if anything, is in `sentStatus`.
          status: finished ? res.statusCode : 499,
          ms: Math.round(ms * 10) / 10,
          aborted: finished ? undefined : true,
          sentStatus: !finished && res.headersSent ? res.statusCode : undefined,
        });
      });
      // Method overrides are never honoured, and never reach the PACS.
      delete req.headers['x-http-method-override'];
      delete req.headers['x-http-method'];
      delete req.headers['x-method-override'];
      const badHost = hostProblem(req, allowedHosts);
      if (badHost) {
        req.resume();
        sendError(res, 421, badHost);
        return;
      }
      next(req, res);
    };
  /** Everything that is not the REST API: the viewer, plugins, models, the DICOMweb proxy, health. */
  const other = (request: FastifyRequest, reply: FastifyReply): Promise<void> =>
    serveRaw(request, reply, log, (req, res) => route(ctx, req, res));
  const serverOptions = {
    // Headers must arrive within 20 s (slowloris); a whole request within 10 min.
    headersTimeout: 20_000,
    requestTimeout: 10 * 60_000,
    // How often those two are checked (Node's default, 30 s, would let a slow header live 50 s).
    connectionsCheckingInterval: 5_000,
    keepAliveTimeout: 5_000,
  };
  let server: http.Server | https.Server | undefined;
  const app = Fastify({
    serverFactory: (fastifyHandler) => {
      const h = guarded(fastifyHandler);
      server = cfg.tls
        ? https.createServer(
            {
              ...serverOptions,
              key: readFileSync(cfg.tls.keyFile),
              cert: readFileSync(cfg.tls.certFile),
            },
            h,
          )
        : http.createServer(serverOptions, h);
      return server;
    },
    // Headers or body too slow (slowloris): 408; headers too large: 431; anything else: 400.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      const status =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? '408 Request Timeout'
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? '431 Request Header Fields Too Large'
            : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      else socket.destroy();
    },
    bodyLimit: cfg.maxRequestBytes,
    routerOptions: { maxParamLength: 256 },
    // Response schemas document; handlers write the responses.
    ajv: {
      customOptions: {
        coerceTypes: false,
        removeAdditional: false,
        verbose: true,
        allErrors: false,
      },
    },
    schemaErrorFormatter: (errors, dataVar) => new Error(schemaErrorMessage(errors, dataVar)),
  });
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  await registerApi(app, {
    api,
    log,
    listenHost: () => boundHost,
    authorized,
    bodyLimit: cfg.maxRequestBytes,
  });
  // The rest reads its own request bodies (the proxy streams STOW-RS uploads to the PACS).
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    scope.route({
      method: 'GET',
      url: '/api/health',
      schema: ROUTE_SCHEMAS['GET /api/health'] ?? {},
      handler: other,
    });
    scope.all('*', { schema: { hide: true } }, other);
    scope.setNotFoundHandler(other);
  });
  await app.ready();
  if (!server) throw new Error('Fastify did not create the HTTP server');
  const srv = server;

  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(cfg.port, cfg.host, () => {
        srv.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    await api.close();
    throw e;
  }
  const port = (srv.address() as AddressInfo).port;
  const shownHost = isWildcardHost(cfg.host)
    ? '127.0.0.1'
    : cfg.host.includes(':')
      ? `[${cfg.host}]`
      : cfg.host;
  boundHost = `${shownHost}:${port}`;
  const url = `${cfg.tls ? 'https' : 'http'}://${boundHost}`;
  log.info('server listening', {
    url,
    pacs: new URL(cfg.pacs.dicomWebRoot).origin,
    modelsDir: cfg.modelsDir,
    version: SERVER_VERSION,
  });

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    config: cfg,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        srv.close(() => resolve());
        srv.closeIdleConnections();
        // Give in-flight responses a moment, then cut what is left.
        setTimeout(() => srv.closeAllConnections(), 2_000).unref();
        // Ends event streams, stops running jobs (they resume on the next start), closes the store.
        void api.close();
      })
        .then(() => api.close())
        .then(() => log.info('server stopped', {}));
      return closing;
    },
  };
}
