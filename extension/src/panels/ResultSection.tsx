/**
 * The panel's result: the question before unsaved corrections would be replaced, the one-shot
 * results in the viewer (after "Keep both"), the segments with live voxel counts and volumes,
 * the unsaved-corrections notice and "Undo replace".
 */
import type { CSSProperties } from 'react';
import type { OneShotState } from '../state/store.js';
import type { PanelActions } from './OneShotPanel.js';
import { Button, UI } from './ui.js';

const S: Record<string, CSSProperties> = {
  label: UI.label,
  small: { color: '#9aa4b8', fontSize: 12 },
  list: { listStyle: 'none', padding: 0, margin: 0 },
  item: { display: 'flex', alignItems: 'baseline', gap: 6 },
  name: { flex: '1 1 auto', minWidth: 0 },
  amount: { color: '#9aa4b8', fontSize: 12, whiteSpace: 'nowrap', textAlign: 'right' },
  swatch: { display: 'inline-block', width: 12, height: 12, borderRadius: 2, flex: '0 0 auto' },
  ask: { background: '#3d2e12', border: '1px solid #e6a23c', borderRadius: 4, padding: 8 },
  unsaved: { color: '#ffd591', fontSize: 12 },
  row: { display: 'flex', gap: 6, flexWrap: 'wrap', marginTop: 6 },
};

/** A volume in mL for the panel: one decimal below 100 mL. */
export function formatMl(voxels: number, voxelMm3: number | undefined): string | undefined {
  if (!voxelMm3 || !(voxelMm3 > 0)) return undefined;
  const ml = (voxels * voxelMm3) / 1000;
  return `${ml < 100 ? ml.toFixed(1) : Math.round(ml).toLocaleString('en')} mL`;
}

export function ResultSection({ s, actions }: { s: OneShotState; actions: PanelActions }) {
  const busy = s.status === 'running' || s.status === 'saving';
  return (
    <>
      {s.confirmReplace && (
        <div data-testid="oneshot-replace-ask" role="alertdialog" style={S.ask}>
          <div>
            The current result has corrections that are not saved to the PACS. A new segmentation
            would replace it.
          </div>
          <div style={S.row}>
            <Button
              testId="oneshot-replace-confirm"
              onClick={() => actions.resolveReplace('replace')}
            >
              Replace
            </Button>
            <Button testId="oneshot-replace-keep" onClick={() => actions.resolveReplace('keep')}>
              Keep both
            </Button>
            <Button
              testId="oneshot-replace-cancel"
              onClick={() => actions.resolveReplace('cancel')}
            >
              Cancel
            </Button>
          </div>
        </div>
      )}

      {s.results.length > 1 && (
        <div>
          <div style={S.label}>Result</div>
          <select
            data-testid="oneshot-result-select"
            style={UI.field}
            value={s.segmentationId ?? ''}
            disabled={busy}
            onChange={(e) => actions.selectResult(e.target.value)}
          >
            {s.results.map((r) => (
              <option key={r.segmentationId} value={r.segmentationId}>
                {r.label}
              </option>
            ))}
          </select>
        </div>
      )}

      {s.segments.length > 0 && (
        <div>
          <div style={S.label}>Segments</div>
          <ul data-testid="oneshot-segments" style={S.list}>
            {s.segments.map((g) => {
              const ml = formatMl(g.voxels, s.voxelMm3);
              return (
                <li
                  key={g.value}
                  style={S.item}
                  data-testid="oneshot-segment"
                  data-label-value={g.value}
                  data-voxels={g.voxels}
                  data-ml={ml ? ((g.voxels * (s.voxelMm3 ?? 0)) / 1000).toFixed(3) : ''}
                >
                  <span style={{ ...S.swatch, background: `rgb(${g.color.join(',')})` }} />
                  <span style={S.name}>{g.name}</span>
                  <span style={S.amount}>
                    {ml ? `${ml} · ` : ''}
                    {g.voxels.toLocaleString('en')} vx
                  </span>
                </li>
              );
            })}
          </ul>
          {s.unsavedEdits ? (
            <div data-testid="oneshot-unsaved" role="status" style={{ ...S.unsaved, marginTop: 4 }}>
              Corrections not saved to the PACS yet.
            </div>
          ) : (
            <div style={{ ...S.small, marginTop: 4 }}>
              Correct the result with the brush and eraser in the Segmentation panel before saving.
            </div>
          )}
        </div>
      )}

      {s.undo && (
        <div style={S.row}>
          <Button testId="oneshot-undo" onClick={actions.undoReplace} disabled={busy}>
            {s.undo === 'undo' ? 'Undo replace' : 'Redo replace'}
          </Button>
        </div>
      )}
    </>
  );
}
