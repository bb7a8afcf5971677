/**
 * The new-task form: the atlas is the open series and its study's SEG. The plan that trains as
 * many labels as the SEG holds is preselected (until the user picks one); a plan that does not fit
 * is refused before anything is created, with the fitting plans named. "auto" derives the plan
 * from the atlas (grid, spacing, depth; preselected when no installed plan fits) and shows it, with
 * its reasons, before the task is created. The SAM teacher is chosen (or imported) here, or
 * "No teacher: stage 1 skipped" is said.
 */
import { useEffect, useRef, useState } from 'react';
import type { DerivedPlan, Plan } from '../api/client.js';
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

/** The plan name that derives the plan from the atlas (server/src/jobs/plans.ts). */
export const DERIVED_PLAN = 'auto';

/** The derived plan of the open series, or why there is none (undefined while asking). */
type Derived = { plan: DerivedPlan } | { error: string };

export function NewTaskForm(props: {
  plans: Plan[];
  open?: OpenSeries;
  busy: boolean;
  teachers: TeachersState;
  /** The plan "auto" would train for the open series (asks the server; creates nothing). */
  derive(): Promise<DerivedPlan>;
  /** Creates the task; resolves true when it was created. */
  create(name: string, plan: string, teacher: string | null): Promise<boolean>;
}) {
  const { plans, open } = props;
  const [name, setName] = useState('');
  const [teacher, setTeacher] = useState('');
  const [plan, setPlan] = useState('');
  const [touched, setTouched] = useState(false);
  const [derived, setDerived] = useState<Derived | undefined>();
  const labels = atlasLabelCount(open);
  const fitting = plansFitting(plans, labels);
  useEffect(() => {
    if (touched) return;
    const pick = fitting[0]?.name ?? (labels !== undefined ? DERIVED_PLAN : plans[0]?.name) ?? '';
    if (!fitting.some((p) => p.name === plan) && pick !== plan) setPlan(pick);
  }, [touched, fitting, plans, plan, labels]);
  const atlasKey = open ? `${open.studyUID}/${open.seriesUID}` : '';
  // The latest callback, without re-deriving on every render of the parent.
  const derive = useRef(props.derive);
  derive.current = props.derive;
  useEffect(() => {
    setDerived(undefined);
    if (plan !== DERIVED_PLAN || !atlasKey) return;
    let live = true;
    derive.current().then(
      (p) => live && setDerived({ plan: p }),
      (e: unknown) => live && setDerived({ error: e instanceof Error ? e.message : String(e) }),
    );
    return () => {
      live = false;
    };
  }, [plan, atlasKey]);
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
        <option value={DERIVED_PLAN}>
          {DERIVED_PLAN} — derived from this atlas (grid, spacing, depth)
        </option>
      </select>
      {plan === DERIVED_PLAN && <DerivedPlanView derived={derived} />}
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
          disabled={
            props.busy ||
            !plan ||
            !!misfit ||
            (plan === DERIVED_PLAN && !(derived && 'plan' in derived))
          }
        >
          New task from this study’s SEG
        </Button>
      </div>
    </div>
  );
}

/** The derived plan in words: its grid, spacing and schedule, and why (the rules applied). */
function DerivedPlanView({ derived }: { derived: Derived | undefined }) {
  if (!derived) {
    return (
      <div style={S.small} data-testid="oneshot-task-plan-derived" aria-busy="true">
        Deriving the plan from the atlas…
      </div>
    );
  }
  if ('error' in derived) {
    return (
      <div style={S.small} data-testid="oneshot-task-plan-derived-error" role="status">
        {derived.error}
      </div>
    );
  }
  const p = derived.plan;
  return (
    <div style={S.small} data-testid="oneshot-task-plan-derived">
      Derived plan: {p.classes - 1} labels, grid {p.grid.join('×')} (D×H×W) at{' '}
      {p.spacing.map((v) => +v.toFixed(2)).join(' × ')} mm, {p.steps} training steps. Why:
      <ul style={{ margin: '2px 0 0 16px', padding: 0 }}>
        {p.reasons.map((r) => (
          <li key={r}>{r}</li>
        ))}
      </ul>
    </div>
  );
}
