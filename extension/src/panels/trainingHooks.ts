/**
 * State the training section derives from the viewer and the server: the task list and plans, the open series (re-read
 * every second: a study's SEG display sets arrive after the panel's first render), the live count
 * of the training data query, and the chosen model version's card.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type {
  ApiClient,
  ModelDetails,
  ModelVersion,
  Plan,
  SeriesQuery,
  Task,
} from '../api/client.js';
import type { SeriesCount } from './DataSection.js';
import type { OpenSeries } from './TrainingSection.js';

/** The user-facing text of a failed call (ApiError messages already say what to do). */
export const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export function sameJson<T>(a: T, b: T): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The task list (archived ones on request), the plans, and the chosen task (the newest first). */
export function useTaskList(api: ApiClient, onError: (m: string) => void) {
  const [tasks, setTasks] = useState<Task[]>([]);
  const [showArchived, setShowArchived] = useState(false);
  const [plans, setPlans] = useState<Plan[]>([]);
  const [taskId, setTaskId] = useState('');
  const loadTasks = useCallback(
    () =>
      api.tasks({ archived: showArchived }).then((t) => {
        setTasks((cur) => (sameJson(cur, t) ? cur : t));
        return t;
      }),
    [api, showArchived],
  );
  useEffect(() => {
    Promise.all([loadTasks(), api.plans()])
      .then(([t, p]) => {
        setPlans(p);
        setTaskId((cur) => (t.some((x) => x.id === cur) ? cur : (t[t.length - 1]?.id ?? '')));
      })
      .catch((e: unknown) => onError(message(e)));
  }, [api, loadTasks, onError]);
  return { tasks, plans, taskId, setTaskId, showArchived, setShowArchived, loadTasks };
}

export function useOpenSeries(deps: { openSeries(): OpenSeries | undefined }) {
  const [open, setOpen] = useState(() => deps.openSeries());
  useEffect(() => {
    const timer = setInterval(() => {
      const now = deps.openSeries();
      setOpen((cur) => (sameJson(cur, now) ? cur : now));
    }, 1000);
    return () => clearInterval(timer);
  }, [deps]);
  return open;
}

/** The count of unlabelled series the query matches (debounced 300 ms), the atlas excluded. */
export function useSeriesCount(
  api: ApiClient,
  task: Task | undefined,
  query: SeriesQuery,
  onError: (m: string | undefined) => void,
): SeriesCount {
  const [count, setCount] = useState<SeriesCount>();
  useEffect(() => {
    if (!task) return;
    setCount('loading');
    const t = setTimeout(() => {
      api
        .searchSeries(query, 200)
        .then((r) => {
          const series = r.series.filter(
            (s) => s.seriesUID !== task.atlas.seriesUID && s.studyUID !== task.atlas.studyUID,
          );
          setCount({ count: r.count - (r.series.length - series.length), series });
        })
        .catch((e: unknown) => {
          setCount(undefined);
          onError(message(e));
        });
    }, 300);
    return () => clearTimeout(t);
  }, [api, task?.id, task?.atlas.seriesUID, query]);
  return count;
}

/** The model card of the chosen version (undefined when it is not one of the task's). */
export function useModelCard(
  api: ApiClient,
  models: ModelVersion[],
  selectedModelId: string | undefined,
  onError: (m: string | undefined) => void,
): ModelDetails | undefined {
  const [card, setCard] = useState<ModelDetails>();
  useEffect(() => {
    const m = models.find((x) => x.id === selectedModelId);
    if (!m) return setCard(undefined);
    api
      .model(m.id)
      .then(setCard)
      .catch((e: unknown) => onError(message(e)));
  }, [api, models, selectedModelId]);
  return card;
}

/**
 * Calls `fn` every `ms` while the tab is visible, and when the window gets the focus (the latest
 * `fn`: the timer is not restarted when it changes).
 */
export function useEvery(ms: number, fn: () => void): void {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    const tick = () => {
      if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return;
      latest.current();
    };
    const timer = setInterval(tick, ms);
    window.addEventListener('focus', tick);
    return () => {
      clearInterval(timer);
      window.removeEventListener('focus', tick);
    };
  }, [ms]);
}
