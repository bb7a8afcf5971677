/**
 * The One-Shot panel, rendered in its own React root (our bundled React 18.3.1) so hooks work
 * regardless of the host's React. Every piece of state a user sees has a data-testid.
 */
import { useEffect, useState, useSyncExternalStore, type CSSProperties } from 'react';
import { describeModelKind } from '@rrl/core/format/metadata.js';
import type { ExecutionProvider } from '../inference/protocol.js';
import type { OneShotState, Store } from '../state/store.js';
import { ResultSection } from './ResultSection.js';
import { TrainingSection, type TrainingDeps } from './TrainingSection.js';
import { Button, UI } from './ui.js';

/** What the training workflow needs from the viewer (the chosen model comes from the store). */
export type TrainingHooks = Omit<TrainingDeps, 'selectedModelId'>;

export interface PanelActions {
  run(): void;
  cancel(): void;
  save(): void;
  reloadModels(): void;
  resolveReplace(choice: 'replace' | 'keep' | 'cancel'): void;
  undoReplace(): void;
  selectResult(segmentationId: string): void;
}

const S: Record<string, CSSProperties> = {
  root: {
    padding: 10,
    color: '#e6e9ef',
    fontFamily: 'Inter, system-ui, sans-serif',
    fontSize: 13,
    lineHeight: 1.4,
    display: 'flex',
    flexDirection: 'column',
    gap: 10,
    overflowWrap: 'anywhere',
  },
  h: { fontSize: 15, fontWeight: 600, margin: 0, color: '#ffffff' },
  label: UI.label,
  select: UI.field,
  row: { display: 'flex', gap: 6, flexWrap: 'wrap' },
  fixture: {
    border: '1px solid #e6a23c',
    background: '#3d2e12',
    color: '#ffd591',
    borderRadius: 4,
    padding: '4px 6px',
    fontSize: 12,
  },
  product: { color: '#9aa4b8', fontSize: 12 },
  box: { background: '#0f1422', borderRadius: 4, padding: 8 },
  msgError: { background: '#4a1c1c', border: '1px solid #d9534f', borderRadius: 4, padding: 8 },
  msgInfo: { background: '#16263d', border: '1px solid #3a6ea5', borderRadius: 4, padding: 8 },
  msgSuccess: { background: '#173a24', border: '1px solid #4caf50', borderRadius: 4, padding: 8 },
  swatch: {
    display: 'inline-block',
    width: 12,
    height: 12,
    borderRadius: 2,
    marginRight: 6,
    verticalAlign: 'middle',
  },
  list: { listStyle: 'none', padding: 0, margin: 0 },
};

function statusText(s: OneShotState): string {
  switch (s.status) {
    case 'idle':
      return 'Ready';
    case 'loading-models':
      return 'Loading models…';
    case 'running':
      return 'Segmenting…';
    case 'done':
      return 'Segmentation ready';
    case 'saving':
      return 'Saving to PACS…';
    case 'saved':
      return 'Saved to PACS';
    case 'error':
      return 'Failed';
    case 'cancelled':
      return 'Cancelled';
  }
}

