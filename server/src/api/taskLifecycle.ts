/**
 * A task's life after its creation: rename, change of plan (a new stored plan version that the
 * next training uses), archive and restore, delete (with its models, jobs and job folders), its
 * hold-out series (labelled series new models are evaluated on), and the choice of its default
 * model (promote a candidate, roll back to an earlier version).
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';

import type { Logger } from '../log.js';
import type { ModelRegistry } from '../models/registry.js';
import type { DicomWebClient } from '../pacs/dicomweb.js';
import { AtlasError, loadAtlas } from '../jobs/atlas.js';
import { holdoutClassMap } from '../jobs/evaluate.js';
import { DERIVED_PLAN, derivePlanForAtlas, type DerivedPlanPreview } from '../jobs/plans.js';
import type { Store, TaskRecord } from '../store/db.js';
import { HttpError, planMisfit } from './request.js';
import type { HoldoutBody, TaskPatchBody } from './schemas.js';
import { requireTeacher, type TeacherDeps } from './teachers.js';

export interface PlanCheck {
  classes?: number;
  /** The plan's content, stored with the task when known. */
  content?: unknown;
}

export interface TaskLifecycleDeps {
  store: Store;
  models: ModelRegistry;
  client: DicomWebClient;
  log: Logger;
  dataDir: string;
  teachers: TeacherDeps;
  checkPlan(name: string): Promise<PlanCheck>;
}

/** What a task stores of a derived plan. */
export function derivedCheck(d: DerivedPlanPreview): PlanCheck {
  return { classes: d.classes, content: d.content };
}

const ACTIVE = new Set(['queued', 'running']);

export function getTaskOr404(store: Store, id: string | undefined): TaskRecord {
  const t = id ? store.getTask(id) : undefined;
  if (!t) throw new HttpError(404, `No task ${id ?? ''}. GET /api/tasks lists the tasks.`);
  return t;
}

/** PATCH /api/tasks/{id}: { name?, plan?, teacher?, archived? } (TaskPatch). The updated task. */
export async function patchTask(
  d: TaskLifecycleDeps,
  id: string | undefined,
  body: TaskPatchBody,
): Promise<TaskRecord> {
  const task = getTaskOr404(d.store, id);
  const name = body.name?.trim();
  let plan: { name: string; check: PlanCheck } | undefined;
  if (body.plan !== undefined) {
    const planName = body.plan;
    // "auto": derived again from the task's atlas (its geometry and the task's labels).
    const check: PlanCheck =
      planName === DERIVED_PLAN
        ? derivedCheck(
            derivePlanForAtlas(
              (await loadAtlas(d.client, task.atlas)).volume.geometry,
              task.labels.length,
            ),
          )
        : await d.checkPlan(planName);
    const misfit = planMisfit(planName, check, task.labels.length);
    if (misfit)
      throw new HttpError(422, `${misfit} but task ${task.id} has ${task.labels.length}.`);
    plan = { name: planName, check };
  }
  // The teacher lives in the plan content: a new plan version with it set (or removed).
  if (body.teacher !== undefined) {
    const teacher =
      body.teacher === null ? null : (await requireTeacher(d.teachers, body.teacher)).id;
    const base = plan ?? { name: task.plan, check: { content: task.planContent } };
    if (base.check.content === undefined || base.check.content === null) {
      throw new HttpError(422, `Task ${task.id}'s plan has no stored content to set a teacher in.`);
    }
    const { teacher: _old, ...rest } = base.check.content as Record<string, unknown>;
    plan = {
      name: base.name,
      check: { ...base.check, content: teacher ? { ...rest, teacher } : rest },
    };
  } else if (plan && task.teacher && plan.check.content) {
    // a new plan keeps the task's teacher
    plan.check = {
      ...plan.check,
      content: { ...(plan.check.content as object), teacher: task.teacher },
    };
  }
  const now = new Date().toISOString();
  d.store.db.transaction(() => {
    d.store.updateTask(task.id, {
      ...(name !== undefined ? { name } : {}),
      ...(body.archived !== undefined ? { archivedAt: body.archived ? now : null } : {}),
    });
    if (plan) d.store.addTaskPlan(task.id, plan.name, plan.check.content ?? null, now);
  })();
  d.log.info('task changed', {
    task: task.id,
    ...(name !== undefined ? { renamed: true } : {}),
    ...(plan ? { plan: plan.name } : {}),
    ...(body.teacher !== undefined
      ? { teacher: typeof body.teacher === 'string' ? body.teacher : null }
      : {}),
    ...(body.archived !== undefined ? { archived: body.archived } : {}),
  });
  return getTaskOr404(d.store, task.id);
}

