/**
 * The REST API's schemas (TypeBox): the one source of request validation (Fastify runs them with
 * ajv before a handler sees the request) and of the OpenAPI document (@fastify/swagger builds
 * /api/openapi.json from the routes' schemas). Response schemas document; responses are written
 * by the handlers.
 */
import { Type, type Static, type TSchema, type TString } from 'typebox';

import { PROVIDER_SETTINGS } from '@rrl/models/engine/runtime/providerChoice.js';

// ---- building blocks (patterns as the handlers need them)

/** A DICOM UID: digits and dots, at most 64 characters. */
export const Uid = Type.String({
  pattern: '^[0-9]+(\\.[0-9]+)*$',
  maxLength: 64,
  description: 'DICOM UID (digits and dots)',
});
/** A non-blank string of at most `max` characters. */
export const Text = (max: number, description?: string): TString =>
  Type.String({
    minLength: 1,
    maxLength: max,
    pattern: '\\S',
    ...(description ? { description } : {}),
  });
export const TASK_ID_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
export const PLAN_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$';
const PlanName = Type.String({
  pattern: PLAN_PATTERN,
  description: 'A plan name from models/plans, e.g. "hippocampus"',
});
const TeacherChoice = Type.Union([Type.String({ maxLength: 128 }), Type.Null()], {
  description:
    'An imported SAM teacher id (GET /api/teachers) for stage 1; null: no teacher, stage 1 skipped',
});
const Obj = (description?: string): TSchema =>
  Type.Object({}, { additionalProperties: true, ...(description ? { description } : {}) });

// ---- shared components (named in the OpenAPI document by their $id)

