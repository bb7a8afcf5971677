/**
 * The panel's training workflow (issue #5): Task (list; new task from the open study's SEG),
 * Training data (query with a live count preview), Train (start, progress, loss plot, cancel,
 * log tail; shows a running job when the panel opens, in any tab), Models (versions of the task
 * with their model card; the chosen version is the model the Segment button uses).
 */
import { useCallback, useEffect, useRef, useState, type CSSProperties } from 'react';
import {
  ApiError,
  type ApiClient,
  type Job,
  type JobProgress,
  type LogLine,
  type ModelDetails,
  type ModelVersion,
  type Plan,
  type SeriesQuery,
  type SeriesRef,
  type Task,
} from '../api/client.js';
import { LossPlot, type LossPoint } from './LossPlot.js';
import { Button, UI } from './ui.js';

export interface TrainingDeps {
  api: ApiClient;
  /** The study/series shown in the active viewport (undefined when none). */
  openSeries():
    | (SeriesRef & {
        modality?: string;
        description?: string;
        segSeriesInStudy?: number;
        /** Segments defined by each SEG of the study (the atlas candidates). */
        segSegmentCounts?: number[];
      })
    | undefined;
  /** Reloads the viewer's model list and selects `modelId` for the Segment button. */
  useModel(modelId: string): Promise<void>;
  /** The model the Segment button uses now. */
  selectedModelId?: string;
}

const S: Record<string, CSSProperties> = {
  section: { borderTop: '1px solid #2a3350', paddingTop: 8 },
  label: UI.label,
  input: { ...UI.field, boxSizing: 'border-box' },
  row: { display: 'flex', gap: 6, flexWrap: 'wrap', marginTop: 6 },
  small: { color: '#9aa4b8', fontSize: 12 },
  box: { background: '#0f1422', borderRadius: 4, padding: 8, marginTop: 6 },
  error: {
    background: '#4a1c1c',
    border: '1px solid #d9534f',
    borderRadius: 4,
    padding: 8,
    marginTop: 6,
  },
  log: {
    fontFamily: 'monospace',
    fontSize: 11,
    maxHeight: 90,
    overflowY: 'auto',
    whiteSpace: 'pre-wrap',
    color: '#b8c2d8',
  },
};

function message(e: unknown): string {
  return e instanceof ApiError || e instanceof Error ? e.message : String(e);
}

