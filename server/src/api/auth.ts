/**
 * API security: a bearer token on every call, and no cross-origin use.
 *
 * - The token comes from the config (`apiToken`, RRL_API_TOKEN); when unset, the server generates
 *   one and keeps it in `<dataDir>/api-token` (mode 0600) so that it survives restarts and scripts
 *   on the server machine can read it.
 * - The viewer the server serves gets it from `GET /api/session`, answered only to same-origin
 *   browser requests (Sec-Fetch-Site: same-origin, or an Origin/Referer equal to the server's own
 *   origin).
 * - Any request whose Origin is not the server's own origin, or that a browser marks cross-site,
 *   is refused (403) before the token is checked; no Access-Control-Allow-* header is ever sent.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';

import { requestOrigin } from '../http/origin.js';

export const TOKEN_FILE = 'api-token';

/** The configured token, else the one kept in `<dataDir>/api-token` (created when missing). */
export function resolveApiToken(configured: string | undefined, dataDir: string): string {
  if (configured) return configured;
  const file = path.join(dataDir, TOKEN_FILE);
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t.length >= 16) return t;
  }
  mkdirSync(dataDir, { recursive: true });
  const token = randomBytes(24).toString('hex');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return token;
}

/** The token a request carries (Authorization: Bearer, or `access_token` where allowed). */
export function requestToken(req: IncomingMessage, allowQuery: boolean): string | undefined {
  const h = req.headers.authorization;
  if (h) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1] : undefined;
  }
  if (allowQuery) {
    const url = new URL(req.url ?? '/', 'http://x');
    return url.searchParams.get('access_token') ?? undefined;
  }
  return undefined;
}

export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Why a request must be refused as cross-origin, or undefined. `fallbackHost` is the server's
 * listening host:port (used when the Host header is missing).
 */
export function crossOriginProblem(req: IncomingMessage, fallbackHost: string): string | undefined {
  const own = requestOrigin(req, fallbackHost);
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== own) {
    return `Requests from origin ${origin} are not allowed; the API serves only ${own}.`;
  }
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') {
    return `Cross-site requests are not allowed; the API serves only ${own}.`;
  }
  return undefined;
}

/** True when a browser request comes from a page of this origin (for /api/session). */
export function isSameOriginBrowser(req: IncomingMessage, fallbackHost: string): boolean {
  const own = requestOrigin(req, fallbackHost);
  if (req.headers['sec-fetch-site'] === 'same-origin') return true;
  if (req.headers.origin === own) return true;
  const ref = req.headers.referer;
  if (ref) {
    try {
      return new URL(ref).origin === own;
    } catch {
      return false;
    }
  }
  return false;
}
