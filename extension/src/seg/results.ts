/**
 * The one-shot results in the viewer and the reader's corrections to them: live voxel counts and
 * volumes after each edit, whether the labelmap holds unsaved corrections, the question asked
 * before a new segmentation would replace them (Replace / Keep both / Cancel), the undo of the
 * last replacement, and the warning before a study with unsaved corrections is closed.
 */
import { countLabels } from '@rrl/core/volume/preprocess.js';
import type { OneShotContext } from '../inference/runOneShot.js';
import { getCornerstoneLibraries, type CornerstoneLibraries } from '../ohif/types.js';
import type { OneShotState, Store } from '../state/store.js';
import { contentHash, readLabelsInVolumeOrder, showLabelmap } from './labelmap.js';

/** The store fields that describe one result (switched together when the current one changes). */
export type ResultFields = Pick<
  OneShotState,
  | 'segments'
  | 'sourceDisplaySetUID'
  | 'sourceSeriesUID'
  | 'lastSave'
  | 'saveIdentity'
  | 'cleanHash'
  | 'unsavedEdits'
  | 'voxelMm3'
  | 'resultModelId'
  | 'timings'
>;

const FIELD_NAMES: (keyof ResultFields)[] = [
  'segments',
  'sourceDisplaySetUID',
  'sourceSeriesUID',
  'lastSave',
  'saveIdentity',
  'cleanHash',
  'unsavedEdits',
  'voxelMm3',
  'resultModelId',
  'timings',
];

export interface ResultLayout {
  label: string;
  viewportId: string;
  /** The source images in volume order (slice k of the labels). */
  volumeImageIds: string[];
  sliceSize: number;
}

interface ResultRecord extends ResultLayout {
  segmentationId: string;
  fields: ResultFields;
}

/** One-shot results in the viewer, by segmentation id; the current one is the store's. */
const results = new Map<string, ResultRecord>();
/** The result the last replacement removed, with its labels (what "Undo replace" restores). */
let replaced: { record: ResultRecord; labels: Uint8Array } | undefined;

/** How long the labelmap must be still before its counts and hash are recomputed. */
export const EDIT_DEBOUNCE_MS = 300;

function fieldsOf(s: OneShotState): ResultFields {
  const out: Partial<ResultFields> = {};
  for (const k of FIELD_NAMES) (out as Record<string, unknown>)[k] = s[k];
  return out as ResultFields;
}

function publish(store: Store, patch: Partial<OneShotState> = {}): void {
  const current = 'segmentationId' in patch ? patch.segmentationId : store.get().segmentationId;
  const list = [...results.values()]
    .sort((a, b) => Number(b.segmentationId === current) - Number(a.segmentationId === current))
    .map((r) => ({ segmentationId: r.segmentationId, label: r.label }));
  store.set({ results: list, ...patch, ...(replaced ? {} : { undo: undefined }) });
}

/** Keeps the current result's fields (counts, save state) with its record before a switch. */
function stashCurrent(store: Store): void {
  const s = store.get();
  const rec = s.segmentationId ? results.get(s.segmentationId) : undefined;
  if (rec) rec.fields = fieldsOf(s);
}

function removeFromViewer(ctx: OneShotContext, segmentationId: string): void {
  try {
    ctx.servicesManager.services.segmentationService.remove(segmentationId);
  } catch {
    // already gone
  }
}

/** The current result's labels (volume order), or undefined when it is no longer in the viewer. */
function currentLabels(
  ctx: OneShotContext,
  libs: CornerstoneLibraries,
): { rec: ResultRecord; labels: Uint8Array } | undefined {
  const id = ctx.store.get().segmentationId;
  const rec = id ? results.get(id) : undefined;
  if (!rec || !ctx.servicesManager.services.segmentationService.getSegmentation(rec.segmentationId))
    return undefined;
  return {
    rec,
    labels: readLabelsInVolumeOrder(
      libs,
      ctx,
      rec.segmentationId,
      rec.volumeImageIds,
      rec.sliceSize,
    ),
  };
}

/**
 * A new result is in the viewer. 'replace' removes the current one from the viewer (its labels
 * are kept for "Undo replace"); 'keep' leaves it there as a second segmentation.
 */
