/**
 * The panel's training workflow: Task (list, manage, new task from the open study's SEG),
 * Training data (query with a live count), Train (start, confirm-cancel, resume, progress, loss
 * plot, log), Models (versions, default, card, hold-out). This component holds the state and
 * talks to the server; the sections render it. Other tabs' changes (tasks, jobs, models) are
 * picked up every SYNC_INTERVAL_MS while the tab is visible.
 */
import { useCallback, useEffect, useState } from 'react';
import {
  ApiError,
  type ApiClient,
  type ModelVersion,
  type Plan,
  type SeriesQuery,
  type SeriesRef,
  type Task,
} from '../api/client.js';
import { DataSection } from './DataSection.js';
import {
  message,
  sameJson,
  useEvery,
  useModelCard,
  useOpenSeries,
  useSeriesCount,
} from './trainingHooks.js';
import { ACTIVE, JobSection } from './JobSection.js';
import { ModelsSection } from './ModelsSection.js';
import { NewTaskForm } from './NewTaskForm.js';
import { useTeachers } from './TeacherPicker.js';
import { TaskSection } from './TaskSection.js';
import { SECTION } from './ui.js';
import { useJobFollow } from './useJobFollow.js';

export interface OpenSeries extends SeriesRef {
  modality?: string;
  description?: string;
  segSeriesInStudy?: number;
  /** Segments defined by each SEG of the study (the atlas candidates). */
  segSegmentCounts?: number[];
}

export interface TrainingDeps {
  api: ApiClient;
  /** The study/series shown in the active viewport (undefined when none). */
  openSeries(): OpenSeries | undefined;
  /** Reloads the viewer's model list and selects `modelId` for the Segment button. */
  useModel(modelId: string): Promise<void>;
  /** The model the Segment button uses now. */
  selectedModelId?: string;
}

/** How often a visible panel looks for what other tabs did (new tasks, jobs, models). */
export const SYNC_INTERVAL_MS = 5000;

export function TrainingSection({ deps }: { deps: TrainingDeps }) {
  const { api } = deps;
  const [error, setError] = useState<string>();
  const [taskWarnings, setTaskWarnings] = useState<string[]>([]);
  const [tasks, setTasks] = useState<Task[]>([]);
  const [showArchived, setShowArchived] = useState(false);
  const [plans, setPlans] = useState<Plan[]>([]);
  const [taskId, setTaskId] = useState('');
  const [busy, setBusy] = useState(false);
  const [query, setQuery] = useState<SeriesQuery>({ modality: 'MR' });
  const [models, setModels] = useState<ModelVersion[]>([]);
  const task = tasks.find((t) => t.id === taskId);
  const open = useOpenSeries(deps);
  const teachers = useTeachers(api, setError);

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
      .catch((e: unknown) => setError(message(e)));
  }, [api, loadTasks]);

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

  const count = useSeriesCount(api, task, query, setError);

  const card = useModelCard(api, models, deps.selectedModelId, setError);

  /** Runs a server action with the busy flag; its error is shown. */
  const act = async (what: () => Promise<void>): Promise<boolean> => {
    setBusy(true);
    try {
      await what();
      setError(undefined);
      return true;
    } catch (e) {
      setError(message(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  const changeTask = (patch: Parameters<ApiClient['updateTask']>[1]) =>
    void act(async () => {
      await api.updateTask(taskId, patch);
      await loadTasks();
    });

  const createTask = (name: string, plan: string, teacher: string | null) =>
    act(async () => {
      const o = deps.openSeries();
      if (!o)
        throw new Error('Open a study and show its image series first: the atlas is that series.');
      try {
        const t = await api.createTask({
          name: name || `Task ${new Date().toISOString().slice(0, 10)}`,
          plan,
          teacher,
          atlas: { studyUID: o.studyUID, seriesUID: o.seriesUID },
        });
        await loadTasks();
        setTaskId(t.id);
        setTaskWarnings(t.warnings ?? []);
        if (o.modality) setQuery((q) => ({ ...q, modality: o.modality }));
      } catch (e) {
        throw e instanceof ApiError && e.status === 422 && /SEG/.test(e.message)
          ? new Error(
              `${e.message} The open study needs a SEG series that labels the displayed series.`,
            )
          : e;
      }
    });

  const canAddHoldout =
    !!task &&
    !!open &&
    (open.segSeriesInStudy ?? 0) > 0 &&
    open.studyUID !== task.atlas.studyUID &&
    !(task.holdout ?? []).some((h) => h.seriesUID === open.seriesUID);

  return (
    <div
      data-testid="oneshot-training"
      style={{ display: 'flex', flexDirection: 'column', gap: 8 }}
    >
      <TaskSection
        tasks={tasks}
        task={task}
        plans={plans}
        showArchived={showArchived}
        modelCount={models.length}
        busy={busy}
        teachers={teachers}
        actions={{
          select: setTaskId,
          rename: (name) => changeTask({ name }),
          changePlan: (plan) => changeTask({ plan }),
          changeTeacher: (teacher) => changeTask({ teacher }),
          archive: (archived) => changeTask({ archived }),
          setShowArchived,
          remove: () =>
            void act(async () => {
              await api.deleteTask(taskId);
              const left = await loadTasks();
              setTaskId(left[left.length - 1]?.id ?? '');
              setModels([]);
            }),
        }}
      >
        <details open={tasks.length === 0} data-testid="oneshot-task-new">
          <summary style={{ cursor: 'pointer', fontSize: 12, marginTop: 6 }}>New task…</summary>
          <NewTaskForm
            plans={plans}
            open={open}
            busy={busy}
            teachers={teachers}
            create={createTask}
          />
        </details>
      </TaskSection>

      {task && <DataSection query={query} setQuery={setQuery} count={count} />}

      {task && (
        <JobSection
          job={job}
          progress={progress}
          losses={losses}
          log={log}
          busy={busy}
          canStart={!!count && count !== 'loading' && count.series.length > 0}
          start={() =>
            void act(async () => {
              if (count && count !== 'loading')
                followOnly(await api.startJob(taskId, count.series));
            })
          }
          cancel={() => job && void act(() => api.cancelJob(job.id))}
          resume={() => job && void act(async () => followOnly(await api.resumeJob(job.id)))}
        />
      )}

      {task && (
        <ModelsSection
          task={task}
          models={models}
          selectedModelId={deps.selectedModelId}
          card={card}
          canAddHoldout={canAddHoldout}
          busy={busy}
          useModel={(id) => void deps.useModel(id)}
          makeDefault={(id) =>
            void act(async () => {
              await api.setDefaultModel(taskId, id);
              await loadTasks();
              await refreshModels(taskId, true);
            })
          }
          addHoldout={() =>
            open &&
            void act(async () => {
              await api.addHoldout(taskId, { studyUID: open.studyUID, seriesUID: open.seriesUID });
              await loadTasks();
            })
          }
        />
      )}

      <TrainingMessages warnings={taskWarnings} error={error} />
    </div>
  );
}

/** What the server noted at task creation, and the last error of a training action. */
function TrainingMessages({ warnings, error }: { warnings: string[]; error?: string }) {
  return (
    <>
      {warnings.length > 0 && (
        <div data-testid="oneshot-task-warnings" role="status" style={SECTION.small}>
          {warnings.map((w) => (
            <div key={w}>⚠ {w}</div>
          ))}
        </div>
      )}
      {error && (
        <div data-testid="oneshot-training-message" role="status" style={SECTION.danger}>
          {error}
        </div>
      )}
    </>
  );
}
