/**
 * `/dicom-web/*` → the PACS's DICOMweb root. Bodies stream both ways (a STOW of a whole series can
 * be 100+ MB); HTTP Basic credentials are added here so they never reach the browser; the `Host`
 * header is passed on so that Orthanc's BulkDataURIs point back at the viewer's origin.
 *
 * Only DICOMweb resources are reachable (QIDO/WADO-RS `GET`/`HEAD` under `studies`, `series`,
 * `instances`; STOW-RS `POST` to `studies[/{uid}]`): the server's PACS account may be an
 * administrator, so nothing else of the PACS's API (Orthanc's REST API, `/dicom-web/servers`) is
 * exposed through the proxy.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';

import type { PacsConfig } from '../config.js';
import { sendError } from '../http/headers.js';
import { requestHost, requestProto } from '../http/origin.js';
import type { Logger } from '../log.js';

/** Request headers never forwarded to the PACS. */
const DROP_REQUEST = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'authorization',
  'cookie',
  'host',
  // Set by us from the browser's request (never passed through as the client sent them).
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
]);
/** Response headers never passed back to the browser. */
const DROP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'www-authenticate',
  'set-cookie',
]);

const RESOURCE_ROOTS = new Set(['studies', 'series', 'instances']);

export interface ProxyOptions {
  /** No response headers from the PACS after this long → 504 (default 5 min). */
  responseTimeoutMs?: number;
  /** No connection to the PACS after this long → 502 (default 10 s). */
  connectTimeoutMs?: number;
}

/** Why a path/method is refused, or undefined when the proxy may forward it. */
export function checkDicomWebRequest(method: string, subPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(subPath);
  } catch {
    return 'the path is not valid percent-encoding';
  }
  if (decoded.includes('\\') || decoded.includes('\0')) return 'the path has invalid characters';
  const segments = decoded.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) return 'the path has dot segments';
  const first = segments[0];
  if (first === undefined || !RESOURCE_ROOTS.has(first)) {
    return 'only DICOMweb resources (studies, series, instances) are served';
  }
  if (method === 'GET' || method === 'HEAD') return undefined;
  if (method === 'POST' && first === 'studies' && segments.length <= 2) return undefined;
  return `${method} is not allowed here (QIDO/WADO-RS use GET, STOW-RS uses POST to /studies)`;
}

/**
 * Orthanc's DICOMweb plugin (1.7) ignores an `includefield` whose comma-separated tag list has
 * its commas percent-encoded (`00081030%2C00080060`), which is how OHIF sends it: the study list
 * then has no descriptions. Commas are literal in a query value (RFC 3986), so they are decoded
 * here for `includefield` only; every other parameter passes unchanged.
 */
export function normalizeQuery(query: string): string {
  if (!/includefield/i.test(query)) return query;
  return query.replace(
    /([?&])(includefield=)([^&]*)/gi,
    (_m, sep: string, key: string, v: string) => `${sep}${key}${v.replace(/%2C/gi, ',')}`,
  );
}

export type ProxyHandler = (req: IncomingMessage, res: ServerResponse, subPath: string) => void;

/**
 * Returns a handler for one proxied request; `subPath` is the part of the URL after `/dicom-web`
 * (leading slash, still percent-encoded, without the query, which is taken from `req.url`).
 */
