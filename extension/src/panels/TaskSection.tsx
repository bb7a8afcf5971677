/**
 * The panel's Task section: the task list (archived tasks on request), the chosen task's
 * management (rename, plan for the next training, archive or restore, delete after a
 * confirmation that says what goes) and the new-task form (atlas = the open series and its SEG;
 * the plan that fits the SEG is preselected and a misfit is refused with the reason).
 */
import { useEffect, useState, type CSSProperties } from 'react';
import type { Plan, Task } from '../api/client.js';
import { DERIVED_PLAN, plansFitting } from './NewTaskForm.js';
import { TaskTeacher, teacherLabel, type TeachersState } from './TeacherPicker.js';
import { Button, SECTION } from './ui.js';

const S: Record<string, CSSProperties> = {
  ...SECTION,
  ask: SECTION.danger,
  check: { display: 'flex', gap: 6, alignItems: 'center', fontSize: 12, color: '#9aa4b8' },
};

export interface TaskActions {
  select(id: string): void;
  rename(name: string): void;
  changePlan(plan: string): void;
  changeTeacher(teacher: string | null): void;
  archive(archived: boolean): void;
  remove(): void;
  setShowArchived(show: boolean): void;
}

/** The task's teacher in words; a teacher that is no longer imported is said to be missing. */
function taskTeacherLine(task: Task, teachers: TeachersState): string {
  if (!task.teacher) return teacherLabel(undefined);
  const card = teachers.teachers.find((t) => t.id === task.teacher);
  return card
    ? teacherLabel(card)
    : `Teacher: ${task.teacher} — not among the imported teachers: import it again or choose another before training.`;
}

export function TaskSection(props: {
  tasks: Task[];
  task?: Task;
  plans: Plan[];
  showArchived: boolean;
  modelCount: number;
  busy: boolean;
  actions: TaskActions;
  teachers: TeachersState;
  children?: React.ReactNode;
}) {
  const { task, actions } = props;
  const [name, setName] = useState('');
  const [plan, setPlan] = useState('');
  const [confirmDelete, setConfirmDelete] = useState(false);
  useEffect(() => {
    setName(task?.name ?? '');
    setPlan(task?.plan ?? '');
    setConfirmDelete(false);
  }, [task?.id, task?.name, task?.plan]);
  const fitting = plansFitting(props.plans, task?.labels.length);
  return (
    <div style={S.section}>
      <div style={S.label}>Task</div>
      {props.tasks.length > 0 ? (
        <select
          data-testid="oneshot-task"
          style={S.input}
          value={task?.id ?? ''}
          onChange={(e) => actions.select(e.target.value)}
        >
          {props.tasks.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name} ({t.labels.length} labels, plan {t.plan}){t.archivedAt ? ' — archived' : ''}
            </option>
          ))}
        </select>
      ) : (
        <div style={S.small} data-testid="oneshot-no-tasks">
          No task yet.
        </div>
      )}
      {task && (
        <div style={S.small} data-testid="oneshot-task-teacher-summary">
          {taskTeacherLine(task, props.teachers)}
        </div>
      )}
      <label style={{ ...S.check, marginTop: 4 }}>
        <input
          type="checkbox"
          data-testid="oneshot-task-show-archived"
          checked={props.showArchived}
          onChange={(e) => actions.setShowArchived(e.target.checked)}
        />
        Show archived tasks
      </label>
      {task && (
        <details style={S.box} data-testid="oneshot-task-manage">
          <summary style={{ cursor: 'pointer', fontSize: 12 }}>Manage this task</summary>
          <div style={S.row}>
            <input
              data-testid="oneshot-task-rename-input"
              style={{ ...S.input, flex: '1 1 140px', width: 'auto' }}
              value={name}
              onChange={(e) => setName(e.target.value)}
            />
            <Button
              testId="oneshot-task-rename"
              onClick={() => actions.rename(name.trim())}
              disabled={props.busy || !name.trim() || name.trim() === task.name}
            >
              Rename
            </Button>
          </div>
          <div style={S.row}>
            <select
              data-testid="oneshot-task-change-plan"
              style={{ ...S.input, flex: '1 1 140px', width: 'auto' }}
              value={plan}
              onChange={(e) => setPlan(e.target.value)}
            >
              {fitting.map((p) => (
                <option key={p.name} value={p.name}>
                  {p.name} ({p.steps} steps)
                </option>
              ))}
              <option value={DERIVED_PLAN}>{DERIVED_PLAN} (derived from the task’s atlas)</option>
            </select>
            <Button
              testId="oneshot-task-change-plan-apply"
              onClick={() => actions.changePlan(plan)}
              disabled={props.busy || !plan}
            >
              Use for next training
            </Button>
          </div>
          <div style={S.small}>
            Plan {task.plan}
            {derivedGrid(task.planContent)}
            {task.planVersion ? `, stored as version ${task.planVersion}` : ''}: later edits of the
            plan file do not change this task.
          </div>
          <TaskTeacher
            state={props.teachers}
            current={task.teacher}
            busy={props.busy}
            change={actions.changeTeacher}
          />
          <div style={S.row}>
            <Button
              testId="oneshot-task-archive"
              onClick={() => actions.archive(!task.archivedAt)}
              disabled={props.busy}
            >
              {task.archivedAt ? 'Restore' : 'Archive'}
            </Button>
            <Button
              testId="oneshot-task-delete"
              onClick={() => setConfirmDelete(true)}
              disabled={props.busy || confirmDelete}
            >
              Delete…
            </Button>
          </div>
          {confirmDelete && (
            <div style={S.ask} role="alertdialog" data-testid="oneshot-task-delete-ask">
              Delete task “{task.name}” with its {props.modelCount} model version(s) and its
              training jobs? This cannot be undone. (Archive keeps the models.)
              <div style={S.row}>
                <Button
                  testId="oneshot-task-delete-confirm"
                  onClick={() => {
                    setConfirmDelete(false);
                    actions.remove();
                  }}
                >
                  Delete for good
                </Button>
                <Button testId="oneshot-task-delete-cancel" onClick={() => setConfirmDelete(false)}>
                  Keep it
                </Button>
              </div>
            </div>
          )}
        </details>
      )}
      {props.children}
    </div>
  );
}

/** " (grid D×H×W at x × y × z mm)" of a stored plan's content, when it has them. */
function derivedGrid(content: unknown): string {
  const c = content as { grid?: unknown; preprocess?: { spacing?: unknown } } | null | undefined;
  const grid = c?.grid;
  const spacing = c?.preprocess?.spacing;
  if (!Array.isArray(grid) || !Array.isArray(spacing)) return '';
  return ` (grid ${grid.join('×')} at ${spacing.map((v) => +Number(v).toFixed(2)).join(' × ')} mm)`;
}