export const ErrorBody = Type.Object(
  { error: Type.Object({ status: Type.Integer(), message: Type.String() }) },
  { $id: 'Error' },
);
export const SeriesRef = Type.Object({ studyUID: Uid, seriesUID: Uid }, { $id: 'SeriesRef' });
export const HoldoutRef = Type.Object(
  { studyUID: Uid, seriesUID: Uid, segSeriesUID: Type.Optional(Uid) },
  {
    $id: 'HoldoutRef',
    description: 'A labelled series and (optional) the SEG that labels it',
  },
);
const FoundSeries = Type.Object(
  {
    studyUID: Type.String(),
    seriesUID: Type.String(),
    modality: Type.String(),
    description: Type.String(),
    studyDate: Type.String(),
    instances: Type.Integer(),
  },
  { $id: 'FoundSeries' },
);
const Label = Type.Object(
  {
    value: Type.Integer(),
    name: Type.String(),
    color: Type.Array(Type.Integer()),
    category: Obj(),
    type: Obj(),
    modifier: Type.Optional(Obj('Laterality (SNOMED CT), when the atlas SEG has one')),
  },
  { $id: 'Label' },
);
const Teacher = Type.Object(
  {
    id: Type.String(),
    variant: Type.String({ description: 'e.g. MedSAM ViT-B, SAM ViT-H, MobileSAM TinyViT' }),
    family: Type.Union([Type.Literal('vit'), Type.Literal('tiny-vit')]),
    sourceFile: Type.String(),
    sha256: Type.String(),
    inputSize: Type.Integer(),
    embeddingShape: Type.Array(Type.Integer()),
    parameters: Type.Integer(),
    importedAt: Type.String({ format: 'date-time' }),
    conversionSeconds: Type.Number(),
    keyPrefix: Type.String(),
  },
  { $id: 'Teacher', description: 'An imported SAM teacher: the card of its conversion' },
);
const Task = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    modality: Type.String(),
    atlas: Type.Object({
      studyUID: Type.String(),
      seriesUID: Type.String(),
      segSeriesUID: Type.String(),
    }),
    plan: Type.String(),
    planVersion: Type.Integer({ description: 'The stored plan version the next job uses' }),
    planContent: Obj('That version of the plan'),
    teacher: Type.Union([Type.String(), Type.Null()], {
      description:
        "The SAM teacher of stage 1 (the plan content's teacher), or null: stage 1 skipped",
    }),
    labels: Type.Array(Type.Ref('Label')),
    createdAt: Type.String({ format: 'date-time' }),
    archivedAt: Type.Optional(Type.String({ format: 'date-time' })),
    defaultModel: Type.Optional(
      Type.String({ description: 'The model the viewer uses for the task' }),
    ),
    holdout: Type.Array(Type.Ref('HoldoutRef')),
    warnings: Type.Optional(
      Type.Array(Type.String(), {
        description:
          'At creation only: labels that share a code, colours changed to tell labels apart',
      }),
    ),
  },
  { $id: 'Task' },
);
export const PlanDerive = Type.Object(
  {
    atlas: Type.Object(
      { studyUID: Uid, seriesUID: Uid, segSeriesUID: Type.Optional(Uid) },
      {
        description:
          "The atlas series; segSeriesUID defaults to the study's SEG that references it",
      },
    ),
  },
  { $id: 'PlanDerive' },
);
export const TaskCreate = Type.Object(
  {
    name: Text(120),
    id: Type.Optional(
      Type.String({
        pattern: TASK_ID_PATTERN,
        description: 'Lower-case letters, digits and dashes; default: derived from name',
      }),
    ),
    modality: Type.Optional(Text(16, "Default: the atlas series' modality")),
    plan: Type.Optional(PlanName),
    teacher: Type.Optional(TeacherChoice),
    atlas: Type.Object(
      {
        studyUID: Uid,
        seriesUID: Uid,
        segSeriesUID: Type.Optional(Uid),
      },
      {
        description:
          "The atlas series; segSeriesUID defaults to the study's SEG that references it",
      },
    ),
  },
  { $id: 'TaskCreate' },
);
export const TaskPatch = Type.Object(
  {
    name: Type.Optional(Text(120)),
    plan: Type.Optional(PlanName),
    teacher: Type.Optional(TeacherChoice),
    archived: Type.Optional(Type.Boolean()),
  },
  {
    $id: 'TaskPatch',
    additionalProperties: false,
    description:
      'Rename, change the plan (a new plan version), set the teacher, archive or restore',
  },
);
export const DefaultModel = Type.Object(
  { modelId: Text(128) },
  { $id: 'DefaultModel', additionalProperties: false },
);
const JobStatus = Type.Union(
  ['queued', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => Type.Literal(s)),
  { $id: 'JobStatus' },
);
const Progress = Type.Object(
  {
    phase: Type.String(),
    stageIndex: Type.Integer(),
    stageCount: Type.Integer(),
    step: Type.Integer(),
    total: Type.Integer(),
    loss: Type.Optional(Type.Number()),
    metrics: Type.Optional(Type.Record(Type.String(), Type.Number())),
    etaSeconds: Type.Optional(Type.Number()),
    time: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { $id: 'Progress' },
);
const Job = Type.Object(
  {
    id: Type.String(),
    taskId: Type.String(),
    status: Type.Ref('JobStatus'),
    seq: Type.Integer({ description: 'Queue order' }),
    series: Type.Array(Type.Ref('SeriesRef')),
    selection: Obj(),
    provider: Type.String(),
    createdAt: Type.String(),
    startedAt: Type.Optional(Type.String()),
    finishedAt: Type.Optional(Type.String()),
    reason: Type.Optional(Type.String({ description: 'Why it failed or was cancelled' })),
    modelId: Type.Optional(Type.String()),
    progress: Type.Optional(Type.Ref('Progress')),
    attempts: Type.Integer(),
  },
  { $id: 'Job' },
);
export const SeriesQuery = Type.Object(
  {
    modality: Type.Optional(Type.String({ maxLength: 16 })),
    description: Type.Optional(Type.String({ maxLength: 64 })),
    from: Type.Optional(Type.String({ format: 'date' })),
    to: Type.Optional(Type.String({ format: 'date' })),
  },
  { additionalProperties: false },
);
export const JobCreate = Type.Object(
  {
    taskId: Text(63),
    provider: Type.Optional(Type.Union(PROVIDER_SETTINGS.map((p) => Type.Literal(p)))),
    series: Type.Union(
      [
        Type.Object({
          uids: Type.Array(Type.Unsafe<Static<typeof SeriesRef>>(Type.Ref('SeriesRef'))),
        }),
        Type.Object({ query: SeriesQuery }),
      ],
      {
        description:
          '{ uids: [{ studyUID, seriesUID }] } or { query: { modality?, description?, from?, to? } }',
      },
    ),
  },
  { $id: 'JobCreate' },
);
export const JobCancel = Type.Object(
  { reason: Type.Optional(Text(500)) },
  { $id: 'JobCancel', additionalProperties: false },
);
const Capabilities = Type.Object(
  {
    providers: Type.Array(Obj()),
    configured: Type.String(),
    inUse: Type.Array(Obj()),
    slots: Type.Integer(),
    limits: Obj(),
  },
  { $id: 'Capabilities' },
);
const ModelCard = Type.Object(
  { id: Type.String(), metadata: Obj(), card: Obj() },
  { $id: 'ModelCard' },
);

/** Every named schema, added to Fastify (for `$ref`) and listed under the OpenAPI components. */
export const SHARED_SCHEMAS: TSchema[] = [
  ErrorBody,
  SeriesRef,
  HoldoutRef,
  FoundSeries,
  Label,
  Teacher,
  Task,
  PlanDerive,
  TaskCreate,
  TaskPatch,
  DefaultModel,
  JobStatus,
  Progress,
  Job,
  JobCreate,
  JobCancel,
  Capabilities,
  ModelCard,
];

export type PlanDeriveBody = Static<typeof PlanDerive>;
export type TaskCreateBody = Static<typeof TaskCreate>;
export type TaskPatchBody = Static<typeof TaskPatch>;
export type JobCreateBody = Static<typeof JobCreate>;
export type HoldoutBody = Static<typeof HoldoutRef>;

// ---- per-route documentation helpers

const ref = (id: string): TSchema => Type.Ref(id);
const err = (description: string): TSchema => Type.Ref('Error', { description });
const json = (schema: TSchema, description: string): TSchema => ({ ...schema, description });
const auth = {
  '401': err('No or wrong token'),
  '403': err('Cross-origin request'),
};
const idParam = (...names: [string, string][]): TSchema =>
  Type.Object(Object.fromEntries(names.map(([n, d]) => [n, Type.String({ description: d })])));
const TaskId = idParam(['taskId', 'Task id']);
const JobId = idParam(['jobId', 'Job id']);
const ModelId = idParam(['modelId', 'Model id (task@version)']);

export interface RouteSchema {
  summary: string;
  params?: TSchema;
  querystring?: TSchema;
  body?: TSchema;
  response: Record<string, TSchema>;
  security?: never[];
  consumes?: string[];
  produces?: string[];
}

/** The documentation and validation of each route, by "METHOD /path/{param}". */
export const ROUTE_SCHEMAS: Record<string, RouteSchema> = {
  'GET /api/health': {
    summary: 'Server, PACS and models health (503 when the product cannot work now)',
    security: [],
    response: { '200': json(Obj(), 'Health report'), '503': json(Obj(), 'Degraded') },
  },
  'GET /api/openapi.json': {
    summary: 'This document',
    security: [],
    response: { '200': json(Obj(), 'OpenAPI 3.1 document') },
  },
  'GET /api/session': {
    summary:
      'A session token for the viewer this server serves (same-origin browser requests with the session cookie only)',
    security: [],
    response: {
      '200': Type.Object(
        {
          token: Type.String(),
          tokenType: Type.Literal('Bearer'),
          expiresAt: Type.String({ format: 'date-time' }),
        },
        { description: 'Token' },
      ),
      '401': err('No valid session cookie (reload the viewer page)'),
      '403': err('Not a same-origin browser request'),
    },
  },
  'GET /api/capabilities': {
    summary: 'Training providers (CPU, WebGPU, CUDA) available and in use, job slots, limits',
    response: { '200': ref('Capabilities'), ...auth },
  },
  'GET /api/plans': {
    summary: 'Training plans (models/plans): name, classes (= task labels + 1), grid, total steps',
    response: {
      '200': Type.Object(
        {
          plans: Type.Array(
            Type.Object({
              name: Type.String(),
              classes: Type.Integer(),
              grid: Type.Array(Type.Integer()),
              steps: Type.Integer(),
            }),
          ),
        },
        { description: 'Plans' },
      ),
      ...auth,
    },
  },
  'POST /api/plans/derive': {
    summary:
      'The plan a task created from this atlas with plan "auto" would train: grid, spacing and depth derived from the atlas geometry, with the reasons',
    body: ref('PlanDerive'),
    response: {
      '200': Type.Object(
        {
          name: Type.Literal('auto'),
          classes: Type.Integer(),
          grid: Type.Array(Type.Integer()),
          spacing: Type.Array(Type.Number()),
          steps: Type.Integer(),
          description: Type.Optional(Type.String()),
          reasons: Type.Array(Type.String()),
        },
        { description: 'The derived plan' },
      ),
      '400': err('Bad request'),
      '404': err('Atlas series or SEG not found'),
      '422': err('No SEG for the atlas series, or no plan can be derived from it'),
      '502': err('PACS failure'),
      ...auth,
    },
  },
  'GET /api/pacs/series': {
    summary: 'Find series in the PACS (QIDO-RS) with a count preview',
    querystring: Type.Object({
      modality: Type.Optional(Type.String()),
      description: Type.Optional(
        Type.String({ description: 'Substring of the series description' }),
      ),
      from: Type.Optional(Type.String({ description: 'Study date from (YYYY-MM-DD)' })),
      to: Type.Optional(Type.String({ description: 'Study date to (YYYY-MM-DD)' })),
      limit: Type.Optional(
        Type.String({ description: 'Most series listed (count is always the total)' }),
      ),
      offset: Type.Optional(
        Type.String({
          description: 'Series to skip (paging; series are sorted by study date, then UID)',
        }),
      ),
    }),
    response: {
      '200': Type.Object(
        {
          count: Type.Integer(),
          offset: Type.Integer(),
          limit: Type.Integer({ description: 'Most series a job may use' }),
          series: Type.Array(ref('FoundSeries')),
        },
        { description: 'Matching series' },
      ),
      '400': err('Bad query'),
      '502': err('PACS failure'),
      ...auth,
    },
  },
  'GET /api/tasks': {
    summary: 'List tasks (archived ones with ?archived=1)',
    querystring: Type.Object({
      archived: Type.Optional(Type.String({ description: '1: archived tasks too' })),
    }),
    response: {
      '200': Type.Object({ tasks: Type.Array(ref('Task')) }, { description: 'Tasks' }),
      ...auth,
    },
  },
  'POST /api/tasks': {
    summary: 'Create a task from an atlas in the PACS (image series + the SEG that labels it)',
    body: ref('TaskCreate'),
    response: {
      '201': ref('Task'),
      '400': err('Bad request'),
      '404': err('Atlas series or SEG not found'),
      '409': err('Task exists'),
      '413': err('Body too large'),
      '415': err('Not JSON'),
      '422': err('No SEG for the atlas series, SEG does not reference it, or empty'),
      '502': err('PACS failure'),
      ...auth,
    },
  },
  'GET /api/tasks/{taskId}': {
    summary: 'One task',
    params: TaskId,
    response: { '200': ref('Task'), '404': err('No such task'), ...auth },
  },
  'PATCH /api/tasks/{taskId}': {
    summary:
      'Rename, change the plan (stored as a new plan version; the next training uses it), set the teacher, archive or restore a task',
    params: TaskId,
    body: ref('TaskPatch'),
    response: {
      '200': ref('Task'),
      '400': err('Bad field'),
      '404': err('No such task'),
      '422': err('The plan does not fit the task, or no such teacher'),
      ...auth,
    },
  },
  'DELETE /api/tasks/{taskId}': {
    summary: 'Delete a task with its models, jobs and job folders (repeat its id as ?confirm=)',
    params: TaskId,
    querystring: Type.Object({
      confirm: Type.Optional(Type.String({ description: 'The task id again (required)' })),
    }),
    response: {
      '200': json(Obj(), 'What was removed'),
      '400': err('No confirmation'),
      '404': err('No such task'),
      '409': err('A job of the task is queued or running'),
      ...auth,
    },
  },
  'GET /api/tasks/{taskId}/plans': {
    summary: 'The plan versions a task stored (content included), oldest first',
    params: TaskId,
    response: { '200': json(Obj(), 'Plan versions'), '404': err('No such task'), ...auth },
  },
  'POST /api/tasks/{taskId}/holdout': {
    summary:
      'Add a labelled series (series + SEG, not the atlas) that new models of the task are evaluated on',
    params: TaskId,
    body: ref('HoldoutRef'),
    response: {
      '200': ref('Task'),
      '404': err('No such task or series'),
      '409': err('Already a hold-out'),
      '422': err('Not usable: the atlas, another modality, no SEG with the task labels'),
      ...auth,
    },
  },
  'DELETE /api/tasks/{taskId}/holdout/{seriesUID}': {
    summary: 'Remove a hold-out series',
    params: idParam(['taskId', 'Task id'], ['seriesUID', 'Series UID']),
    response: { '200': ref('Task'), '404': err('No such task or hold-out'), ...auth },
  },
  'POST /api/tasks/{taskId}/default': {
    summary: "Make a published version the task's default (promote or roll back)",
    params: TaskId,
    body: ref('DefaultModel'),
    response: { '200': ref('Task'), '404': err('No such task or version'), ...auth },
  },
  'GET /api/tasks/{taskId}/models': {
    summary:
      'Published model versions of a task: default flag and hold-out Dice of each, and the default',
    params: TaskId,
    response: { '200': json(Obj(), 'Versions, oldest first'), '404': err('No such task'), ...auth },
  },
  'GET /api/teachers': {
    summary: 'Imported SAM teachers (stage 1 of the training): their cards',
    response: {
      '200': Type.Object({ teachers: Type.Array(ref('Teacher')) }, { description: 'Newest first' }),
      ...auth,
    },
  },
  'POST /api/teachers': {
    summary:
      'Import a SAM, MedSAM or MobileSAM checkpoint as published (torch.save file, read without running any code in it) at an input size',
    consumes: ['application/octet-stream'],
    querystring: Type.Object({
      name: Type.Optional(
        Type.String({
          description:
            "The checkpoint's file name (required; e.g. medsam_vit_b.pth): MedSAM is told from SAM by it",
        }),
      ),
      size: Type.Optional(
        Type.String({
          description: 'Input size in pixels, a multiple of 16 from 64 to 1024 (default 256)',
        }),
      ),
    }),
    response: {
      '201': Type.Object(
        { teacher: ref('Teacher'), existed: Type.Boolean() },
        { description: 'Imported' },
      ),
      '200': json(Obj(), 'The same file at this size was imported before'),
      '400': err('Bad name or size, empty or interrupted upload'),
      '409': err('Another import is running'),
      '413': err('Larger than any SAM checkpoint'),
      '415': err('Not application/octet-stream'),
      '422': err('Not a SAM checkpoint, refused pickle, truncated or damaged file'),
      ...auth,
    },
  },
  'DELETE /api/teachers/{teacherId}': {
    summary:
      "Remove an imported teacher and its feature cache (refused while a task's plan names it)",
    params: idParam(['teacherId', 'Teacher id']),
    response: {
      '200': Type.Object({ removed: Type.String() }, { description: 'Removed' }),
      '404': err('No such teacher'),
      '409': err('A task uses it'),
      ...auth,
    },
  },
  'GET /api/models/{modelId}': {
    summary: 'Model card: metadata.json, training data UIDs, parameters, training time, evaluation',
    params: ModelId,
    response: { '200': ref('ModelCard'), '404': err('No such model'), ...auth },
  },
  'GET /api/models/{modelId}/model.onnx': {
    summary: 'Download the ONNX file (strong ETag = sha256; X-Content-SHA256 header)',
    params: ModelId,
    produces: ['application/octet-stream'],
    response: {
      '200': Type.String({ format: 'binary', description: 'ONNX bytes' }),
      '304': Type.Null({ description: 'Not modified (If-None-Match)' }),
      '404': err('No such model'),
      ...auth,
    },
  },
  'GET /api/jobs': {
    summary: 'List jobs in queue order',
    querystring: Type.Object({
      task: Type.Optional(Type.String()),
      status: Type.Optional(
        Type.String({ description: 'queued, running, succeeded, failed or cancelled' }),
      ),
    }),
    response: {
      '200': Type.Object({ jobs: Type.Array(ref('Job')) }, { description: 'Jobs' }),
      ...auth,
    },
  },
  'POST /api/jobs': {
    summary: 'Queue a training job for a task on unlabelled PACS series (by query or UIDs)',
    body: ref('JobCreate'),
    response: {
      '201': ref('Job'),
      '400': err('Bad request'),
      '404': err('No such task'),
      '413': err('Body too large'),
      '415': err('Not JSON'),
      '422': err('No series, or more than the server allows per job'),
      ...auth,
    },
  },
  'GET /api/jobs/{jobId}': {
    summary: 'Job status and latest progress',
    params: JobId,
    response: { '200': ref('Job'), '404': err('No such job'), ...auth },
  },
  'GET /api/jobs/{jobId}/events': {
    summary:
      'Server-sent events: `status`, `progress` (phase, step, loss, ETA), `log`, `end`; heartbeat comments',
    params: JobId,
    produces: ['text/event-stream'],
    querystring: Type.Object({
      access_token: Type.Optional(
        Type.String({ description: 'Token for EventSource clients that cannot set headers' }),
      ),
    }),
    response: {
      '200': Type.String({ description: 'Event stream' }),
      '404': err('No such job'),
      ...auth,
    },
  },
  'GET /api/jobs/{jobId}/log': {
    summary: 'Job log lines (UIDs only; skipped series with their reason)',
    params: JobId,
    querystring: Type.Object({
      after: Type.Optional(Type.String({ description: 'Only lines after this number' })),
      format: Type.Optional(
        Type.String({ description: 'text: the log as plain text (one line per entry)' }),
      ),
    }),
    response: {
      '200': json(Obj(), 'Log (JSON, or text/plain with format=text)'),
      '404': err('No such job'),
      ...auth,
    },
  },
  'GET /api/jobs/{jobId}/progress': {
    summary:
      'Progress history of a job (phase, step, losses; at most one row per second plus phase changes), oldest first — for loss plots',
    params: JobId,
    response: { '200': json(Obj(), 'Progress rows'), '404': err('No such job'), ...auth },
  },
  'POST /api/jobs/{jobId}/cancel': {
    summary: 'Cancel a queued or running job (no model is published)',
    params: JobId,
    body: ref('JobCancel'),
    response: {
      '202': ref('Job'),
      '404': err('No such job'),
      '409': err('Already finished'),
      ...auth,
    },
  },
  'POST /api/jobs/{jobId}/resume': {
    summary: 'Resume a cancelled job from its last checkpoint',
    params: JobId,
    response: {
      '202': ref('Job'),
      '404': err('No such job'),
      '409': err('Not cancelled, or its task is gone'),
      ...auth,
    },
  },
};
