/**
 * The chosen task's activity: its model versions (the viewer uses the default, or the newest
 * after a training) and its running or last job, followed live. Other tabs' changes (tasks, jobs,
 * models) are picked up every SYNC_INTERVAL_MS while the tab is visible.
 */
import { useCallback, useEffect, useState } from 'react';
import type { ModelVersion } from '../api/client.js';
import { ACTIVE } from './JobSection.js';
import type { TrainingDeps } from './TrainingSection.js';
import { message, sameJson, useEvery } from './trainingHooks.js';
import { useJobFollow } from './useJobFollow.js';

/** How often a visible panel looks for what other tabs did (new tasks, jobs, models). */
export const SYNC_INTERVAL_MS = 5000;

export function useTaskActivity(
  deps: TrainingDeps,
  taskId: string,
  loadTasks: () => Promise<unknown>,
  setError: (m: string) => void,
) {
  const { api } = deps;
  const [models, setModels] = useState<ModelVersion[]>([]);
  /** The task's versions; the viewer uses its default (or `force`: after a training). */
  const refreshModels = useCallback(
    async (t: string, force = false) => {
      const list = await api.taskModels(t);
      setModels((cur) => (sameJson(cur, list) ? cur : list));
      const pick = list.find((m) => m.default)?.id ?? list[list.length - 1]?.id;
      if (pick && (force || !list.some((m) => m.id === deps.selectedModelId))) {
        await deps.useModel(pick);
      }
    },
    [api, deps],
  );

  const { job, progress, losses, log, followOnly, jobRef } = useJobFollow(
    api,
    async (done) => {
      if (done.status === 'succeeded') {
        await loadTasks();
        await refreshModels(done.taskId, true);
      }
    },
    setError,
  );

  // When the task changes: its models, and its running (or last) job — also in a second tab.
  useEffect(() => {
    if (!taskId) return;
    let live = true;
    refreshModels(taskId).catch((e: unknown) => setError(message(e)));
    api
      .jobs(taskId)
      .then((jobs) => live && followOnly(jobs.find(ACTIVE) ?? jobs[jobs.length - 1]))
      .catch((e: unknown) => setError(message(e)));
    return () => {
      live = false;
      followOnly(undefined);
    };
  }, [taskId]);

  // What other tabs (or scripts) did: tasks, model versions, a job started elsewhere.
  useEvery(SYNC_INTERVAL_MS, () => {
    loadTasks().catch(() => undefined);
    if (!taskId) return;
    refreshModels(taskId).catch(() => undefined);
    const shown = jobRef.current;
    if (shown && ACTIVE(shown)) return;
    api
      .jobs(taskId)
      .then((jobs) => {
        const active = jobs.find(ACTIVE);
        if (active && active.id !== jobRef.current?.id) followOnly(active);
      })
      .catch(() => undefined);
  });

  return { models, setModels, refreshModels, job, progress, losses, log, followOnly };
}
