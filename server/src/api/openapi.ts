/**
 * The API's OpenAPI 3.1 document, written by hand (served at /api/openapi.json). A test checks
 * that every route the router knows is listed here.
 */
import { PROVIDER_SETTINGS } from '@rrl/models/engine/runtime/providerChoice.js';
import { SERIES_LIMITS } from '../jobs/validate.js';

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, description: string): Json => ({
  description,
  content: { 'application/json': { schema } },
});
const err = (description: string): Json => json(ref('Error'), description);
const pathParam = (name: string, description: string): Json => ({
  name,
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description,
});
const common401 = { '401': err('No or wrong token'), '403': err('Cross-origin request') };

const SeriesRef = {
  type: 'object',
  required: ['studyUID', 'seriesUID'],
  properties: { studyUID: { type: 'string' }, seriesUID: { type: 'string' } },
};

export const OPENAPI: Json = {
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
  paths: {
    '/api/health': {
      get: {
        summary: 'Server, PACS and models health',
        security: [],
        responses: { '200': json({ type: 'object' }, 'Health report') },
      },
    },
    '/api/openapi.json': {
      get: {
        summary: 'This document',
        security: [],
        responses: { '200': json({ type: 'object' }, 'OpenAPI 3.1 document') },
      },
    },
    '/api/session': {
      get: {
        summary:
          'A session token for the viewer this server serves (same-origin browser requests with the session cookie only)',
        security: [],
        responses: {
          '200': json(
            {
              type: 'object',
              properties: {
                token: { type: 'string' },
                tokenType: { const: 'Bearer' },
                expiresAt: { type: 'string', format: 'date-time' },
              },
            },
            'Token',
          ),
          '401': err('No valid session cookie (reload the viewer page)'),
          '403': err('Not a same-origin browser request'),
        },
      },
    },
    '/api/capabilities': {
      get: {
        summary: 'Training providers (CPU, WebGPU, CUDA) available and in use, job slots, limits',
        responses: { '200': json(ref('Capabilities'), 'Capabilities'), ...common401 },
      },
    },
    '/api/plans': {
      get: {
        summary:
          'Training plans (models/plans): name, classes (= task labels + 1), grid, total steps',
        responses: {
          '200': json(
            {
              type: 'object',
              properties: {
                plans: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      name: { type: 'string' },
                      classes: { type: 'integer' },
                      grid: { type: 'array', items: { type: 'integer' } },
                      steps: { type: 'integer' },
                    },
                  },
                },
              },
            },
            'Plans',
          ),
          ...common401,
        },
      },
    },
    '/api/pacs/series': {
      get: {
        summary: 'Find series in the PACS (QIDO-RS) with a count preview',
        parameters: [
          { name: 'modality', in: 'query', schema: { type: 'string' } },
          {
            name: 'description',
            in: 'query',
            schema: { type: 'string' },
            description: 'Substring of the series description',
          },
          { name: 'from', in: 'query', schema: { type: 'string', format: 'date' } },
          { name: 'to', in: 'query', schema: { type: 'string', format: 'date' } },
          {
            name: 'limit',
            in: 'query',
            schema: { type: 'integer' },
            description: 'Most series listed (count is always the total)',
          },
          {
            name: 'offset',
            in: 'query',
            schema: { type: 'integer' },
            description: 'Series to skip (paging; series are sorted by study date, then UID)',
          },
        ],
        responses: {
          '200': json(
            {
              type: 'object',
              properties: {
                count: { type: 'integer' },
                offset: { type: 'integer' },
                limit: { type: 'integer', description: 'Most series a job may use' },
                series: { type: 'array', items: ref('FoundSeries') },
              },
            },
            'Matching series',
          ),
          '400': err('Bad query'),
          '502': err('PACS failure'),
          ...common401,
        },
      },
    },
    '/api/tasks': {
      get: {
        summary: 'List tasks (archived ones with ?archived=1)',
        parameters: [
          {
            name: 'archived',
            in: 'query',
            required: false,
            description: '1: archived tasks too',
            schema: { type: 'string', enum: ['1'] },
          },
        ],
        responses: {
          '200': json(
            { type: 'object', properties: { tasks: { type: 'array', items: ref('Task') } } },
            'Tasks',
          ),
          ...common401,
        },
      },
      post: {
        summary: 'Create a task from an atlas in the PACS (image series + the SEG that labels it)',
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('TaskCreate') } },
        },
        responses: {
          '201': json(ref('Task'), 'Created'),
          '400': err('Bad request'),
          '404': err('Atlas series or SEG not found'),
          '409': err('Task exists'),
          '413': err('Body too large'),
          '422': err('No SEG for the atlas series, SEG does not reference it, or empty'),
          '502': err('PACS failure'),
          ...common401,
        },
      },
    },
    '/api/tasks/{taskId}': {
      get: {
        summary: 'One task',
        parameters: [pathParam('taskId', 'Task id')],
        responses: { '200': json(ref('Task'), 'Task'), '404': err('No such task'), ...common401 },
      },
      patch: {
        summary:
          'Rename, change the plan (stored as a new plan version; the next training uses it), archive or restore a task',
        parameters: [pathParam('taskId', 'Task id')],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: {
                  name: { type: 'string' },
                  plan: { type: 'string' },
                  teacher: {
                    type: ['string', 'null'],
                    description:
                      'An imported teacher id (GET /api/teachers), or null: stage 1 skipped; stored as a new plan version',
                  },
                  archived: { type: 'boolean' },
                },
              },
            },
          },
        },
        responses: {
          '200': json(ref('Task'), 'The updated task'),
          '400': err('Bad field'),
          '404': err('No such task'),
          '422': err('The plan does not fit the task, or no such teacher'),
          ...common401,
        },
      },
      delete: {
        summary: 'Delete a task with its models, jobs and job folders (repeat its id as ?confirm=)',
        parameters: [
          pathParam('taskId', 'Task id'),
          {
            name: 'confirm',
            in: 'query',
            required: true,
            description: 'The task id again',
            schema: { type: 'string' },
          },
        ],
        responses: {
          '200': json({ type: 'object' }, 'What was removed'),
          '400': err('No confirmation'),
          '404': err('No such task'),
          '409': err('A job of the task is queued or running'),
          ...common401,
        },
      },
    },
    '/api/tasks/{taskId}/plans': {
      get: {
        summary: 'The plan versions a task stored (content included), oldest first',
        parameters: [pathParam('taskId', 'Task id')],
        responses: {
          '200': json({ type: 'object' }, 'Plan versions'),
          '404': err('No such task'),
          ...common401,
        },
      },
    },
    '/api/tasks/{taskId}/holdout': {
      post: {
        summary:
          'Add a labelled series (series + SEG, not the atlas) that new models of the task are evaluated on',
        parameters: [pathParam('taskId', 'Task id')],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('SeriesRef') } },
        },
        responses: {
          '200': json(ref('Task'), 'The updated task'),
          '404': err('No such task or series'),
          '409': err('Already a hold-out'),
          '422': err('Not usable: the atlas, another modality, no SEG with the task labels'),
          ...common401,
        },
      },
    },
    '/api/tasks/{taskId}/holdout/{seriesUID}': {
      delete: {
        summary: 'Remove a hold-out series',
        parameters: [pathParam('taskId', 'Task id'), pathParam('seriesUID', 'Series UID')],
        responses: {
          '200': json(ref('Task'), 'The updated task'),
          '404': err('No such task or hold-out'),
          ...common401,
        },
      },
    },
    '/api/tasks/{taskId}/default': {
      post: {
        summary: "Make a published version the task's default (promote or roll back)",
        parameters: [pathParam('taskId', 'Task id')],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['modelId'],
                properties: { modelId: { type: 'string' } },
              },
            },
          },
        },
        responses: {
          '200': json(ref('Task'), 'The updated task'),
          '404': err('No such task or version'),
          ...common401,
        },
      },
    },
    '/api/teachers': {
      get: {
        summary: 'Imported SAM teachers (stage 1 of the training): their cards',
        responses: {
          '200': json(
            { type: 'object', properties: { teachers: { type: 'array', items: ref('Teacher') } } },
            'Teachers, newest first',
          ),
          ...common401,
        },
      },
      post: {
        summary:
          'Import a SAM, MedSAM or MobileSAM checkpoint as published (torch.save file, read without running any code in it) at an input size',
        parameters: [
          {
            name: 'name',
            in: 'query',
            required: true,
            description:
              "The checkpoint's file name (e.g. medsam_vit_b.pth); MedSAM is told from SAM by it",
            schema: { type: 'string' },
          },
          {
            name: 'size',
            in: 'query',
            required: false,
            description: 'Input size in pixels, a multiple of 16 from 64 to 1024 (default 256)',
            schema: { type: 'integer' },
          },
        ],
        requestBody: {
          required: true,
          content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
        },
        responses: {
          '201': json(
            {
              type: 'object',
              properties: { teacher: ref('Teacher'), existed: { type: 'boolean' } },
            },
            'Imported',
          ),
          '200': json({ type: 'object' }, 'The same file at this size was imported before'),
          '400': err('Bad name or size, empty or interrupted upload'),
          '409': err('Another import is running'),
          '413': err('Larger than any SAM checkpoint'),
          '415': err('Not application/octet-stream'),
          '422': err('Not a SAM checkpoint, refused pickle, truncated or damaged file'),
          ...common401,
        },
      },
    },
    '/api/teachers/{teacherId}': {
      delete: {
        summary:
          "Remove an imported teacher and its feature cache (refused while a task's plan names it)",
        parameters: [pathParam('teacherId', 'Teacher id')],
        responses: {
          '200': json({ type: 'object', properties: { removed: { type: 'string' } } }, 'Removed'),
          '404': err('No such teacher'),
          '409': err('A task uses it'),
          ...common401,
        },
      },
    },
    '/api/tasks/{taskId}/models': {
      get: {
        summary:
          'Published model versions of a task: default flag and hold-out Dice of each, and the default',
        parameters: [pathParam('taskId', 'Task id')],
        responses: {
          '200': json({ type: 'object' }, 'Versions, oldest first'),
          '404': err('No such task'),
          ...common401,
        },
      },
    },
    '/api/models/{modelId}': {
      get: {
        summary:
          'Model card: metadata.json, training data UIDs, parameters, training time, evaluation',
        parameters: [pathParam('modelId', 'Model id (task@version)')],
        responses: {
          '200': json(ref('ModelCard'), 'Model card'),
          '404': err('No such model'),
          ...common401,
        },
      },
    },
    '/api/models/{modelId}/model.onnx': {
      get: {
        summary: 'Download the ONNX file (strong ETag = sha256; X-Content-SHA256 header)',
        parameters: [pathParam('modelId', 'Model id (task@version)')],
        responses: {
          '200': { description: 'ONNX bytes', content: { 'application/octet-stream': {} } },
          '304': { description: 'Not modified (If-None-Match)' },
          '404': err('No such model'),
          ...common401,
        },
      },
    },
    '/api/jobs': {
      get: {
        summary: 'List jobs in queue order',
        parameters: [
          { name: 'task', in: 'query', schema: { type: 'string' } },
          { name: 'status', in: 'query', schema: ref('JobStatus') },
        ],
        responses: {
          '200': json(
            { type: 'object', properties: { jobs: { type: 'array', items: ref('Job') } } },
            'Jobs',
          ),
          ...common401,
        },
      },
      post: {
        summary: 'Queue a training job for a task on unlabelled PACS series (by query or UIDs)',
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('JobCreate') } },
        },
        responses: {
          '201': json(ref('Job'), 'Queued'),
          '400': err('Bad request'),
          '404': err('No such task'),
          '413': err('Body too large'),
          '422': err('No series, or more than the server allows per job'),
          ...common401,
        },
      },
    },
    '/api/jobs/{jobId}': {
      get: {
        summary: 'Job status and latest progress',
        parameters: [pathParam('jobId', 'Job id')],
        responses: { '200': json(ref('Job'), 'Job'), '404': err('No such job'), ...common401 },
      },
    },
    '/api/jobs/{jobId}/events': {
      get: {
        summary:
          'Server-sent events: `status`, `progress` (phase, step, loss, ETA), `log`, `end`; heartbeat comments',
        parameters: [
          pathParam('jobId', 'Job id'),
          {
            name: 'access_token',
            in: 'query',
            schema: { type: 'string' },
            description: 'Token for EventSource clients that cannot set headers',
          },
        ],
        responses: {
          '200': { description: 'Event stream', content: { 'text/event-stream': {} } },
          '404': err('No such job'),
          ...common401,
        },
      },
    },
    '/api/jobs/{jobId}/log': {
      get: {
        summary: 'Job log lines (UIDs only; skipped series with their reason)',
        parameters: [
          pathParam('jobId', 'Job id'),
          {
            name: 'after',
            in: 'query',
            schema: { type: 'integer' },
            description: 'Only lines after this number',
          },
          {
            name: 'format',
            in: 'query',
            schema: { type: 'string', enum: ['text'] },
            description: 'text: the log as plain text (one line per entry)',
          },
        ],
        responses: {
          '200': json({ type: 'object' }, 'Log (JSON, or text/plain with format=text)'),
          '404': err('No such job'),
          ...common401,
        },
      },
    },
    '/api/jobs/{jobId}/progress': {
      get: {
        summary:
          'Progress history of a job (phase, step, losses; at most one row per second plus phase changes), oldest first — for loss plots',
        parameters: [pathParam('jobId', 'Job id')],
        responses: {
          '200': json({ type: 'object' }, 'Progress rows'),
          '404': err('No such job'),
          ...common401,
        },
      },
    },
    '/api/jobs/{jobId}/resume': {
      post: {
        summary: 'Resume a cancelled job from its last checkpoint',
        parameters: [pathParam('jobId', 'Job id')],
        responses: {
          '202': json(ref('Job'), 'Queued again'),
          '404': err('No such job'),
          '409': err('Not cancelled, or its task is gone'),
          ...common401,
        },
      },
    },
    '/api/jobs/{jobId}/cancel': {
      post: {
        summary: 'Cancel a queued or running job (no model is published)',
        parameters: [pathParam('jobId', 'Job id')],
        requestBody: {
          required: false,
          content: {
            'application/json': {
              schema: { type: 'object', properties: { reason: { type: 'string' } } },
            },
          },
        },
        responses: {
          '202': json(ref('Job'), 'Cancelled (queued) or stopping (running)'),
          '404': err('No such job'),
          '409': err('Already finished'),
          ...common401,
        },
      },
    },
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: {
        type: 'object',
        properties: {
          error: {
            type: 'object',
            properties: { status: { type: 'integer' }, message: { type: 'string' } },
          },
        },
      },
      SeriesRef,
      FoundSeries: {
        type: 'object',
        properties: {
          studyUID: { type: 'string' },
          seriesUID: { type: 'string' },
          modality: { type: 'string' },
          description: { type: 'string' },
          studyDate: { type: 'string' },
          instances: { type: 'integer' },
        },
      },
      Label: {
        type: 'object',
        properties: {
          value: { type: 'integer' },
          name: { type: 'string' },
          color: { type: 'array', items: { type: 'integer' } },
          category: { type: 'object' },
          type: { type: 'object' },
          modifier: {
            type: 'object',
            description: 'Laterality (SNOMED CT), when the atlas SEG has one',
          },
        },
      },
      Teacher: {
        type: 'object',
        description: 'An imported SAM teacher: the card of its conversion',
        properties: {
          id: { type: 'string' },
          variant: {
            type: 'string',
            description: 'e.g. MedSAM ViT-B, SAM ViT-H, MobileSAM TinyViT',
          },
          family: { type: 'string', enum: ['vit', 'tiny-vit'] },
          sourceFile: { type: 'string' },
          sha256: { type: 'string' },
          inputSize: { type: 'integer' },
          embeddingShape: { type: 'array', items: { type: 'integer' } },
          parameters: { type: 'integer' },
          importedAt: { type: 'string', format: 'date-time' },
          conversionSeconds: { type: 'number' },
          keyPrefix: { type: 'string' },
        },
      },
      Task: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          name: { type: 'string' },
          modality: { type: 'string' },
          atlas: {
            type: 'object',
            properties: {
              studyUID: { type: 'string' },
              seriesUID: { type: 'string' },
              segSeriesUID: { type: 'string' },
            },
          },
          plan: { type: 'string' },
          planVersion: {
            type: 'integer',
            description: 'The stored plan version the next job uses',
          },
          planContent: { type: 'object', description: 'That version of the plan' },
          teacher: {
            type: ['string', 'null'],
            description:
              "The SAM teacher of stage 1 (the plan content's teacher), or null: stage 1 skipped",
          },
          labels: { type: 'array', items: ref('Label') },
          createdAt: { type: 'string', format: 'date-time' },
          archivedAt: { type: 'string', format: 'date-time' },
          defaultModel: { type: 'string', description: 'The model the viewer uses for the task' },
          holdout: { type: 'array', items: ref('SeriesRef') },
          warnings: {
            type: 'array',
            items: { type: 'string' },
            description:
              'At creation only: labels that share a code, colours changed to tell labels apart',
          },
        },
      },
      TaskCreate: {
        type: 'object',
        required: ['name', 'atlas'],
        properties: {
          name: { type: 'string' },
          id: {
            type: 'string',
            pattern: '^[a-z0-9][a-z0-9-]{0,62}$',
            description: 'Default: derived from name',
          },
          modality: { type: 'string', description: "Default: the atlas series' modality" },
          plan: {
            type: 'string',
            description: 'A plan name from models/plans (default hippocampus)',
          },
          teacher: {
            type: ['string', 'null'],
            description:
              'An imported SAM teacher id (GET /api/teachers) for stage 1; absent or null: no teacher, stage 1 skipped',
          },
          atlas: {
            type: 'object',
            required: ['studyUID', 'seriesUID'],
            properties: {
              studyUID: { type: 'string' },
              seriesUID: { type: 'string' },
              segSeriesUID: {
                type: 'string',
                description: "Default: the study's SEG that references the series",
              },
            },
          },
        },
      },
      JobStatus: {
        type: 'string',
        enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled'],
      },
      Progress: {
        type: 'object',
        properties: {
          phase: { type: 'string' },
          stageIndex: { type: 'integer' },
          stageCount: { type: 'integer' },
          step: { type: 'integer' },
          total: { type: 'integer' },
          loss: { type: 'number' },
          metrics: { type: 'object', additionalProperties: { type: 'number' } },
          etaSeconds: { type: 'number' },
          time: { type: 'string', format: 'date-time' },
        },
      },
      Job: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          taskId: { type: 'string' },
          status: ref('JobStatus'),
          seq: { type: 'integer', description: 'Queue order' },
          series: { type: 'array', items: ref('SeriesRef') },
          selection: { type: 'object' },
          provider: { type: 'string' },
          createdAt: { type: 'string' },
          startedAt: { type: 'string' },
          finishedAt: { type: 'string' },
          reason: { type: 'string', description: 'Why it failed or was cancelled' },
          modelId: { type: 'string' },
          progress: ref('Progress'),
          attempts: { type: 'integer' },
        },
      },
      JobCreate: {
        type: 'object',
        required: ['taskId', 'series'],
        properties: {
          taskId: { type: 'string' },
          provider: { type: 'string', enum: [...PROVIDER_SETTINGS] },
          series: {
            oneOf: [
              {
                type: 'object',
                required: ['uids'],
                properties: { uids: { type: 'array', items: ref('SeriesRef') } },
              },
              {
                type: 'object',
                required: ['query'],
                properties: {
                  query: {
                    type: 'object',
                    properties: {
                      modality: { type: 'string' },
                      description: { type: 'string' },
                      from: { type: 'string', format: 'date' },
                      to: { type: 'string', format: 'date' },
                    },
                  },
                },
              },
            ],
          },
        },
      },
      Capabilities: {
        type: 'object',
        properties: {
          providers: { type: 'array', items: { type: 'object' } },
          configured: { type: 'string' },
          inUse: { type: 'array', items: { type: 'object' } },
          slots: { type: 'integer' },
          limits: { type: 'object' },
        },
      },
      ModelCard: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          metadata: { type: 'object' },
          card: { type: 'object' },
        },
      },
    },
  },
  'x-series-limits': SERIES_LIMITS,
};

export function openApiDocument(): Json {
  return OPENAPI;
}
