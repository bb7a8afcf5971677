/**
 * Request helpers of the REST API: the error that becomes an HTTP status, the body reader with its
 * size limit, and the validators of names, ids, UIDs and plan names.
 */
import type { IncomingMessage } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const TASK_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const UID = /^[0-9]+(\.[0-9]+)*$/;
export const PLAN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** "Plan X trains N labels" when the plan trains another number of labels than `labels`. */
export function planMisfit(
  name: string,
  plan: { classes?: number },
  labels: number,
): string | undefined {
  if (plan.classes === undefined || plan.classes === labels + 1) return undefined;
  return `Plan ${name} trains ${plan.classes - 1} labels`;
}

export function slug(name: string): string {
  return name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
}

export function str(v: unknown, what: string, max = 256): string {
  if (typeof v !== 'string' || v.trim() === '' || v.length > max) {
    throw new HttpError(400, `${what} must be a non-empty string of at most ${max} characters.`);
  }
  return v.trim();
}

export function uid(v: unknown, what: string): string {
  const s = str(v, what, 64);
  if (!UID.test(s))
    throw new HttpError(
      400,
      `${what} must be a DICOM UID (digits and dots); found ${JSON.stringify(s)}.`,
    );
  return s;
}

export async function readJson(
  req: IncomingMessage,
  limit: number,
): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '');
  if (!/^application\/json\b/i.test(type)) {
    req.resume();
    throw new HttpError(
      415,
      `Send a JSON body (Content-Type: application/json); found ${JSON.stringify(type)}.`,
    );
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw new HttpError(
      413,
      `The request body is ${declared} bytes; at most ${limit} are accepted.`,
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new HttpError(413, `The request body exceeds ${limit} bytes.`);
    }
    chunks.push(c as Buffer);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `The body is not valid JSON (${(e as Error).message}).`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new HttpError(400, 'The body must be a JSON object.');
  }
  return v as Record<string, unknown>;
}