export function createDicomWebProxy(
  pacs: PacsConfig,
  log: Logger,
  opts: ProxyOptions = {},
): ProxyHandler {
  const root = new URL(pacs.dicomWebRoot);
  const rootPath = root.pathname.replace(/\/+$/, '');
  const isHttps = root.protocol === 'https:';
  const agent = isHttps
    ? new https.Agent({ keepAlive: true, maxSockets: 64 })
    : new http.Agent({ keepAlive: true, maxSockets: 64 });
  const auth =
    pacs.username !== undefined
      ? 'Basic ' + Buffer.from(`${pacs.username}:${pacs.password ?? ''}`).toString('base64')
      : undefined;
  const responseTimeoutMs = opts.responseTimeoutMs ?? 300_000;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;

  return (req, res, subPath) => {
    const method = req.method ?? 'GET';
    const refused = checkDicomWebRequest(method, subPath);
    if (refused) {
      req.resume();
      sendError(res, method === 'GET' || method === 'HEAD' ? 404 : 405, `Not proxied: ${refused}.`);
      return;
    }
    const q = (req.url ?? '').indexOf('?');
    const query = q >= 0 ? normalizeQuery((req.url ?? '').slice(q)) : '';

    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && !DROP_REQUEST.has(k)) headers[k] = v;
    }
    // The browser's Host, and RFC 7239 Forwarded (+ X-Forwarded-*) naming the viewer's origin:
    // Orthanc builds BulkDataURIs from them, so they point back at this origin (with https when a
    // TLS proxy sits in front of us, which a page served over https needs).
    const host = requestHost(req);
    const proto = requestProto(req);
    if (host) {
      headers.host = host;
      // Unquoted: Orthanc 1.10's parser does not strip RFC 7239 quotes (it would put them in URIs).
      headers.forwarded = `host=${host};proto=${proto}`;
      headers['x-forwarded-host'] = host;
    }
    headers['x-forwarded-proto'] = proto;
    if (auth) headers.authorization = auth;

    const started = Date.now();
    const upstream = (isHttps ? https : http).request({
      protocol: root.protocol,
      hostname: root.hostname,
      port: root.port || (isHttps ? 443 : 80),
      method,
      path: rootPath + subPath + query,
      headers,
      agent,
    });

    let connectTimer: NodeJS.Timeout | undefined = setTimeout(() => {
      upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    }, connectTimeoutMs);
    upstream.on('socket', (socket) => {
      socket.setNoDelay(true);
      const connected = (): void => {
        clearTimeout(connectTimer);
        connectTimer = undefined;
      };
      if (!socket.connecting) connected();
      else socket.once('connect', connected);
    });
    upstream.setTimeout(responseTimeoutMs, () => {
      upstream.destroy(Object.assign(new Error('response timeout'), { code: 'ESOCKETTIMEDOUT' }));
    });

    upstream.on('response', (up) => {
      clearTimeout(connectTimer);
      upstream.setTimeout(0);
      const status = up.statusCode ?? 502;
      if (status === 401 || status === 403) {
        up.resume();
        log.error('pacs refused the server credentials', { status });
        sendError(
          res,
          status,
          `The PACS refused the companion server's credentials (HTTP ${status}). ` +
            'An administrator must check RRL_PACS_USERNAME / RRL_PACS_PASSWORD (or pacs.username / ' +
            'pacs.password in the config file) and restart the server.',
        );
        return;
      }
      for (const [k, v] of Object.entries(up.headers)) {
        if (v !== undefined && !DROP_RESPONSE.has(k)) res.setHeader(k, v);
      }
      res.statusCode = status;
      if (status >= 400) {
        log.warn('pacs error', { method, status, ms: Date.now() - started });
      }
      up.on('error', () => res.destroy());
      up.pipe(res);
    });

    upstream.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(connectTimer);
      const code = err.code ?? 'ERROR';
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const timeout = code === 'ESOCKETTIMEDOUT';
      log.error('pacs unreachable', { method, code, pacs: root.origin });
      sendError(
        res,
        timeout ? 504 : 502,
        timeout
          ? `The PACS did not answer within ${Math.round(responseTimeoutMs / 1000)} s. ` +
              'Try again; if it keeps happening, check the PACS is running and not overloaded.'
          : `The PACS is not reachable (${code}). Check that it is running and that the ` +
              'companion server is configured with its DICOMweb address (RRL_PACS_URL), then try again.',
      );
    });

    // The browser went away: stop the upstream transfer too.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.on('error', () => upstream.destroy());
    req.pipe(upstream);
  };
}