export function addResult(
  ctx: OneShotContext,
  segmentationId: string,
  layout: ResultLayout,
  fields: ResultFields,
  mode: 'replace' | 'keep',
): void {
  const { store } = ctx;
  const previous = store.get().segmentationId;
  stashCurrent(store);
  if (previous && previous !== segmentationId && mode === 'replace') {
    try {
      const cur = currentLabels(ctx, getCornerstoneLibraries(ctx.extensionManager));
      if (cur) replaced = { record: cur.rec, labels: cur.labels };
    } catch {
      replaced = undefined; // it cannot be read back: nothing to undo to
    }
    results.delete(previous);
    removeFromViewer(ctx, previous);
  }
  results.set(segmentationId, { ...layout, segmentationId, fields });
  publish(store, { ...fields, segmentationId, undo: replaced ? 'undo' : undefined });
}

/**
 * Recounts the current result's labels and compares them with its clean state (debounced after
 * edits; at once before a new segmentation or a save). Returns whether it has unsaved edits.
 */
export function refreshCurrent(ctx: OneShotContext): boolean {
  const { store } = ctx;
  const s = store.get();
  if (!s.segmentationId) return false;
  const cur = currentLabels(ctx, getCornerstoneLibraries(ctx.extensionManager));
  if (!cur) {
    forgetResult(ctx, s.segmentationId);
    return false;
  }
  const counts = countLabels(cur.labels, 255);
  const hash = contentHash(cur.labels);
  const segments = s.segments.map((g) => ({ ...g, voxels: counts[g.value] ?? 0 }));
  const unsavedEdits = hash !== s.cleanHash;
  const changed =
    unsavedEdits !== s.unsavedEdits || segments.some((g, i) => g.voxels !== s.segments[i]?.voxels);
  if (changed) store.set({ segments, unsavedEdits });
  return unsavedEdits;
}

/** The current labelmap was stored in the PACS: it is clean again. */
export function markSaved(ctx: OneShotContext, savedLabelsHash: string): void {
  ctx.store.set({ cleanHash: savedLabelsHash });
  refreshCurrent(ctx);
}

/** The content hash of the current result as it is now (volume order). */
export function currentHash(ctx: OneShotContext): string | undefined {
  const cur = currentLabels(ctx, getCornerstoneLibraries(ctx.extensionManager));
  return cur ? contentHash(cur.labels) : undefined;
}

/** A result left the viewer (the reader removed it in the Segmentation panel). */
function forgetResult(ctx: OneShotContext, segmentationId: string): void {
  const { store } = ctx;
  if (!results.delete(segmentationId)) return;
  if (store.get().segmentationId !== segmentationId) {
    publish(store);
    return;
  }
  const next = results.values().next().value as ResultRecord | undefined;
  if (next) {
    publish(store, { ...next.fields, segmentationId: next.segmentationId });
  } else {
    publish(store, {
      segmentationId: undefined,
      segments: [],
      unsavedEdits: false,
      cleanHash: undefined,
      lastSave: undefined,
      status: store.get().status === 'running' ? 'running' : 'idle',
    });
  }
}

/** Makes another one-shot result in the viewer the current one (what Save and the volumes use). */
export function selectResult(ctx: OneShotContext, segmentationId: string): void {
  const rec = results.get(segmentationId);
  if (!rec || ctx.store.get().segmentationId === segmentationId) return;
  stashCurrent(ctx.store);
  publish(ctx.store, { ...rec.fields, segmentationId, status: 'done', message: undefined });
  refreshCurrent(ctx);
}

/**
 * "Undo replace": the result the last replacement removed comes back, and the one that replaced
 * it is kept for "Redo" (nothing is lost either way).
 */
