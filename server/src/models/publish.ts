/**
 * Publishing a trained model: the last step of the training route (API → job runner → trainer →
 * here). The job's model folder becomes the task's next version with its model card (training
 * data, plan version, the provider the training really used, teacher, stages, hold-out
 * evaluation), and the task's default changes when the new model's hold-out Dice is not worse
 * (promotion.ts).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import type { ModelCard } from '@rrl/core/api.js';
import type { ModelPublisher } from '../jobs/runner.js';
import type { Store } from '../store/db.js';
import { decideDefault, type EvaluationSummary } from './promotion.js';
import type { ModelRegistry } from './registry.js';

export function makePublisher(o: {
  models: ModelRegistry;
  store: Store;
  dataDir: string;
}): ModelPublisher {
  return async (job, task, modelDir) => {
    const started = job.startedAt ?? o.store.getJob(job.id)?.startedAt;
    const readJsonFile = async (f: string): Promise<unknown> => {
      try {
        return JSON.parse(await readFile(f, 'utf8')) as unknown;
      } catch {
        return undefined;
      }
    };
    const workDir = path.join(o.dataDir, 'jobs', job.id);
    const evaluation = (await readJsonFile(path.join(modelDir, 'evaluation.json'))) as
      EvaluationSummary | undefined;
    const current = o.store.getTask(task.id)?.defaultModel;
    const currentCard = current
      ? await o.models.modelCard(current).catch(() => undefined)
      : undefined;
    const decision = decideDefault(
      current && currentCard
        ? {
            id: current,
            ...(currentCard.evaluation
              ? { evaluation: currentCard.evaluation as EvaluationSummary }
              : {}),
          }
        : undefined,
      evaluation ? { evaluation } : {},
    );
    const stages = (await readJsonFile(path.join(workDir, 'state.json'))) as
      Record<string, unknown> | undefined;
    const card: ModelCard = {
      job: job.id,
      createdAt: new Date().toISOString(),
      trainingData: {
        atlas: task.atlas,
        unlabeledSeries: job.series,
        selection: job.selection,
        holdout: task.holdout,
      },
      parameters: {
        plan: task.plan,
        planVersion: task.planVersion ?? null,
        planJson: (await readJsonFile(path.join(workDir, 'plan.json'))) ?? null,
        provider: job.provider,
        // What the pipeline actually ran on (the request may say "auto").
        providerUsed: typeof stages?.provider === 'string' ? stages.provider : null,
        teacher: (stages?.teacher as string | undefined) ?? null,
      },
      trainingSeconds: started ? Math.round((Date.now() - Date.parse(started)) / 1000) : null,
      stages: stages ?? null,
      evaluation: evaluation ?? null,
      promotion: { ...decision, decidedAt: new Date().toISOString() },
    };
    const modelId = await o.models.publishVersion(
      task.id,
      modelDir,
      card,
      `trained by job ${job.id}`,
    );
    if (decision.promote) o.store.updateTask(task.id, { defaultModel: modelId });
    return { modelId, notes: [`${modelId}: ${decision.reason}`] };
  };
}