function fmtSeconds(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** What the model card shows, read defensively from metadata.json and model-card.json. */
export function cardInfo(card: ModelDetails | undefined): {
  grid?: string;
  channels?: string;
  stages: string[];
  notices: string[];
} {
  const plan = (card?.card?.parameters?.planJson ?? {}) as { grid?: unknown; channels?: unknown };
  const list = (v: unknown) =>
    Array.isArray(v) && v.every((x) => typeof x === 'number') ? v : undefined;
  const state = (card?.card?.stages ?? {}) as { stages?: unknown; notices?: unknown };
  const stages = Array.isArray(state.stages)
    ? (
        state.stages as {
          stage?: string;
          steps?: number;
          seconds?: number;
          skipped?: string;
          lastLoss?: number;
        }[]
      ).map((x) =>
        x.skipped
          ? `${x.stage}: skipped`
          : `${x.stage}: ${x.steps ?? 0} steps${typeof x.seconds === 'number' ? ` ${x.seconds.toFixed(1)} s` : ''}${typeof x.lastLoss === 'number' ? `, loss ${x.lastLoss.toPrecision(3)}` : ''}`,
      )
    : [];
  const provenance = (card?.metadata.provenance ?? {}) as { notes?: unknown };
  const notices = [
    ...(typeof provenance.notes === 'string' && provenance.notes ? [provenance.notes] : []),
    ...(Array.isArray(state.notices)
      ? state.notices.filter((n): n is string => typeof n === 'string')
      : []),
  ];
  return {
    grid: list(plan.grid)?.join('×'),
    channels: list(plan.channels)?.join('-'),
    stages,
    notices: [...new Set(notices)],
  };
}

const ACTIVE = (j: Job) => j.status === 'queued' || j.status === 'running';

/** How often a visible panel looks for what other tabs did (new tasks, jobs, models). */
export const SYNC_INTERVAL_MS = 5000;

const sameIds = (a: readonly { id: string }[], b: readonly { id: string }[]) =>
  a.length === b.length && a.every((x, i) => x.id === b[i]!.id);

export function TrainingSection({ deps }: { deps: TrainingDeps }) {
  const { api } = deps;
  const [error, setError] = useState<string>();
  /** What the server noted when the task was created (labels coded alike, colours changed). */
  const [taskWarnings, setTaskWarnings] = useState<string[]>([]);
  const [tasks, setTasks] = useState<Task[]>([]);
  const [plans, setPlans] = useState<Plan[]>([]);
  const [taskId, setTaskId] = useState<string>('');
  const [newName, setNewName] = useState('');
  const [newPlan, setNewPlan] = useState('');
  const [planTouched, setPlanTouched] = useState(false);
  // The series shown in the viewer, re-read every second: the study's display sets (its SEG
  // among them) arrive after the panel first renders, and the user may switch series.
  const [open, setOpen] = useState(() => deps.openSeries());
  useEffect(() => {
    const timer = setInterval(() => {
      const now = deps.openSeries();
      setOpen((cur) => (JSON.stringify(cur) === JSON.stringify(now) ? cur : now));
    }, 1000);
    return () => clearInterval(timer);
  }, [deps]);
  const [busy, setBusy] = useState(false);
  const [query, setQuery] = useState<SeriesQuery>({ modality: 'MR' });
  const [count, setCount] = useState<{ count: number; series: SeriesRef[] } | 'loading'>();
  const [job, setJob] = useState<Job>();
  const [progress, setProgress] = useState<JobProgress>();
  const [losses, setLosses] = useState<LossPoint[]>([]);
  const [log, setLog] = useState<LogLine[]>([]);
  const [models, setModels] = useState<ModelVersion[]>([]);
  const [card, setCard] = useState<ModelDetails>();
  const task = tasks.find((t) => t.id === taskId);
  // The job stream being followed (one at a time).
  const stopFollow = useRef<(() => void) | undefined>(undefined);
  // The job shown, for the sync timer (a dependency would restart the timer at every event).
  const jobRef = useRef<Job | undefined>(undefined);
  jobRef.current = job;

  // Tasks and plans at start.
  useEffect(() => {
    Promise.all([api.tasks(), api.plans()])
      .then(([t, p]) => {
        setTasks(t);
        setPlans(p);
        setTaskId((cur) => cur || t[t.length - 1]?.id || '');
        setNewPlan((cur) => cur || p[0]?.name || '');
      })
      .catch((e: unknown) => setError(message(e)));
  }, [api]);

  const refreshModels = useCallback(
    async (t: string, select?: string) => {
      const list = await api.taskModels(t);
      setModels(list);
      const pick = select ?? list[list.length - 1]?.id;
      if (pick && (select || !list.some((m) => m.id === deps.selectedModelId))) {
        await deps.useModel(pick);
      }
    },
    [api, deps],
  );

  // Follow a job: SSE progress, loss points, log tail; on success list the new model.
  const follow = useCallback(
    (j: Job) => {
      setJob(j);
      setProgress(j.progress ?? undefined);
      setLosses([]);
      setLog([]);
      api
        .jobLog(j.id)
        .then((l) => setLog(l.slice(-50)))
        .catch(() => undefined);
      // The loss history so far (a reopened panel or a second tab), merged with live points.
      api
        .jobProgress(j.id)
        .then((rows) => {
          const past = rows
            .filter((p) => typeof p.loss === 'number' && p.phase && p.step !== undefined)
            .map((p) => ({
              stage: p.phase as string,
              step: p.step as number,
              loss: p.loss as number,
            }));
          setLosses((live) => [
            ...past.filter((x) => !live.some((y) => y.stage === x.stage && y.step === x.step)),
            ...live,
          ]);
        })
        .catch(() => undefined);
      return api.followJob(j.id, {
        status: (s) => {
          setJob(s);
          setError(undefined);
        },
        progress: (p) => {
          setProgress(p);
          if (typeof p.loss === 'number' && p.phase && p.step !== undefined) {
            const point = { stage: p.phase, step: p.step, loss: p.loss };
            setLosses((ls) =>
              ls.some((x) => x.stage === point.stage && x.step === point.step)
                ? ls
                : [...ls, point],
            );
          }
        },
        log: (l) => setLog((ls) => [...ls.slice(-49), l]),
        end: () => {
          void api
            .job(j.id)
            .then((done) => {
              setJob(done);
              if (done.status === 'succeeded' && done.modelId)
                return refreshModels(done.taskId, done.modelId);
              return undefined;
            })
            .catch((e: unknown) => setError(message(e)));
        },
        error: (m) => setError(m),
      });
    },
    [api, refreshModels],
  );

  // Follow `j` (or nothing) instead of the job followed so far: one job stream at a time.
  const followOnly = useCallback(
    (j: Job | undefined) => {
      stopFollow.current?.();
      stopFollow.current = j ? follow(j) : undefined;
    },
    [follow],
  );

  // When the task changes: its models, and its running (or last) job — also in a second tab.
  useEffect(() => {
    if (!taskId) return;
    let live = true;
    setCard(undefined);
    refreshModels(taskId).catch((e: unknown) => setError(message(e)));
    api
      .jobs(taskId)
      .then((jobs) => {
        if (!live) return;
        const running = jobs.find(ACTIVE) ?? jobs[jobs.length - 1];
        followOnly(running);
        if (!running) setJob(undefined);
      })
      .catch((e: unknown) => setError(message(e)));
    return () => {
      live = false;
      followOnly(undefined);
    };
  }, [taskId]);

  // What other tabs (or scripts) did: new tasks, a job started elsewhere, new model versions.
  // Looked up every SYNC_INTERVAL_MS while the tab is visible, and when the window gets focus.
  useEffect(() => {
    let live = true;
    const sync = () => {
      if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return;
      api
        .tasks()
        .then((t) => live && setTasks((cur) => (sameIds(cur, t) ? cur : t)))
        .catch(() => undefined);
      if (!taskId) return;
      api
        .taskModels(taskId)
        .then((list) => live && setModels((cur) => (sameIds(cur, list) ? cur : list)))
        .catch(() => undefined);
      const shown = jobRef.current;
      if (shown && ACTIVE(shown)) return;
      api
        .jobs(taskId)
        .then((jobs) => {
          const active = jobs.find(ACTIVE);
          if (!live || !active || active.id === jobRef.current?.id) return;
          followOnly(active);
        })
        .catch(() => undefined);
    };
    const timer = setInterval(sync, SYNC_INTERVAL_MS);
    window.addEventListener('focus', sync);
    return () => {
      live = false;
      clearInterval(timer);
      window.removeEventListener('focus', sync);
    };
  }, [api, taskId, followOnly]);

  // Live count preview of the training data query (debounced), atlas series excluded.
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
          const atlasIn = r.series.length - series.length;
          setCount({ count: r.count - atlasIn, series });
          setError(undefined);
        })
        .catch((e: unknown) => {
          setCount(undefined);
          setError(message(e));
        });
    }, 300);
    return () => clearTimeout(t);
  }, [api, task, query]);

  // The model card of the chosen version.
  useEffect(() => {
    const m = models.find((x) => x.id === deps.selectedModelId);
    if (!m) {
      setCard(undefined);
      return;
    }
    api
      .model(m.id)
      .then(setCard)
      .catch((e: unknown) => setError(message(e)));
  }, [api, models, deps.selectedModelId]);

  // The atlas SEG's label count, when the study's SEGs agree on one: the plan must train as many.
  const atlasLabels = (() => {
    const counts = [...new Set(open?.segSegmentCounts ?? [])];
    return counts.length === 1 ? counts[0] : undefined;
  })();
  const fitting = plans.filter((p) => atlasLabels !== undefined && p.classes === atlasLabels + 1);
  // Preselect a plan that fits the atlas (until the user picks one).
  useEffect(() => {
    if (planTouched || fitting.length === 0) return;
    if (!fitting.some((p) => p.name === newPlan)) setNewPlan(fitting[0]?.name ?? '');
  }, [planTouched, fitting, newPlan]);
  const chosenPlan = plans.find((p) => p.name === newPlan);
  const planMisfit =
    atlasLabels !== undefined && chosenPlan && chosenPlan.classes !== atlasLabels + 1
      ? `Plan ${chosenPlan.name} trains ${chosenPlan.classes - 1} labels but this study's SEG has ${atlasLabels}` +
        (fitting.length > 0
          ? `: choose ${fitting.map((p) => p.name).join(' or ')}.`
          : '; no installed plan fits it.')
      : undefined;

  const createTask = async () => {
    const open = deps.openSeries();
    if (!open) {
      setError('Open a study and show its image series first: the task’s atlas is that series.');
      return;
    }
    setBusy(true);
    try {
      const t = await api.createTask({
        name: newName.trim() || `Task ${new Date().toISOString().slice(0, 10)}`,
        plan: newPlan,
        atlas: { studyUID: open.studyUID, seriesUID: open.seriesUID },
      });
      setTasks((ts) => [...ts, t]);
      setTaskId(t.id);
      setNewName('');
      setError(undefined);
      setTaskWarnings(t.warnings ?? []);
      if (open.modality) setQuery((q) => ({ ...q, modality: open.modality }));
    } catch (e) {
      setError(
        message(e) +
          (e instanceof ApiError && e.status === 422 && /SEG/.test(message(e))
            ? ' The open study needs a SEG series that labels the displayed series.'
            : ''),
      );
    } finally {
      setBusy(false);
    }
  };

  const startJob = async () => {
    if (!task || !count || count === 'loading') return;
    setBusy(true);
    try {
      const j = await api.startJob(task.id, count.series);
      followOnly(j);
      setError(undefined);
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  };

  const running = job && ACTIVE(job);
  const phase =
    job?.status === 'succeeded'
      ? 'published'
      : job?.status === 'running'
        ? (progress?.phase ?? 'starting')
        : job?.status;
  const frac =
    progress && progress.total
      ? Math.min(
          1,
          ((progress.stageIndex ?? 0) + (progress.step ?? 0) / progress.total) /
            Math.max(1, progress.stageCount ?? 1),
        )
      : undefined;
  const chosen = models.find((m) => m.id === deps.selectedModelId);
  const cardData = card?.card;
  const info = cardInfo(card);

  return (
    <div
      data-testid="oneshot-training"
      style={{ display: 'flex', flexDirection: 'column', gap: 8 }}
    >
      <div style={S.section}>
        <div style={S.label}>Task</div>
        {tasks.length > 0 ? (
          <select
            data-testid="oneshot-task"
            style={S.input}
            value={taskId}
            onChange={(e) => setTaskId(e.target.value)}
          >
            {tasks.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name} ({t.labels.length} labels, plan {t.plan})
              </option>
            ))}
          </select>
        ) : (
          <div style={S.small} data-testid="oneshot-no-tasks">
            No task yet.
          </div>
        )}
        <div style={S.box}>
          <div style={S.small}>
            New task from this study’s SEG (atlas: the displayed series
            {open?.description ? ` “${open.description}”` : ''})
          </div>
          {open?.segSeriesInStudy === 0 && (
            <div style={S.small} data-testid="oneshot-task-no-seg">
              This study has no SEG series loaded: open a study whose SEG labels its image series.
            </div>
          )}
          <input
            data-testid="oneshot-task-name"
            style={{ ...S.input, marginTop: 4 }}
            placeholder="Task name"
            value={newName}
            onChange={(e) => setNewName(e.target.value)}
          />
          <select
            data-testid="oneshot-task-plan"
            style={{ ...S.input, marginTop: 4 }}
            value={newPlan}
            onChange={(e) => {
              setPlanTouched(true);
              setNewPlan(e.target.value);
            }}
          >
            {plans.map((p) => (
              <option key={p.name} value={p.name}>
                {p.name} ({p.classes - 1} labels, grid {p.grid.join('×')}, {p.steps} steps)
              </option>
            ))}
          </select>
          {planMisfit && (
            <div style={S.small} data-testid="oneshot-task-plan-misfit" role="status">
              {planMisfit}
            </div>
          )}
          <div style={S.row}>
            <Button
              testId="oneshot-task-create"
              onClick={() => void createTask()}
              disabled={busy || !newPlan || !!planMisfit}
            >
              New task from this study’s SEG
            </Button>
          </div>
        </div>
      </div>

      {task && (
        <div style={S.section}>
          <div style={S.label}>Training data</div>
          <div style={{ display: 'grid', gridTemplateColumns: '1fr 1fr', gap: 4 }}>
            <input
              data-testid="oneshot-query-modality"
              style={S.input}
              placeholder="Modality"
              value={query.modality ?? ''}
              onChange={(e) => setQuery({ ...query, modality: e.target.value })}
            />
            <input
              data-testid="oneshot-query-description"
              style={S.input}
              placeholder="Series description"
              value={query.description ?? ''}
              onChange={(e) => setQuery({ ...query, description: e.target.value })}
            />
            <input
              data-testid="oneshot-query-from"
              style={S.input}
              type="date"
              title="Study date from"
              value={query.from ?? ''}
              onChange={(e) => setQuery({ ...query, from: e.target.value })}
            />
            <input
              data-testid="oneshot-query-to"
              style={S.input}
              type="date"
              title="Study date to"
              value={query.to ?? ''}
              onChange={(e) => setQuery({ ...query, to: e.target.value })}
            />
          </div>
          <div
            data-testid="oneshot-query-count"
            data-count={count && count !== 'loading' ? count.count : ''}
            style={{ ...S.small, marginTop: 4 }}
          >
            {count === 'loading'
              ? 'Counting…'
              : count
                ? `${count.count} unlabelled series match (atlas excluded)`
                : ''}
          </div>
        </div>
      )}

      {task && (
        <div style={S.section}>
          <div style={S.label}>Train</div>
          <div style={S.row}>
            <Button
              testId="oneshot-train-start"
              onClick={() => void startJob()}
              disabled={
                busy || !!running || !count || count === 'loading' || count.series.length === 0
              }
            >
              Start training
            </Button>
            <Button
              testId="oneshot-train-cancel"
              onClick={() => {
                if (job) api.cancelJob(job.id).catch((e: unknown) => setError(message(e)));
              }}
              disabled={!running}
            >
              Cancel training
            </Button>
          </div>
          {job && (
            <div style={S.box} data-testid="oneshot-job" data-job-id={job.id}>
              <div>
                Job:{' '}
                <strong
                  data-testid="oneshot-job-status"
                  data-status={job.status}
                  data-phase={phase}
                >
                  {phase}
                </strong>
                {progress && job.status === 'running' && progress.total ? (
                  <span style={S.small}>
                    {' '}
                    — step {progress.step}/{progress.total}
                    {progress.stageCount
                      ? `, stage ${(progress.stageIndex ?? 0) + 1}/${progress.stageCount}`
                      : ''}
                    {progress.etaSeconds !== undefined
                      ? `, about ${fmtSeconds(progress.etaSeconds)} left`
                      : ''}
                    {progress.loss !== undefined ? `, loss ${progress.loss.toPrecision(3)}` : ''}
                  </span>
                ) : null}
              </div>
              {running && (
                <progress
                  data-testid="oneshot-job-progress"
                  style={{ width: '100%' }}
                  max={1}
                  value={frac}
                />
              )}
              {job.reason && <div style={S.small}>{job.reason}</div>}
              <LossPlot points={losses} />
              {log.length > 0 && (
                <div data-testid="oneshot-job-log" style={S.log}>
                  {log.slice(-8).map((l) => (
                    <div key={l.n}>{l.line}</div>
                  ))}
                </div>
              )}
            </div>
          )}
        </div>
      )}

      {task && (
        <div style={S.section}>
          <div style={S.label}>Models</div>
          {models.length === 0 ? (
            <div style={S.small} data-testid="oneshot-task-no-models">
              No model trained for this task yet.
            </div>
          ) : (
            <select
              data-testid="oneshot-task-model"
              style={S.input}
              value={chosen?.id ?? ''}
              onChange={(e) => void deps.useModel(e.target.value)}
            >
              {!chosen && <option value="">(another model is chosen)</option>}
              {models.map((m, i) => (
                <option key={m.id} value={m.id}>
                  version {m.version}
                  {i === models.length - 1 ? ' (newest)' : ''} — {m.createdAt?.slice(0, 16) ?? ''}
                </option>
              ))}
            </select>
          )}
          {card && (
            <div style={S.box} data-testid="oneshot-model-card" data-model-id={card.id}>
              <div>
                <strong>{String(card.metadata.name ?? card.id)}</strong>{' '}
                <span style={S.small}>{card.id}</span>
              </div>
              <div style={S.small} data-testid="oneshot-model-card-parameters">
                plan {cardData?.parameters?.plan ?? '—'}
                {info.grid ? `, grid ${info.grid}` : ''}
                {info.channels ? `, channels ${info.channels}` : ''} · provider{' '}
                {cardData?.parameters?.provider ?? '—'}
                {typeof cardData?.trainingSeconds === 'number'
                  ? ` · trained in ${fmtSeconds(cardData.trainingSeconds)}`
                  : ''}
              </div>
              {info.stages.length > 0 && (
                <div style={S.small} data-testid="oneshot-model-card-stages">
                  {info.stages.join(' · ')}
                </div>
              )}
              <div style={S.small} data-testid="oneshot-model-card-data">
                Training data: 1 atlas + {cardData?.trainingData?.unlabeledSeries?.length ?? 0}{' '}
                unlabelled series
              </div>
              {cardData?.evaluation ? (
                <div style={S.small}>
                  Evaluation: {JSON.stringify(cardData.evaluation).slice(0, 200)}
                </div>
              ) : (
                <div style={S.small}>No evaluation recorded.</div>
              )}
              {info.notices.length > 0 && (
                <ul
                  data-testid="oneshot-model-card-notices"
                  style={{ ...S.small, margin: '4px 0 0 16px', padding: 0 }}
                >
                  {info.notices.map((n) => (
                    <li key={n}>{n}</li>
                  ))}
                </ul>
              )}
            </div>
          )}
        </div>
      )}

      {taskWarnings.length > 0 && (
        <div data-testid="oneshot-task-warnings" role="status" style={S.small}>
          {taskWarnings.map((w) => (
            <div key={w}>⚠ {w}</div>
          ))}
        </div>
      )}
      {error && (
        <div data-testid="oneshot-training-message" role="status" style={S.error}>
          {error}
        </div>
      )}
    </div>
  );
}
