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

/** Limits on STOW-RS uploads (config: maxStowBytes, maxUploadsPerClient, maxUploads, ...). */
export interface UploadLimits {
  maxBytes: number;
  perClient: number;
  total: number;
  /** Slower than this after `graceMs` → cut off (408). */
  minBytesPerSecond: number;
  graceMs?: number;
}

/** Answers with a JSON error and closes the connection (the unread body is not drained). */
function refuseAndClose(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.setHeader('Connection', 'close');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  sendError(res, status, message);
  res.once('finish', () => {
    // Half-close, drop what still arrives, and cut the connection shortly after (closing at once
    // with unread data would reset it before the client reads the answer).
    req.resume();
    req.socket.end();
    setTimeout(() => req.socket.destroy(), 2_000).unref();
  });
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
  opts: ProxyOptions,
  limits: UploadLimits,
): ProxyHandler {
  const uploadsByClient = new Map<string, number>();
  let uploads = 0;
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

    if (method !== 'POST') {
      req.resume();
      forward(req, res, method, subPath + query, headers, undefined);
      return;
    }
    // STOW-RS: the whole body is received (bounded in size, time and rate, and in how many
    // uploads run at once) before the PACS sees a byte, so that a slow or endless upload ties up
    // this server's memory for a bounded time instead of one of the PACS's few HTTP threads, and
    // an upload cut short never reaches the PACS half-written.
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limits.maxBytes) {
      refuseAndClose(
        req,
        res,
        413,
        `The upload is ${declared} bytes; the server accepts at most ${limits.maxBytes} bytes per ` +
          'STOW-RS request (setting maxStowBytes). Store large series in parts.',
      );
      return;
    }
    const client = req.socket.remoteAddress ?? 'unknown';
    const mine = uploadsByClient.get(client) ?? 0;
    if (mine >= limits.perClient || uploads >= limits.total) {
      refuseAndClose(
        req,
        res,
        429,
        mine >= limits.perClient
          ? `${mine} uploads from this client are still running (at most ${limits.perClient} at once); wait for them and try again.`
          : 'The server is receiving as many uploads as it takes at once; try again in a moment.',
        { 'Retry-After': '5' },
      );
      return;
    }
    uploadsByClient.set(client, mine + 1);
    uploads += 1;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      uploads -= 1;
      const n = (uploadsByClient.get(client) ?? 1) - 1;
      if (n <= 0) uploadsByClient.delete(client);
      else uploadsByClient.set(client, n);
    };
    res.once('close', release);
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const t0 = Date.now();
    const grace = limits.graceMs ?? 10_000;
    const rateTimer = setInterval(
      () => {
        const elapsed = Date.now() - t0;
        if (done || elapsed < grace) return;
        if ((size * 1000) / elapsed < limits.minBytesPerSecond) {
          done = true;
          clearInterval(rateTimer);
          log.warn('upload too slow', { received: size, ms: elapsed });
          refuseAndClose(
            req,
            res,
            408,
            `The upload arrived too slowly (${size} bytes in ${Math.round(elapsed / 1000)} s; at least ` +
              `${limits.minBytesPerSecond} bytes/s are needed). Check the network and try again.`,
          );
          release();
        }
      },
      Math.min(1000, grace),
    );
    rateTimer.unref();
    const stop = (): void => {
      done = true;
      clearInterval(rateTimer);
    };
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limits.maxBytes) {
        stop();
        refuseAndClose(
          req,
          res,
          413,
          `The upload exceeds ${limits.maxBytes} bytes, the most the server accepts per STOW-RS ` +
            'request (setting maxStowBytes). Store large series in parts.',
        );
        release();
        return;
      }
      chunks.push(c);
    });
    req.on('aborted', stop);
    req.on('error', stop);
    req.on('close', () => {
      if (!req.complete) stop();
    });
    req.on('end', () => {
      if (done) return;
      stop();
      const body = Buffer.concat(chunks, size);
      chunks.length = 0;
      delete headers['content-length'];
      headers['content-length'] = String(body.length);
      forward(req, res, method, subPath + query, headers, body);
    });
  };

  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    pathAndQuery: string,
    headers: http.OutgoingHttpHeaders,
    body: Buffer | undefined,
  ): void {
    const started = Date.now();
    const upstream = (isHttps ? https : http).request({
      protocol: root.protocol,
      hostname: root.hostname,
      port: root.port || (isHttps ? 443 : 80),
      method,
      path: rootPath + pathAndQuery,
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
    upstream.end(body);
  }
}
