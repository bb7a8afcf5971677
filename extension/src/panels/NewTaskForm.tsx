/**
 * The new-task form: the atlas is the open series and its study's SEG. The plan that trains as
 * many labels as the SEG holds is preselected (until the user picks one); a plan that does not fit
 * is refused before anything is created, with the fitting plans named. The SAM teacher is chosen
 * (or imported) here, or "No teacher: stage 1 skipped" is said.
 */
import { useEffect, useState } from 'react';
import type { Plan } from '../api/client.js';
import type { OpenSeries } from './TrainingSection.js';
import { TeacherPicker, type TeachersState } from './TeacherPicker.js';
import { Button, SECTION } from './ui.js';

const S = SECTION;

/** The plans that train `labels` labels (classes = labels + 1). */
export function plansFitting(plans: Plan[], labels: number | undefined): Plan[] {
  return plans.filter((p) => labels !== undefined && p.classes === labels + 1);
}

/** The atlas SEG's label count, when the study's SEGs agree on one. */
export function atlasLabelCount(open: OpenSeries | undefined): number | undefined {
  const counts = [...new Set(open?.segSegmentCounts ?? [])];
  return counts.length === 1 ? counts[0] : undefined;
}

export function NewTaskForm(props: {
  plans: Plan[];
  open?: OpenSeries;
  busy: boolean;
  teachers: TeachersState;
  /** Creates the task; resolves true when it was created. */
  create(name: string, plan: string, teacher: string | null): Promise<boolean>;
}) {
  const { plans, open } = props;
  const [name, setName] = useState('');
  const [teacher, setTeacher] = useState('');
  const [plan, setPlan] = useState('');
  const [touched, setTouched] = useState(false);
  const labels = atlasLabelCount(open);
  const fitting = plansFitting(plans, labels);
  useEffect(() => {
    if (touched) return;
    const pick = fitting[0]?.name ?? plans[0]?.name ?? '';
    if (!fitting.some((p) => p.name === plan) && pick !== plan) setPlan(pick);
  }, [touched, fitting, plans, plan]);
  const chosen = plans.find((p) => p.name === plan);
  const misfit =
    labels !== undefined && chosen && chosen.classes !== labels + 1
      ? `Plan ${chosen.name} trains ${chosen.classes - 1} labels but this study's SEG has ${labels}` +
        (fitting.length > 0
          ? `: choose ${fitting.map((p) => p.name).join(' or ')}.`
          : '; no installed plan fits it.')
      : undefined;
  return (
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
        value={name}
        onChange={(e) => setName(e.target.value)}
      />
      <select
        data-testid="oneshot-task-plan"
        style={{ ...S.input, marginTop: 4 }}
        value={plan}
        onChange={(e) => {
          setTouched(true);
          setPlan(e.target.value);
        }}
      >
        {plans.map((p) => (
          <option key={p.name} value={p.name} title={p.description}>
            {p.name} ({p.classes - 1} labels, grid {p.grid.join('×')}, {p.steps} steps)
            {p.description ? ` — ${p.description}` : ''}
          </option>
        ))}
      </select>
      {chosen?.description && (
        <div style={S.small} data-testid="oneshot-task-plan-description">
          {chosen.description}
        </div>
      )}
      {misfit && (
        <div style={S.small} data-testid="oneshot-task-plan-misfit" role="status">
          {misfit}
        </div>
      )}
      <TeacherPicker
        state={props.teachers}
        value={teacher}
        onChange={setTeacher}
        busy={props.busy}
        testId="oneshot-new-teacher"
      />
      <div style={S.row}>
        <Button
          testId="oneshot-task-create"
          onClick={() => {
            void props.create(name.trim(), plan, teacher || null).then((ok) => ok && setName(''));
          }}
          disabled={props.busy || !plan || !!misfit}
        >
          New task from this study’s SEG
        </Button>
      </div>
    </div>
  );
}
