/**
 * Static files: safe path resolution under a root folder, content types, ETag / If-None-Match and
 * caching headers. Files are streamed (model files can be hundreds of MB).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
};

/** Whether the name ends in a file extension we serve (.js, .css, .wasm, .png ...). */
export function hasKnownExtension(file: string): boolean {
  return path.extname(file).toLowerCase() in TYPES;
}

export function contentTypeFor(file: string): string {
  return TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** Names with a content hash (webpack/rspack chunk names): safe to cache for a year. */
export function isHashedName(file: string): boolean {
  const base = path.basename(file);
  return /(^|[.-])[0-9a-f]{8,}\.(js|mjs|css|wasm|woff2?)$/.test(base);
}

export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
/** Cache, but revalidate with the ETag on every use. */
export const CACHE_REVALIDATE = 'no-cache';

/**
 * Maps a URL path (already stripped of its mount prefix, still percent-encoded) to a file under
 * `root`. Returns undefined for anything that would leave the root or is malformed.
 */
export function resolveUnder(root: string, urlPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) return undefined;
  const full = path.resolve(root, ...segments);
  const rootAbs = path.resolve(root);
  if (full !== rootAbs && !full.startsWith(rootAbs + path.sep)) return undefined;
  return full;
}

export interface FileInfo {
  size: number;
  mtimeMs: number;
}

/** Stats a regular file; undefined when it is missing or not a file. */
export async function fileInfo(file: string): Promise<FileInfo | undefined> {
  try {
    const s = await stat(file);
    return s.isFile() ? { size: s.size, mtimeMs: s.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}

export function weakEtag(info: FileInfo): string {
  return `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const strip = (t: string): string => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => t.trim() === '*' || strip(t) === strip(etag));
}

export interface SendFileOptions {
  cacheControl: string;
  /** Defaults to a weak ETag from size and mtime. */
  etag?: string;
  contentType?: string;
  extraHeaders?: Record<string, string>;
}

/** Streams a file (GET) or its headers (HEAD); 304 when If-None-Match matches. */
export async function sendFile(
  req: IncomingMessage,
  res: ServerResponse,
  file: string,
  info: FileInfo,
  opts: SendFileOptions,
): Promise<void> {
  const etag = opts.etag ?? weakEtag(info);
  res.setHeader('ETag', etag);
  res.setHeader('Cache-Control', opts.cacheControl);
  res.setHeader('Last-Modified', new Date(info.mtimeMs).toUTCString());
  for (const [k, v] of Object.entries(opts.extraHeaders ?? {})) res.setHeader(k, v);
  if (etagMatches(req.headers['if-none-match'], etag)) {
    res.statusCode = 304;
    res.end();
    return;
  }
  res.statusCode = 200;
  res.setHeader('Content-Type', opts.contentType ?? contentTypeFor(file));
  res.setHeader('Content-Length', info.size);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  await pipeline(createReadStream(file), res);
}
