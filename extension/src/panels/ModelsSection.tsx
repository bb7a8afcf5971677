/**
 * The panel's Models section: the task's versions (its default marked, each with its hold-out
 * Dice), the chosen version's model card (plan, teacher, data, evaluation, the provider it really
 * trained on, why it is or is not the default), promotion or roll-back to another version, and the
 * task's hold-out series (the open study's labelled series can be added).
 */
import type { ModelDetails, ModelVersion, Task } from '../api/client.js';
import { fmtSeconds } from './JobSection.js';
import { Button, SECTION } from './ui.js';

const S = SECTION;

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
  const stateNotices = Array.isArray(state.notices)
    ? state.notices.filter((n): n is string => typeof n === 'string')
    : [];
  // metadata's notes are the training's notices joined (after any notes of its own): show each
  // notice once, and of the notes only what no notice says
  let notes = typeof provenance.notes === 'string' ? provenance.notes : '';
  for (const n of stateNotices) notes = notes.split(n).join(' ');
  notes = notes.replace(/\s+/g, ' ').trim();
  const notices = [...(notes ? [notes] : []), ...stateNotices];
  return {
    grid: list(plan.grid)?.join('×'),
    channels: list(plan.channels)?.join('-'),
    stages,
    notices: [...new Set(notices)],
  };
}

const dice = (d: number | undefined) =>
  d === undefined ? 'not evaluated' : `Dice ${d.toFixed(3)}`;

export function ModelsSection(props: {
  task: Task;
  models: ModelVersion[];
  selectedModelId?: string;
  card?: ModelDetails;
  /** The open series can be added as a hold-out (a labelled study that is not the atlas). */
  canAddHoldout: boolean;
  busy: boolean;
  useModel(id: string): void;
  makeDefault(id: string): void;
  addHoldout(): void;
}) {
  const { models, card, task } = props;
  const chosen = models.find((m) => m.id === props.selectedModelId);
  const def = models.find((m) => m.default);
  const cardData = card?.card;
  const info = cardInfo(card);
  const params = cardData?.parameters;
  return (
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
          onChange={(e) => props.useModel(e.target.value)}
        >
          {!chosen && <option value="">(another model is chosen)</option>}
          {models.map((m) => (
            <option key={m.id} value={m.id}>
              v{m.version}
              {m.default ? ' ★ default' : ''} — {dice(m.holdoutDice)}
            </option>
          ))}
        </select>
      )}
      {chosen && !chosen.default && (
        <div style={S.row}>
          <Button
            testId="oneshot-model-make-default"
            onClick={() => props.makeDefault(chosen.id)}
            disabled={props.busy}
          >
            {def && Number(chosen.version) < Number(def.version)
              ? `Roll back to v${chosen.version}`
              : `Make v${chosen.version} the default`}
          </Button>
        </div>
      )}
      {def && chosen && !chosen.default && (
        <div style={S.small} data-testid="oneshot-model-compare">
          Default v{def.version}: {dice(def.holdoutDice)} · v{chosen.version}:{' '}
          {dice(chosen.holdoutDice)}
        </div>
      )}
      {card && (
        <div style={S.box} data-testid="oneshot-model-card" data-model-id={card.id}>
          <div>
            <strong>{String(card.metadata.name ?? card.id)}</strong>{' '}
            <span style={S.small}>{card.id}</span>
          </div>
          <div style={S.small} data-testid="oneshot-model-card-parameters">
            plan {params?.plan ?? '—'}
            {params?.planVersion ? ` (v${params.planVersion})` : ''}
            {info.grid ? `, grid ${info.grid}` : ''}
            {info.channels ? `, channels ${info.channels}` : ''} · provider{' '}
            {params?.providerUsed ?? params?.provider ?? '—'} ·{' '}
            <span data-testid="oneshot-model-card-teacher">
              {params?.teacher ? `teacher: ${params.teacher}` : 'no teacher (stage 1 skipped)'}
            </span>
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
          <div style={S.small} data-testid="oneshot-model-card-evaluation">
            {typeof cardData?.evaluation?.meanDice === 'number'
              ? `Hold-out: Dice ${cardData.evaluation.meanDice.toFixed(3)} on ${cardData.evaluation.series?.length ?? 0} series`
              : 'Hold-out: not evaluated (the task had no hold-out series).'}
          </div>
          {cardData?.promotion?.reason && (
            <div style={S.small} data-testid="oneshot-model-card-promotion">
              {cardData.promotion.reason}
            </div>
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
      <div style={{ ...S.small, marginTop: 6 }} data-testid="oneshot-holdout">
        Hold-out: {task.holdout?.length ?? 0} labelled series
        {task.holdout?.length ? '' : ' (new models are not evaluated)'}
      </div>
      {props.canAddHoldout && (
        <div style={S.row}>
          <Button testId="oneshot-holdout-add" onClick={props.addHoldout} disabled={props.busy}>
            Use this study’s SEG as a hold-out
          </Button>
        </div>
      )}
    </div>
  );
}
