/** Headers every response carries, and small response helpers. */
import type { ServerResponse } from 'node:http';

import { redact } from './redact.js';

/**
 * Cross-origin isolation (gives onnxruntime-web's wasm backend SharedArrayBuffer and threads):
 * COOP/COEP on every response, and CORP so that our own resources satisfy `require-corp`.
 */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
};

export function setIsolationHeaders(res: ServerResponse): void {
  for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v);
}

/** Sends a JSON body (isolation headers are already set by the request handler). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (!res.hasHeader('Cache-Control')) res.setHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(text);
}

/**
 * A JSON error: `{ error: { status, message } }`. Internal URLs and file paths are replaced
 * (redact.ts): the client learns what went wrong and what to do, the server log keeps the rest.
 */
export function sendError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { error: { status, message: redact(message) } });
}
