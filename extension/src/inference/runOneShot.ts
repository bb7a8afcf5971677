/**
 * The one-shot segmentation of the active series: validate the series and the model, read the
 * volume, resample + normalise, run the model in the worker, resample back, create a labelmap.
 * Nothing is left half-made: on any failure the partial segmentation is removed.
 */
import { checkModelFitsSeries, FIT_LIMITS } from '@rrl/core/format/metadata.js';
import {
  computeVolumeGeometry,
  GeometryError,
  instanceGeometryFromNaturalized,
  type VolumeGeometry,
} from '@rrl/core/volume/geometry.js';
import {
  countLabels,
  indexToWorld,
  labelCentroid,
  labelsFromLogits,
  modelInputDims,
  prepareModelInput,
} from '@rrl/core/volume/preprocess.js';
import type { Dims } from '@rrl/core/volume/resample.js';
import {
  getCornerstoneLibraries,
  instanceImageId,
  type DisplaySet,
  type ExtensionManager,
  type ServicesManager,
} from '../ohif/types.js';
import type { ModelEntry, SegmentInfo, Store } from '../state/store.js';
import type { OneShotConfig } from '../utils/config.js';
import {
  NotDisplayedError,
  UserFacingError,
  activeImageDisplaySet,
  loadVolume,
  viewportsShowing,
  volumeVoxels,
} from '../utils/viewerData.js';
import { contentHash, showLabelmap } from '../seg/labelmap.js';
import { addResult } from '../seg/results.js';
import {
  InferenceCancelled,
  defaultWorkerUrl,
  startInference,
  type RunningInference,
} from './client.js';

export interface OneShotContext {
  servicesManager: ServicesManager;
  extensionManager: ExtensionManager;
  store: Store;
  config: OneShotConfig;
}

/** Results made in this viewer session (their segmentation labels are numbered). */
let runNumber = 0;

let current: { cancelled: boolean; inference?: RunningInference } | undefined;

/** Cancels the running segmentation (terminates the worker); nothing is changed in the viewer. */
export function cancelOneShot(): void {
  if (!current) return;
  current.cancelled = true;
  current.inference?.cancel();
}

function selectedModel(store: Store): ModelEntry {
  const s = store.get();
  const m = s.models.find((x) => x.metadata.id === s.selectedModelId) ?? s.models[0];
  if (!m) {
    throw new UserFacingError(
      s.rejectedModels[0]
        ? `No usable model: ${s.rejectedModels.length} model(s) were rejected (${s.rejectedModels[0].id}: ${s.rejectedModels[0].reason}).`
        : 'No model is published on the server. Publish a model (model.onnx + metadata.json) in the models folder, then reload.',
    );
  }
  return m;
}

/** The series' volume geometry, or a UserFacingError saying why it is not one regular volume. */
function checkedGeometry(displaySet: DisplaySet): VolumeGeometry {
  try {
    return computeVolumeGeometry(
      (displaySet.instances ?? []).map(instanceGeometryFromNaturalized),
      {
        minSlices: FIT_LIMITS.minSlices,
        seriesInstanceUID: displaySet.SeriesInstanceUID,
      },
    );
  } catch (e) {
    if (e instanceof GeometryError) throw new UserFacingError(e.message);
    throw e;
  }
}

/**
 * Segments the active series. The new result replaces the panel's current one ('replace', which
 * can be undone) or joins it as a second segmentation ('keep').
 */
