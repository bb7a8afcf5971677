/**
 * The REST API on Fastify: every route of `Api.routeTable()` with its schema (schemas.ts), so
 * Fastify validates the request before the handler runs and @fastify/swagger writes the OpenAPI
 * document from the same schemas. Before any body is read, each /api/* request passes the
 * cross-origin check and — for routes that need it — the session or token check. Errors keep one
 * shape, `{ error: { status, message } }`, whether Fastify or a handler raised them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import swagger from '@fastify/swagger';
import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchemaValidationError,
} from 'fastify';

import { AtlasError } from '../jobs/atlas.js';
import { PlanRefusal } from '../jobs/plans.js';
import { SERIES_LIMITS } from '../jobs/validate.js';
import { sendError } from '../http/headers.js';
import type { Logger } from '../log.js';
import { PacsError } from '../pacs/dicomweb.js';
import { crossOriginProblem, requestToken } from './auth.js';
import type { Api, RouteDef } from './index.js';
import { QueryError } from './pacsSearch.js';
import { HttpError } from './request.js';
import { ROUTE_SCHEMAS, SHARED_SCHEMAS } from './schemas.js';

export interface ApiRouteDeps {
  api: Api;
  log: Logger;
  listenHost: () => string;
  authorized: (req: IncomingMessage, allowQuery: boolean) => boolean;
  /** Largest JSON body, bytes (maxRequestBytes). */
  bodyLimit: number;
}

/**
 * An error reply in the API's one shape, written by `sendError` like every other error of the
 * server (Fastify stops the request's hooks once the reply is hijacked).
 */
function replyError(
  reply: FastifyReply,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): FastifyReply {
  reply.hijack();
  for (const [k, v] of Object.entries(headers)) reply.raw.setHeader(k, v);
  sendError(reply.raw, status, message);
  return reply;
}

const INTERNAL_ERROR = 'Internal server error; see the server log.';

/**
 * Hands a request to a handler that writes the raw response itself (the API's handlers, the
 * viewer's files, the DICOMweb proxy). A thrown error becomes the API's error reply — its status
 * when the error carries one, else 500 and a log line — or ends a response already begun.
 */
export async function serveRaw(
  request: FastifyRequest,
  reply: FastifyReply,
  log: Logger,
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void> | void,
): Promise<void> {
  reply.hijack();
  const { raw: req } = request;
  const res = reply.raw;
  try {
    await handle(req, res);
  } catch (e) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const known = statusOf(e);
    if (known) {
      sendError(res, known.status, known.message);
      return;
    }
    // Never the query string: QIDO queries may carry patient names or IDs.
    const path = (req.url ?? '/').split('?')[0]?.slice(0, 512);
    log.error('request failed', { path, error: (e as Error).message });
    sendError(res, 500, INTERNAL_ERROR);
  }
}

/** A handler's error as an HTTP status, or undefined for a bug (500). */
function statusOf(e: unknown): { status: number; message: string } | undefined {
  if (e instanceof HttpError) return { status: e.status, message: e.message };
  if (e instanceof PlanRefusal) return { status: 422, message: e.message };
  if (e instanceof AtlasError) return { status: e.status, message: e.message };
  if (e instanceof QueryError) return { status: 400, message: e.message };
  if (e instanceof PacsError) {
    return { status: e.kind === 'not-found' ? 404 : 502, message: e.message };
  }
  return undefined;
}

/** "atlas.studyUID" for ajv's "/atlas/studyUID". */
function fieldName(instancePath: string, dataVar: string): string {
  const p = instancePath.replace(/^\//, '').replace(/\//g, '.');
  return p || dataVar;
}

/**
 * ajv's first error in words a client can act on: the field, what it must be (the schema's
 * description when it has one), and what was sent.
 */
export function schemaErrorMessage(
  errors: FastifySchemaValidationError[],
  dataVar: string,
): string {
  const e = errors[errors.length - 1] as FastifySchemaValidationError & {
    parentSchema?: { description?: string; properties?: Record<string, unknown> };
    data?: unknown;
  };
  if (!e) return `The ${dataVar} is not valid.`;
  const field = fieldName(e.instancePath, dataVar);
  const params = e.params as Record<string, unknown>;
  if (dataVar === 'body' && e.instancePath === '' && e.keyword === 'type') {
    return 'The body must be a JSON object.';
  }
  if (e.keyword === 'required') {
    const where = e.instancePath ? `${field}.` : '';
    return `${where}${String(params.missingProperty)} is required.`;
  }
  if (e.keyword === 'additionalProperties') {
    const known = Object.keys(e.parentSchema?.properties ?? {});
    return (
      `Unknown field ${String(params.additionalProperty)}` +
      `${e.instancePath ? ` in ${field}` : ''}; send ${known.join(', ') || 'no fields'}.`
    );
  }
  const what = e.parentSchema?.description ?? e.message ?? 'valid';
  const found = e.data === undefined ? '' : `; found ${JSON.stringify(e.data).slice(0, 80)}`;
  return `${field} must be ${what.replace(/^must be /, '')}${found}.`;
}

/** Fastify's own request errors (parsing, size, validation) in the API's words. */
function requestError(e: FastifyError, bodyLimit: number): { status: number; message: string } {
  if (e.validation) return { status: 400, message: e.message };
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: 'Send a JSON body (Content-Type: application/json).' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: `The request body exceeds ${bodyLimit} bytes.` };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'The body is empty; send a JSON object.' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, message: `The body is not valid JSON (${e.message}).` };
  }
  const status = e.statusCode ?? 500;
  return status < 500 ? { status, message: e.message } : { status: 500, message: INTERNAL_ERROR };
}

