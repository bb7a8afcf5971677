/**
 * The panel's training workflow: Task (list, manage, new task from the open study's SEG),
 * Training data (query with a live count), Train (start, confirm-cancel, resume, progress, loss
 * plot, log), Models (versions, default, card, hold-out). This component holds the state and
 * talks to the server (task list: useTaskList; the task's models and jobs, also those of other
 * tabs: useTaskActivity); the sections render it.
 */
import { useState } from 'react';
import { ApiError, type ApiClient, type SeriesQuery, type SeriesRef } from '../api/client.js';
import { DataSection } from './DataSection.js';
import {
  message,
  useModelCard,
  useOpenSeries,
  useSeriesCount,
  useTaskList,
} from './trainingHooks.js';
import { JobSection } from './JobSection.js';
import { ModelsSection } from './ModelsSection.js';
import { NewTaskForm } from './NewTaskForm.js';
import { useTeachers } from './TeacherPicker.js';
import { TaskSection } from './TaskSection.js';
import { TrainingMessages } from './ui.js';
import { useTaskActivity } from './useTaskActivity.js';

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

export function TrainingSection({ deps }: { deps: TrainingDeps }) {
  const { api } = deps;
  const [error, setError] = useState<string>();
  const [taskWarnings, setTaskWarnings] = useState<string[]>([]);
  const { tasks, plans, taskId, setTaskId, showArchived, setShowArchived, loadTasks } = useTaskList(
    api,
    setError,
  );
  const [busy, setBusy] = useState(false);
  const [query, setQuery] = useState<SeriesQuery>({ modality: 'MR' });
  const task = tasks.find((t) => t.id === taskId);
  const open = useOpenSeries(deps);
  const teachers = useTeachers(api, setError);

  const { models, setModels, refreshModels, job, progress, losses, log, followOnly } =
    useTaskActivity(deps, taskId, loadTasks, setError);

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

  const derivePlan = () => {
    const o = deps.openSeries();
    if (!o) {
      return Promise.reject(
        new Error('Open a study and show its image series first: the atlas is that series.'),
      );
    }
    return api.derivePlan({ studyUID: o.studyUID, seriesUID: o.seriesUID });
  };

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
            derive={derivePlan}
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