export async function undoReplace(ctx: OneShotContext): Promise<void> {
  const { store } = ctx;
  const back = replaced;
  if (!back) return;
  const ds = ctx.servicesManager.services.displaySetService.getDisplaySetByUID(
    back.record.fields.sourceDisplaySetUID ?? '',
  );
  if (!ds) {
    replaced = undefined;
    publish(store, {
      undo: undefined,
      message: 'The series of the replaced result is no longer open: it cannot be brought back.',
      messageKind: 'error',
    });
    return;
  }
  const libs = getCornerstoneLibraries(ctx.extensionManager);
  const now = currentLabels(ctx, libs);
  const id = await showLabelmap(ctx, {
    displaySet: ds,
    viewportId: back.record.viewportId,
    volumeImageIds: back.record.volumeImageIds,
    labels: back.labels,
    sliceSize: back.record.sliceSize,
    segments: back.record.fields.segments,
    label: back.record.label,
  });
  stashCurrent(store);
  if (now) {
    replaced = { record: { ...now.rec, fields: fieldsOf(store.get()) }, labels: now.labels };
    results.delete(now.rec.segmentationId);
    removeFromViewer(ctx, now.rec.segmentationId);
  } else {
    replaced = undefined;
  }
  results.set(id, { ...back.record, segmentationId: id });
  const undo = store.get().undo === 'undo' ? 'redo' : 'undo';
  publish(store, {
    ...back.record.fields,
    segmentationId: id,
    status: 'done',
    undo: replaced ? undo : undefined,
    message:
      undo === 'redo'
        ? 'The replaced result is back, with its corrections. “Redo replace” shows the new result again.'
        : 'The new result is back.',
    messageKind: 'info',
  });
  refreshCurrent(ctx);
}

/** Forgets every result (a study was opened or closed: the viewer's segmentations are gone). */
export function forgetResults(): void {
  results.clear();
  replaced = undefined;
}

let watching: (() => void) | undefined;

const DATA_MODIFIED = 'CORNERSTONE_TOOLS_SEGMENTATION_DATA_MODIFIED';
const REMOVED = 'CORNERSTONE_TOOLS_SEGMENTATION_REMOVED';

/**
 * Follows the reader's edits: after each change to a one-shot result (brush, eraser, undo in the
 * viewer), once the labelmap is still for EDIT_DEBOUNCE_MS, its counts, volumes and unsaved
 * state are recomputed; a result removed in the Segmentation panel is forgotten.
 */
export function watchEdits(ctx: OneShotContext): void {
  if (watching) return;
  const target = getCornerstoneLibraries(ctx.extensionManager).cornerstone.eventTarget;
  if (!target) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onModified = (e: Event) => {
    const id = (e as CustomEvent<{ segmentationId?: string }>).detail?.segmentationId;
    if (!id || id !== ctx.store.get().segmentationId) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      try {
        refreshCurrent(ctx);
      } catch (err) {
        console.warn('[one-shot] could not recount the labelmap', err);
      }
    }, EDIT_DEBOUNCE_MS);
  };
  const onRemoved = (e: Event) => {
    const id = (e as CustomEvent<{ segmentationId?: string }>).detail?.segmentationId;
    if (id && results.has(id)) forgetResult(ctx, id);
  };
  target.addEventListener(DATA_MODIFIED, onModified);
  target.addEventListener(REMOVED, onRemoved);
  watching = () => {
    clearTimeout(timer);
    target.removeEventListener(DATA_MODIFIED, onModified);
    target.removeEventListener(REMOVED, onRemoved);
    watching = undefined;
  };
}

export function stopWatchingEdits(): void {
  watching?.();
}

export const CLOSE_WARNING =
  'The one-shot segmentation has corrections that are not saved to the PACS. Leave the study and lose them?';

/**
 * Warns before a study with unsaved corrections is closed: the browser's own prompt when the
 * tab is closed or reloaded, and a confirmation when the viewer's "back to the study list" is
 * clicked.
 */
export function installCloseGuard(store: Store): void {
  window.addEventListener('beforeunload', (e) => {
    if (!store.get().unsavedEdits) return;
    e.preventDefault();
    e.returnValue = '';
  });
  window.addEventListener(
    'click',
    (e) => {
      const target = e.target as Element | null;
      if (!store.get().unsavedEdits || !target?.closest?.('[data-cy="return-to-work-list"]'))
        return;
      if (!window.confirm(CLOSE_WARNING)) {
        e.stopImmediatePropagation();
        e.preventDefault();
      }
    },
    true,
  );
}