export async function runOneShot(
  ctx: OneShotContext,
  mode: 'replace' | 'keep' = 'replace',
): Promise<void> {
  const { servicesManager: sm, extensionManager, store } = ctx;
  if (current) {
    throw new UserFacingError('A segmentation is already running. Wait for it or cancel it.');
  }
  const run: { cancelled: boolean; inference?: RunningInference } = { cancelled: false };
  current = run;
  const checkCancelled = () => {
    if (run.cancelled) throw new InferenceCancelled();
  };
  let createdSegmentationId: string | undefined;
  const t0 = performance.now();
  store.set({
    status: 'running',
    phase: 'Checking the series',
    progress: undefined,
    message: undefined,
    messageKind: undefined,
    timings: undefined,
  });
  try {
    const model = selectedModel(store);
    const meta = model.metadata;
    let active: { displaySet: DisplaySet; viewportId: string };
    try {
      active = activeImageDisplaySet(sm);
    } catch (e) {
      // Nothing shown: say what is wrong with the study's largest image series, if anything.
      if (e instanceof NotDisplayedError) checkedGeometry(e.largest);
      throw e;
    }
    const { displaySet, viewportId } = active;
    const seriesUID = displaySet.SeriesInstanceUID;
    const instances = displaySet.instances ?? [];

    // 1. Geometry of the series (bad input is caught here, before anything is loaded).
    const geometry = checkedGeometry(displaySet);
    const modality = String(displaySet.Modality ?? instances[0]?.Modality ?? '');
    const problems = checkModelFitsSeries(meta, {
      seriesInstanceUID: seriesUID,
      modality,
      dims: geometry.dims,
      spacing: geometry.spacing,
    });
    if (problems.length) throw new UserFacingError(problems.join(' '));

    // 2. Voxels.
    store.set({ phase: 'Loading the series' });
    const sortedImageIds = geometry.order.map((i) => {
      const inst = instances[i];
      const id = (inst && instanceImageId(inst)) ?? displaySet.imageIds?.[i];
      if (!id) throw new Error(`Instance ${i + 1} of series ${seriesUID} has no image id.`);
      return id;
    });
    const libs = getCornerstoneLibraries(extensionManager);
    const volume = await loadVolume(
      libs,
      viewportId,
      displaySet,
      sortedImageIds,
      () => run.cancelled,
    );
    checkCancelled();
    const dims: Dims = [volume.dimensions[0], volume.dimensions[1], volume.dimensions[2]];
    if (
      dims[0] !== geometry.dims[0] ||
      dims[1] !== geometry.dims[1] ||
      dims[2] !== geometry.dims[2]
    ) {
      throw new UserFacingError(
        `The viewer's volume of series ${seriesUID} is ${dims.join('×')} voxels but its images describe ${geometry.dims.join('×')}. Reload the study and try again.`,
      );
    }
    const t1 = performance.now();

    // 3. Pre-processing.
    store.set({ phase: 'Preparing the input' });
    const input = prepareModelInput(volumeVoxels(volume), dims, meta, geometry.spacing);
    const t2 = performance.now();
    checkCancelled();

    // 4. Inference in the worker.
    const pref = store.get().preferredProvider;
    const inference = startInference(
      defaultWorkerUrl(ctx.config.extensionBaseUrl),
      {
        modelUrl: model.baseUrl + encodeURIComponent(meta.onnx.file),
        modelSha256: meta.onnx.sha256,
        input,
        dims: modelInputDims(meta),
        inputName: meta.onnx.input.name,
        outputName: meta.onnx.output.name,
        preferredProvider: pref,
        output: 'logits',
      },
      (p) => store.set({ phase: p.message, progress: p.fraction }),
    );
    run.inference = inference;
    const result = await inference.result;
    checkCancelled();
    store.set({ provider: result.provider, fallbackReason: result.fallbackReason });
    if (!result.logits) throw new Error('The worker sent no logits.');

    // 5. Back to the source grid.
    store.set({ phase: 'Resampling the result', progress: undefined });
    const t3 = performance.now();
    const labels = labelsFromLogits(result.logits, meta, dims, geometry.spacing);
    const counts = countLabels(labels, meta.labels.length);
    const t4 = performance.now();

    // 6. Labelmap.
    store.set({ phase: 'Creating the labelmap' });
    runNumber++;
    const segLabel = `One-shot: ${meta.name}${runNumber > 1 ? ` (run ${runNumber})` : ''}`;
    const segLooks = meta.labels.map((l) => ({ value: l.value, name: l.name, color: l.color }));
    createdSegmentationId = await showLabelmap(ctx, {
      displaySet,
      viewportId,
      volumeImageIds: volume.imageIds,
      labels,
      sliceSize: dims[0] * dims[1],
      segments: segLooks,
      label: segLabel,
    });
    const viewports = viewportsShowing(sm, displaySet.displaySetInstanceUID);
    // Show the result at once: every view through the centroid of the largest structure.
    let largest = 0;
    for (let v = 1; v < counts.length; v++) {
      const n = counts[v] ?? 0;
      if (n > 0 && (largest === 0 || n > (counts[largest] ?? 0))) largest = v;
    }
    const c = largest ? labelCentroid(labels, dims, largest) : undefined;
    if (c) {
      const world = indexToWorld(c, volume.origin, volume.spacing, volume.direction);
      for (const vpId of viewports.length ? viewports : [viewportId]) {
        const vp = libs.cornerstone.getEnabledElementByViewportId(vpId)?.viewport;
        try {
          vp?.jumpToWorld?.(world);
        } catch {
          // navigation is a convenience only
        }
      }
    }
    const t5 = performance.now();

    const segInfo: SegmentInfo[] = segLooks.map((l) => ({ ...l, voxels: counts[l.value] ?? 0 }));
    addResult(
      ctx,
      createdSegmentationId,
      {
        label: segLabel,
        viewportId,
        volumeImageIds: volume.imageIds,
        sliceSize: dims[0] * dims[1],
      },
      {
        segments: segInfo,
        sourceDisplaySetUID: displaySet.displaySetInstanceUID,
        sourceSeriesUID: seriesUID,
        lastSave: undefined,
        saveIdentity: undefined,
        cleanHash: contentHash(labels),
        unsavedEdits: false,
        voxelMm3: geometry.spacing[0] * geometry.spacing[1] * geometry.spacing[2],
        resultModelId: meta.id,
        timings: {
          load: t1 - t0 + result.timings.loadMs,
          preprocess: t2 - t1,
          session: result.timings.sessionMs,
          inference: result.timings.inferenceMs,
          postprocess: t4 - t3,
          labelmap: t5 - t4,
          total: t5 - t0,
        },
      },
      mode,
    );
    store.set({
      status: 'done',
      phase: undefined,
      progress: undefined,
      message: `Segmented series ${displaySet.SeriesDescription ?? seriesUID}: ${segInfo.filter((s) => s.voxels > 0).length} of ${segInfo.length} structures found (${result.provider}).`,
      messageKind: 'info',
    });
    createdSegmentationId = undefined;
  } catch (e) {
    if (createdSegmentationId) {
      try {
        sm.services.segmentationService.remove(createdSegmentationId);
      } catch {
        // nothing more to undo
      }
    }
    const cancelled = e instanceof InferenceCancelled || run.cancelled;
    store.set({
      status: cancelled ? 'cancelled' : 'error',
      phase: undefined,
      progress: undefined,
      message: cancelled
        ? 'Segmentation cancelled. Nothing was changed.'
        : e instanceof Error
          ? e.message
          : String(e),
      messageKind: cancelled ? 'info' : 'error',
    });
    if (!cancelled && !(e instanceof UserFacingError))
      console.error('[one-shot] segmentation failed', e);
  } finally {
    current = undefined;
  }
}
