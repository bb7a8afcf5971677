/** The origin the browser used, from the request's Host and (behind a TLS proxy) X-Forwarded-Proto. */
import type { IncomingMessage } from 'node:http';

const HOST_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

/** The request's Host header when it is a well-formed host[:port], else undefined. */
export function requestHost(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  return host && HOST_PATTERN.test(host) ? host : undefined;
}

/** 'https' when a TLS-terminating proxy in front of us says so, else 'http'. */
export function requestProto(req: IncomingMessage): 'http' | 'https' {
  const fwd = String(req.headers['x-forwarded-proto'] ?? '')
    .split(',')[0]
    ?.trim()
    .toLowerCase();
  return fwd === 'https' ? 'https' : 'http';
}

/** e.g. http://127.0.0.1:3000 — falls back to `fallbackHost` when Host is missing or malformed. */
export function requestOrigin(req: IncomingMessage, fallbackHost: string): string {
  return `${requestProto(req)}://${requestHost(req) ?? fallbackHost}`;
}
