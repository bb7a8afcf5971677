/**
 * The training plans of `models/plans`: read by name, parsed, and held to the bounds no job may
 * exceed whatever a plan file says. One place for the API (task and job creation, the plan list)
 * and the training job itself.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

import { derivePlan, type VolumeGeometry } from '@rrl/models/rrl/derivePlan.js';
import { parsePlan, type RrlPlan } from '@rrl/models/rrl/plan.js';
import { plannedStages } from '@rrl/models/rrl/pipeline.js';
import { REPO_ROOT } from '../config.js';

/** Where the plans live. */
export const PLANS_DIR = path.join(REPO_ROOT, 'models', 'plans');

/** A plan that cannot be used (unknown, invalid, out of bounds): 422 with this message. */
export class PlanRefusal extends Error {
  override name = 'PlanRefusal';
}

/** Limits no job may exceed, whatever a plan file says: a job that asks more is refused (422). */
export const PLAN_BOUNDS = {
  classes: 64,
  gridVoxels: 256 * 256 * 256,
  stepsPerStage: 200_000,
  totalSteps: 1_000_000,
};

/** The steps a plan's schedule asks for, per stage. */
function stageSteps(schedule: unknown): [string, number][] {
  return Object.entries((schedule ?? {}) as Record<string, { steps?: unknown } | undefined>)
    .map(([stage, st]): [string, unknown] => [stage, st?.steps])
    .filter((x): x is [string, number] => typeof x[1] === 'number');
}

/** Why a plan exceeds PLAN_BOUNDS, or undefined. */
export function planBoundsProblem(plan: {
  classes: number;
  grid: readonly number[];
  schedule: unknown;
}): string | undefined {
  if (plan.classes > PLAN_BOUNDS.classes) {
    return `${plan.classes} classes (at most ${PLAN_BOUNDS.classes})`;
  }
  const voxels = plan.grid.reduce((a, b) => a * b, 1);
  if (voxels > PLAN_BOUNDS.gridVoxels) {
    return `a ${plan.grid.join('×')} grid has ${voxels} voxels (at most ${PLAN_BOUNDS.gridVoxels})`;
  }
  let total = 0;
  for (const [stage, steps] of stageSteps(plan.schedule)) {
    if (steps > PLAN_BOUNDS.stepsPerStage) {
      return `stage ${stage} asks for ${steps} steps (at most ${PLAN_BOUNDS.stepsPerStage})`;
    }
    total += steps;
  }
  if (total > PLAN_BOUNDS.totalSteps) {
    return `${total} steps in all (at most ${PLAN_BOUNDS.totalSteps})`;
  }
  return undefined;
}

/** A plan's content (as a task stores it), parsed and within PLAN_BOUNDS; else a PlanRefusal. */
export function planFromContent(raw: unknown, name: string): RrlPlan {
  let plan: RrlPlan;
  try {
    plan = parsePlan(raw);
  } catch (e) {
    throw new PlanRefusal(`The plan ${name} is not valid: ${(e as Error).message}`);
  }
  const problem = planBoundsProblem(plan);
  if (problem) throw new PlanRefusal(`The plan ${name} is out of bounds: ${problem}.`);
  return plan;
}

/**
 * `models/plans/<name>.json`: its content and the plan parsed and within PLAN_BOUNDS; else a
 * PlanRefusal that says why.
 */
export async function readPlanFile(name: string): Promise<{ content: unknown; plan: RrlPlan }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path.join(PLANS_DIR, `${name}.json`), 'utf8'));
  } catch {
    const known = (await readdir(PLANS_DIR).catch(() => [] as string[]))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5));
    throw new PlanRefusal(`There is no plan ${name}; the installed plans are ${known.join(', ')}.`);
  }
  return { content: raw, plan: planFromContent(raw, name) };
}

/** `models/plans/<name>.json`, parsed and within PLAN_BOUNDS; else a PlanRefusal that says why. */
export async function loadPlanOrThrow(name: string): Promise<RrlPlan> {
  return (await readPlanFile(name)).plan;
}

/** The training steps a job of this plan runs (the stages it does not skip; students per fold). */
export function trainingSteps(plan: RrlPlan): number {
  return plannedStages(plan)
    .filter((s) => s.stage !== 'export')
    .reduce((a, s) => a + s.steps, 0);
}

export interface PlanSummary {
  name: string;
  classes: number;
  grid: number[];
  steps: number;
  description?: string;
}

/** The usable plans (an unreadable or out-of-bounds one is not offered), by name. */
export async function planSummaries(): Promise<PlanSummary[]> {
  const names = (await readdir(PLANS_DIR)).filter((f) => f.endsWith('.json')).sort();
  const plans: PlanSummary[] = [];
  for (const f of names) {
    const name = f.slice(0, -5);
    try {
      const plan = await loadPlanOrThrow(name);
      const steps = trainingSteps(plan);
      plans.push({
        name,
        classes: plan.classes,
        grid: [...plan.grid],
        steps,
        ...(plan.description ? { description: plan.description } : {}),
      });
    } catch {
      // not offered
    }
  }
  return plans;
}

/**
 * The plan name that asks for a plan derived from the task's atlas (grid, spacing, depth; the
 * rest from the measured hippocampus plan: models/src/rrl/derivePlan.ts) instead of a file.
 */
export const DERIVED_PLAN = 'auto';

/** A plan derived from an atlas: what a task stores and what the panel shows before training. */
export interface DerivedPlanPreview extends PlanSummary {
  name: typeof DERIVED_PLAN;
  /** Voxel spacing of the grid, mm [x, y, z]. */
  spacing: number[];
  /** One sentence per rule applied, with the numbers. */
  reasons: string[];
  /** The plan as the task stores it. */
  content: unknown;
}

/**
 * The plan derived from the atlas's geometry for `labels` labels, within PLAN_BOUNDS; a
 * PlanRefusal saying why when the atlas cannot be trained on (e.g. too few voxels on an axis).
 */
export function derivePlanForAtlas(atlas: VolumeGeometry, labels: number): DerivedPlanPreview {
  let derived;
  try {
    derived = derivePlan({ atlas, unlabeled: [], labels });
  } catch (e) {
    throw new PlanRefusal(
      `No plan can be derived from this atlas: ${(e as Error).message.replace(/^derivePlan: /, '')}`,
    );
  }
  const content = JSON.parse(JSON.stringify(derived.plan)) as unknown;
  const plan = planFromContent(content, DERIVED_PLAN);
  return {
    name: DERIVED_PLAN,
    classes: plan.classes,
    grid: [...plan.grid],
    steps: trainingSteps(plan),
    ...(plan.description ? { description: plan.description } : {}),
    spacing: [...plan.preprocess.spacing],
    reasons: derived.reasons,
    content,
  };
}
