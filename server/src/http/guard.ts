/**
 * The doors of the companion server, checked on every request before anything is routed:
 *
 * - **Host allow-list** (against DNS rebinding): a page on another site whose name was re-pointed
 *   at 127.0.0.1 reaches us with its own name in `Host`. Only `localhost`, `127.0.0.1`, `[::1]`,
 *   the address the server listens on (when it is not a wildcard) and the names the administrator
 *   lists (`allowedHosts`, RRL_ALLOWED_HOSTS) are served; anything else gets 421.
 * - **Sessions**: nothing that reads or writes patient data is anonymous. Loading the viewer page
 *   (`/`, a viewer route, `/app-config.js`) from an allowed host sets a signed session cookie
 *   (`HttpOnly; SameSite=Strict`, `Secure` over https); the DICOMweb proxy and the API accept that
 *   cookie or a bearer token (the API token, or a session token handed out by `/api/session` to a
 *   same-origin page that holds the cookie). A session carries its expiry inside its HMAC; one
 *   whose expiry lies further ahead than a session can live (a forged or clock-skewed token) is
 *   refused like an expired one.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';

import { isWildcardHost } from '../config.js';

export const SESSION_COOKIE = 'rrl_session';
const SECRET_FILE = 'session-secret';
const TOKEN_PREFIX = 'rrls1';

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]', '::1'];

/** The host name of a Host header value (lower case, port removed; IPv6 keeps its brackets). */
export function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(0, end + 1) : h;
  }
  const colon = h.lastIndexOf(':');
  return colon >= 0 ? h.slice(0, colon) : h;
}

/** The set of host names this server answers to. */
export function allowedHostNames(listenHost: string, extra: readonly string[]): Set<string> {
  const names = new Set(LOOPBACK_NAMES);
  if (!isWildcardHost(listenHost)) {
    const h = listenHost.toLowerCase();
    names.add(h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
  }
  for (const e of extra) names.add(hostName(e));
  return names;
}

/**
 * Why the request's Host is refused, or undefined. A request without Host (HTTP/1.0) is refused
 * too: a browser always sends one, and a rebinding attack cannot be told apart without it.
 */
export function hostProblem(req: IncomingMessage, allowed: Set<string>): string | undefined {
  const host = req.headers.host;
  if (!host) return 'The request has no Host header; send the name this server is reached by.';
  const name = hostName(host);
  if (allowed.has(name)) return undefined;
  return (
    `This server does not answer to the host name "${name.slice(0, 100)}". ` +
    'Open the viewer by one of its configured names; an administrator adds names with ' +
    'allowedHosts (RRL_ALLOWED_HOSTS).'
  );
}

/** Reads (or creates, mode 0600) the key that signs session cookies. */
export function loadSessionSecret(dataDir: string): Buffer {
  const file = path.join(dataDir, SECRET_FILE);
  if (existsSync(file)) {
    const b = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (b.length >= 32) return b;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32);
  writeFileSync(file, secret.toString('base64') + '\n', { mode: 0o600 });
  return secret;
}

export function parseCookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  const raw = req.headers.cookie;
  if (!raw) return out;
  for (const part of raw.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const k = part.slice(0, eq).trim();
    if (!out.has(k)) out.set(k, part.slice(eq + 1).trim());
  }
  return out;
}

export interface SessionOptions {
  secret: Buffer;
  /** How long a session lives, seconds. */
  ttlSeconds: number;
  /** Clock used for issuing and checking (tests move it). */
  now?: () => number;
}

/** Issues and checks signed, self-expiring session tokens (cookie value and bearer form). */
export class Sessions {
  private readonly now: () => number;
  constructor(private readonly o: SessionOptions) {
    this.now = o.now ?? (() => Date.now());
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.o.secret).update(payload).digest('base64url');
  }

  /** A new token `rrls1.<kind>.<expires>.<nonce>.<mac>`; kind `c` (cookie) or `b` (bearer). */
  issue(kind: 'c' | 'b', expiresAt?: number): string {
    const exp = expiresAt ?? Math.floor(this.now() / 1000) + this.o.ttlSeconds;
    const payload = `${TOKEN_PREFIX}.${kind}.${exp}.${randomBytes(12).toString('base64url')}`;
    return `${payload}.${this.sign(payload)}`;
  }

  /** The token's expiry (epoch seconds) when it is genuine and current, else undefined. */
  check(token: string | undefined, kind: 'c' | 'b'): number | undefined {
    if (!token || token.length > 200) return undefined;
    const parts = token.split('.');
    if (parts.length !== 5 || parts[0] !== TOKEN_PREFIX || parts[1] !== kind) return undefined;
    const payload = parts.slice(0, 4).join('.');
    const mac = Buffer.from(parts[4] ?? '');
    const want = Buffer.from(this.sign(payload));
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) return undefined;
    const exp = Number(parts[2]);
    const nowS = this.now() / 1000;
    if (!Number.isInteger(exp) || exp <= nowS) return undefined;
    // Issued "in the future" (the clock went back, or the key leaked into a forger's hands):
    // no session may live longer than its lifetime plus a minute of skew.
    if (exp > nowS + this.o.ttlSeconds + 60) return undefined;
    return exp;
  }

  /** The session cookie's expiry when the request carries a valid one. */
  fromCookie(req: IncomingMessage): number | undefined {
    return this.check(parseCookies(req).get(SESSION_COOKIE), 'c');
  }

  /** Sets a fresh session cookie unless the request already holds one with > 1/4 of its life. */
  ensureCookie(req: IncomingMessage, res: ServerResponse, secure: boolean): void {
    const exp = this.fromCookie(req);
    if (exp !== undefined && exp - this.now() / 1000 > this.o.ttlSeconds / 4) return;
    const value = this.issue('c');
    const attrs = [
      `${SESSION_COOKIE}=${value}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Strict',
      `Max-Age=${this.o.ttlSeconds}`,
    ];
    if (secure) attrs.push('Secure');
    res.appendHeader('Set-Cookie', attrs.join('; '));
  }
}