const UNAUTHORIZED_WITH_TOKEN =
  "The token is wrong or its session has expired. Reload the viewer page to start a new session; scripts use RRL_API_TOKEN or the server's <dataDir>/api-token.";
const UNAUTHORIZED =
  'This API call needs a session: open the viewer page of this server (it starts one), or send "Authorization: Bearer <token>" (RRL_API_TOKEN or the server\'s <dataDir>/api-token).';

/** `/api/jobs/{jobId}` → `/api/jobs/:jobId` */
const fastifyPath = (p: string): string => p.replace(/\{(\w+)\}/g, ':$1');

function matches(template: string, pathname: string): boolean {
  const re = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, '[^/]+');
  return new RegExp(`^${re}$`).test(pathname);
}

/** Registers the API routes, their guard, the 404/405 answers and the OpenAPI document. */
export async function registerApi(app: FastifyInstance, d: ApiRouteDeps): Promise<void> {
  for (const s of SHARED_SCHEMAS) app.addSchema(s);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'RRL-MedSAM companion server API',
        version: '1',
        description:
          'Tasks, training jobs and models of the RRL-MedSAM one-shot segmentation server. Every call ' +
          'except health, session and this document needs the viewer session (cookie rrl_session, set ' +
          'when the viewer page loads, or the session token from /api/session) or ' +
          '`Authorization: Bearer <API token>` (the event stream also accepts `?access_token=`); ' +
          "scripts use RRL_API_TOKEN or the server's `<dataDir>/api-token`. Requests " +
          'from other origins are refused. Records hold DICOM UIDs only, never patient identifiers.',
      },
      servers: [{ url: '/' }],
      security: [{ bearer: [] }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    refResolver: {
      buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`),
    },
    transformObject: (doc) => ({
      ...('openapiObject' in doc ? doc.openapiObject : {}),
      'x-series-limits': SERIES_LIMITS,
    }),
  });
  d.api.openApi = () => app.swagger();

  /** The cross-origin check for every /api/* request, then the session/token check. */
  const guard =
    (def: Pick<RouteDef, 'auth' | 'path'> | undefined) =>
    async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      const problem = crossOriginProblem(request.raw, d.listenHost());
      if (problem) return replyError(reply, 403, problem);
      if (!def?.auth) return undefined;
      const allowQuery = def.path.endsWith('/events');
      if (d.authorized(request.raw, allowQuery)) return undefined;
      return replyError(
        reply,
        401,
        requestToken(request.raw, allowQuery) ? UNAUTHORIZED_WITH_TOKEN : UNAUTHORIZED,
        { 'WWW-Authenticate': 'Bearer realm="rrl-medsam"' },
      );
    };

  /** Runs a route's handler on the raw request/response with the validated parts. */
  const run = (def: RouteDef) => (request: FastifyRequest, reply: FastifyReply) =>
    serveRaw(request, reply, d.log, (req, res) =>
      def.handler({
        req,
        res,
        params: (request.params ?? {}) as Record<string, string>,
        query: new URL(req.url ?? '/', 'http://x').searchParams,
        body: request.body,
      }),
    );

  const route = (scope: FastifyInstance, def: RouteDef): void => {
    const key = `${def.method} ${def.path}`;
    const schema = ROUTE_SCHEMAS[key];
    if (!schema) throw new Error(`route ${key} has no schema in schemas.ts`);
    scope.route({
      method: def.method,
      url: fastifyPath(def.path),
      schema,
      onRequest: guard(def),
      ...(def.optionalBody
        ? {
            preValidation: async (request: FastifyRequest) => {
              request.body ??= {};
            },
          }
        : {}),
      handler: run(def),
    });
  };

  const onError = (e: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
    const r = requestError(e, d.bodyLimit);
    if (r.status >= 500) d.log.error('request failed', { error: e.message });
    return replyError(reply, r.status, r.message);
  };

  // JSON routes: application/json only (415 otherwise), at most maxRequestBytes.
  await app.register(async (scope) => {
    scope.removeContentTypeParser('text/plain');
    scope.setErrorHandler(onError);
    for (const def of d.api.routes) if (!def.stream) route(scope, def);
  });

  // Upload routes read their own body (any type: the handler checks it) and, in the same scope,
  // the answers to paths and methods no route has.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    scope.setErrorHandler(onError);
    for (const def of d.api.routes) if (def.stream) route(scope, def);
    scope.route({
      method: 'OPTIONS',
      url: '/api/*',
      schema: { hide: true },
      onRequest: guard(undefined),
      // Same-origin callers never need a preflight; nothing is granted to anyone else.
      handler: (_request, reply) =>
        reply.code(204).header('Allow', 'GET, HEAD, POST, PATCH, DELETE').send(),
    });
    scope.route({
      method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      url: '/api/*',
      schema: { hide: true },
      onRequest: guard(undefined),
      handler: (request, reply) => {
        const pathname = (request.raw.url ?? '/').split('?')[0] ?? '/';
        const method = request.method;
        if (pathname === '/api/health') {
          return replyError(reply, 405, `${method} is not supported on ${pathname}; use GET.`, {
            Allow: 'GET, HEAD',
          });
        }
        const allowed = [
          ...new Set(d.api.routes.filter((r) => matches(r.path, pathname)).map((r) => r.method)),
        ];
        if (allowed.length === 0) {
          return replyError(
            reply,
            404,
            `No API endpoint ${pathname}. GET /api/openapi.json lists them.`,
          );
        }
        return replyError(
          reply,
          405,
          `${method} is not supported on ${pathname}; use ${allowed.join(', ')}.`,
          { Allow: allowed.join(', ') },
        );
      },
    });
  });
}