export function OneShotPanel({
  store,
  actions,
  training,
}: {
  store: Store;
  actions: PanelActions;
  training?: TrainingHooks;
}) {
  const s = useSyncExternalStore(
    (cb) => store.subscribe(cb),
    () => store.get(),
  );
  const [gpu, setGpu] = useState<string>('checking');
  useEffect(() => {
    const nav = navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } };
    if (!nav.gpu) {
      setGpu('no WebGPU in this browser');
      return;
    }
    nav.gpu
      .requestAdapter()
      .then((a) => setGpu(a ? 'WebGPU adapter available' : 'no WebGPU adapter'))
      .catch(() => setGpu('no WebGPU adapter'));
  }, []);

  const model = s.models.find((m) => m.metadata.id === s.selectedModelId) ?? s.models[0];
  const busy = s.status === 'running' || s.status === 'saving' || s.status === 'loading-models';
  const canSave = !!s.segmentationId && !busy && !s.confirmReplace;
  const msgStyle =
    s.messageKind === 'error' ? S.msgError : s.messageKind === 'success' ? S.msgSuccess : S.msgInfo;

  return (
    <div style={S.root} data-testid="oneshot-panel">
      <h3 style={S.h}>One-Shot Segmentation</h3>

      {training && <TrainingSection deps={{ ...training, selectedModelId: s.selectedModelId }} />}

      <div style={{ ...S.label, borderTop: '1px solid #2a3350', paddingTop: 8 }}>Segment</div>

      <div>
        <div style={S.label}>Model</div>
        {s.models.length === 0 ? (
          <div data-testid="oneshot-no-models" style={S.product}>
            {s.status === 'loading-models' ? 'Loading models…' : 'No model available.'}
          </div>
        ) : (
          <select
            data-testid="oneshot-model"
            style={S.select}
            value={model?.metadata.id}
            disabled={busy}
            onChange={(e) => store.set({ selectedModelId: e.target.value })}
          >
            {s.models.map((m) => (
              <option key={m.metadata.id} value={m.metadata.id}>
                {m.metadata.name} {m.metadata.version}
                {m.metadata.kind === 'test-fixture' ? ' (test fixture, not a product model)' : ''}
              </option>
            ))}
          </select>
        )}
        {model && (
          <div
            data-testid="oneshot-model-kind"
            data-kind={model.metadata.kind}
            style={{
              marginTop: 6,
              ...(model.metadata.kind === 'test-fixture' ? S.fixture : S.product),
            }}
          >
            {describeModelKind(model.metadata)} Modalities: {model.metadata.modalities.join(', ')}.
          </div>
        )}
        {s.rejectedModels.length > 0 && (
          <div data-testid="oneshot-rejected-models" style={{ ...S.product, marginTop: 4 }}>
            {s.rejectedModels.length} model(s) skipped:{' '}
            {s.rejectedModels.map((r) => `${r.id}: ${r.reason}`).join(' ')}
          </div>
        )}
      </div>

      <div>
        <div style={S.label}>Run on</div>
        <select
          data-testid="oneshot-provider-select"
          style={S.select}
          value={s.preferredProvider}
          disabled={busy}
          onChange={(e) => store.set({ preferredProvider: e.target.value as ExecutionProvider })}
        >
          <option value="webgpu">WebGPU when available, else CPU (wasm)</option>
          <option value="wasm">CPU (wasm) only</option>
        </select>
        <div style={{ ...S.product, marginTop: 4 }} data-testid="oneshot-gpu">
          {gpu}
        </div>
      </div>

      <div style={S.row}>
        <Button
          testId="oneshot-run"
          onClick={actions.run}
          disabled={busy || !model || s.confirmReplace}
        >
          Segment active series
        </Button>
        <Button testId="oneshot-cancel" onClick={actions.cancel} disabled={s.status !== 'running'}>
          Cancel
        </Button>
      </div>

      <div style={S.box}>
        <div>
          Status:{' '}
          <strong data-testid="oneshot-status" data-status={s.status}>
            {statusText(s)}
          </strong>
        </div>
        {s.phase && (
          <div data-testid="oneshot-phase">
            {s.phase}
            {s.progress !== undefined ? ` — ${Math.round(s.progress * 100)} %` : ''}
          </div>
        )}
        {s.status === 'running' && (
          <progress
            data-testid="oneshot-progress"
            style={{ width: '100%' }}
            max={1}
            value={s.progress ?? undefined}
          />
        )}
        <div>
          Provider:{' '}
          <span data-testid="oneshot-provider" data-provider={s.provider ?? ''}>
            {s.provider ?? '—'}
          </span>
          {s.fallbackReason && (
            <div data-testid="oneshot-fallback" style={S.product}>
              Not WebGPU: {s.fallbackReason}.
            </div>
          )}
        </div>
        {s.timings && (
          <div data-testid="oneshot-timings" style={S.product}>
            {Object.entries(s.timings)
              .map(([k, v]) => `${k} ${v < 10 ? v.toFixed(1) : Math.round(v)} ms`)
              .join(' · ')}
          </div>
        )}
      </div>

      <ResultSection s={s} actions={actions} />

      <div style={S.row}>
        <Button testId="oneshot-save" onClick={actions.save} disabled={!canSave}>
          Save to PACS
        </Button>
      </div>

      {s.lastSave && (
        <div
          data-testid="oneshot-saved-series"
          data-series-uid={s.lastSave.seriesInstanceUID}
          data-series-number={s.lastSave.seriesNumber}
          style={S.product}
        >
          Last saved: series {s.lastSave.seriesNumber} “{s.lastSave.seriesDescription}”
        </div>
      )}

      {s.message && (
        <div
          data-testid="oneshot-message"
          data-kind={s.messageKind ?? 'info'}
          role="status"
          style={msgStyle}
        >
          {s.message}
        </div>
      )}
    </div>
  );
}