/**
 * DELETE /api/tasks/{id}?confirm={id}: the task, its published models, its jobs (records, logs,
 * work folders). Refused while one of its jobs is queued or running.
 */
export async function deleteTask(
  d: TaskLifecycleDeps,
  id: string | undefined,
  confirm: string | null,
): Promise<{ task: string; removedModels: string[]; removedJobs: number }> {
  const task = getTaskOr404(d.store, id);
  if (confirm !== task.id) {
    throw new HttpError(
      400,
      `Deleting task ${task.id} removes its models and jobs for good: repeat its id as ?confirm=${task.id}.`,
    );
  }
  const jobs = d.store.listJobs({ taskId: task.id });
  const active = jobs.find((j) => ACTIVE.has(j.status));
  if (active) {
    throw new HttpError(
      409,
      `Job ${active.id} of task ${task.id} is ${active.status}: cancel it before deleting the task.`,
    );
  }
  d.store.deleteTask(task.id);
  for (const j of jobs) {
    await rm(path.join(d.dataDir, 'jobs', j.id), { recursive: true, force: true });
  }
  const removedModels = await d.models.removeTaskVersions(task.id);
  d.log.info('task deleted', { task: task.id, models: removedModels.length, jobs: jobs.length });
  return { task: task.id, removedModels, removedJobs: jobs.length };
}

/** POST /api/tasks/{id}/holdout: { studyUID, seriesUID, segSeriesUID? } → the updated task. */
export async function addHoldout(
  d: TaskLifecycleDeps,
  id: string | undefined,
  ref: HoldoutBody,
): Promise<TaskRecord> {
  const task = getTaskOr404(d.store, id);
  if (ref.seriesUID === task.atlas.seriesUID || ref.studyUID === task.atlas.studyUID) {
    throw new HttpError(
      422,
      'The atlas study cannot be a hold-out: a model is trained on it. Choose another labelled study.',
    );
  }
  if (task.holdout.some((h) => h.seriesUID === ref.seriesUID)) {
    throw new HttpError(409, `Series ${ref.seriesUID} is already a hold-out of task ${task.id}.`);
  }
  const loaded = await loadAtlas(d.client, ref);
  if (loaded.volume.modality !== task.modality) {
    throw new AtlasError(
      `Series ${ref.seriesUID} is ${loaded.volume.modality}; task ${task.id} segments ${task.modality}.`,
    );
  }
  const lut = holdoutClassMap(task.labels, loaded.segments);
  const matched = new Set<number>();
  for (const s of loaded.segments) if (lut[s.labelValue]) matched.add(lut[s.labelValue] ?? 0);
  if (matched.size === 0) {
    throw new AtlasError(
      `The SEG of series ${ref.seriesUID} labels none of the task's structures (${task.labels
        .map((l) => l.name)
        .join(', ')}): name its segments as the atlas does.`,
    );
  }
  d.store.updateTask(task.id, {
    holdout: [...task.holdout, { ...ref, segSeriesUID: loaded.segSeriesUID }],
  });
  d.log.info('hold-out added', { task: task.id, series: ref.seriesUID, labels: matched.size });
  return getTaskOr404(d.store, task.id);
}

/** DELETE /api/tasks/{id}/holdout/{seriesUID} → the updated task. */
export function removeHoldout(
  d: TaskLifecycleDeps,
  id: string | undefined,
  seriesUID: string | undefined,
): TaskRecord {
  const task = getTaskOr404(d.store, id);
  if (!task.holdout.some((h) => h.seriesUID === seriesUID)) {
    throw new HttpError(404, `Series ${seriesUID ?? ''} is not a hold-out of task ${task.id}.`);
  }
  d.store.updateTask(task.id, { holdout: task.holdout.filter((h) => h.seriesUID !== seriesUID) });
  return getTaskOr404(d.store, task.id);
}

/**
 * POST /api/tasks/{id}/default: { modelId } → the task. Promotes a candidate or rolls back to an
 * earlier version (any published version of the task).
 */
export async function setDefaultModel(
  d: TaskLifecycleDeps,
  id: string | undefined,
  modelId: string,
): Promise<TaskRecord> {
  const task = getTaskOr404(d.store, id);
  const versions = await d.models.versions(task.id);
  if (!versions.some((m) => m.id === modelId)) {
    throw new HttpError(
      404,
      `Model ${modelId} is not a published version of task ${task.id} (${versions.map((m) => m.id).join(', ') || 'none yet'}).`,
    );
  }
  const previous = task.defaultModel;
  d.store.updateTask(task.id, { defaultModel: modelId });
  d.log.info('default model set', { task: task.id, model: modelId, previous: previous ?? null });
  return getTaskOr404(d.store, task.id);
}
