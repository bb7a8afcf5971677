/** preRegistration: the panel store, configuration and actions, created once per viewer. */
import { cancelOneShot, runOneShot, type OneShotContext } from './inference/runOneShot.js';
import type { CommandsManager, ExtensionManager, ServicesManager } from './ohif/types.js';
import { registerHangingProtocolAttributes } from './getHangingProtocolModule.js';
import { saveToPacs } from './seg/saveToPacs.js';
import { Store } from './state/store.js';
import { resolveConfig } from './utils/config.js';
import { fetchCatalog } from './utils/modelCatalog.js';
import type { OneShotActions } from './commandsModule.js';
import { ApiClient } from './api/client.js';
import type { TrainingHooks } from './panels/OneShotPanel.js';
import { activeImageDisplaySet } from './utils/viewerData.js';
import {
  installCloseGuard,
  refreshCurrent,
  selectResult,
  undoReplace,
  watchEdits,
} from './seg/results.js';

export interface Runtime {
  ctx?: OneShotContext;
  commandsManager?: CommandsManager;
}

export const runtime: Runtime = {};

export function extensionBaseUrl(): string {
  return new URL('./', import.meta.url).href;
}

export function preRegistration(args: {
  servicesManager: ServicesManager;
  extensionManager: ExtensionManager;
  commandsManager: CommandsManager;
  appConfig?: Record<string, unknown>;
}): void {
  const hps = args.servicesManager.services.hangingProtocolService as
    Parameters<typeof registerHangingProtocolAttributes>[0] | undefined;
  if (hps?.addCustomAttribute) registerHangingProtocolAttributes(hps);
  const store = new Store();
  installCloseGuard(store);
  runtime.commandsManager = args.commandsManager;
  runtime.ctx = {
    servicesManager: args.servicesManager,
    extensionManager: args.extensionManager,
    store,
    config: resolveConfig(args.appConfig, extensionBaseUrl(), window.location.origin),
  };
}

function ctxOrThrow(): OneShotContext {
  if (!runtime.ctx) throw new Error('The One-Shot extension was not registered with the viewer.');
  return runtime.ctx;
}

export async function loadModels(): Promise<void> {
  const ctx = ctxOrThrow();
  ctx.store.set({ status: 'loading-models' });
  try {
    const { models, rejected } = await fetchCatalog(
      ctx.config.modelsIndexUrl,
      ctx.config.modelsRoot,
    );
    const sel = ctx.store.get().selectedModelId;
    ctx.store.set({
      status: 'idle',
      models,
      rejectedModels: rejected,
      selectedModelId: models.some((m) => m.metadata.id === sel) ? sel : models[0]?.metadata.id,
      message:
        models.length === 0
          ? 'No model is published on the server yet. Publish one in the models folder and reload.'
          : undefined,
      messageKind: models.length === 0 ? 'error' : undefined,
    });
  } catch (e) {
    ctx.store.set({
      status: 'error',
      message: e instanceof Error ? e.message : String(e),
      messageKind: 'error',
    });
  }
}

/** Runs the segmentation and reports a failure as a notification too. */
async function segmentNow(ctx: OneShotContext, mode: 'replace' | 'keep'): Promise<void> {
  await runOneShot(ctx, mode);
  const s = ctx.store.get();
  if (s.status === 'error' && s.message) {
    ctx.servicesManager.services.uiNotificationService.show({
      title: 'One-shot segmentation',
      message: s.message,
      type: 'error',
    });
  }
}

export const actions: OneShotActions = {
  async oneShotSegment() {
    const ctx = ctxOrThrow();
    if (ctx.store.get().models.length === 0) await loadModels();
    watchEdits(ctx);
    // A result with the reader's unsaved corrections is never replaced without asking.
    let edited = false;
    try {
      edited = refreshCurrent(ctx);
    } catch (e) {
      console.warn('[one-shot] could not read the current labelmap', e);
    }
    if (edited) {
      ctx.store.set({ confirmReplace: true, message: undefined, messageKind: undefined });
      return;
    }
    await segmentNow(ctx, 'replace');
  },
  async oneShotResolveReplace(choice) {
    const ctx = ctxOrThrow();
    ctx.store.set({ confirmReplace: false, message: undefined, messageKind: undefined });
    if (choice === 'cancel') return;
    await segmentNow(ctx, choice);
  },
  async oneShotUndoReplace() {
    const ctx = ctxOrThrow();
    try {
      await undoReplace(ctx);
    } catch (e) {
      ctx.store.set({ message: e instanceof Error ? e.message : String(e), messageKind: 'error' });
      console.error('[one-shot] undo failed', e);
    }
  },
  oneShotSelectResult(segmentationId) {
    selectResult(ctxOrThrow(), segmentationId);
  },
  async oneShotSave() {
    await saveToPacs(ctxOrThrow());
  },
  oneShotCancel() {
    cancelOneShot();
  },
  async oneShotLoadModels() {
    await loadModels();
  },
};

let api: ApiClient | undefined;

/**
 * How many SEG series the study has, and how many segments each defines (from the SEG's
 * metadata, before it is loaded), for the new-task form's plan choice.
 */
export function segsInStudy(segs: unknown[]): {
  segSeriesInStudy: number;
  segSegmentCounts: number[];
} {
  const counts: number[] = [];
  for (const d of segs as { instance?: unknown; instances?: unknown[] }[]) {
    const inst = (d.instance ?? d.instances?.[0]) as { SegmentSequence?: unknown } | undefined;
    const seq = inst?.SegmentSequence;
    if (Array.isArray(seq)) counts.push(seq.length);
    else if (seq && typeof seq === 'object') counts.push(1); // a one-item sequence, naturalized
  }
  return { segSeriesInStudy: segs.length, segSegmentCounts: counts };
}

/** The training workflow's connection to the viewer (API client, open series, model choice). */
export function trainingHooks(): TrainingHooks | undefined {
  const ctx = runtime.ctx;
  if (!ctx) return undefined;
  api ??= new ApiClient(); // same origin: the server that serves the viewer
  return {
    api,
    openSeries() {
      try {
        const { displaySet } = activeImageDisplaySet(ctx.servicesManager);
        return {
          studyUID: displaySet.StudyInstanceUID,
          seriesUID: displaySet.SeriesInstanceUID,
          modality: displaySet.Modality,
          description: displaySet.SeriesDescription,
          ...segsInStudy(
            ctx.servicesManager.services.displaySetService
              .getActiveDisplaySets()
              .filter(
                (d) => d.Modality === 'SEG' && d.StudyInstanceUID === displaySet.StudyInstanceUID,
              ),
          ),
        };
      } catch {
        return undefined;
      }
    },
    async useModel(modelId: string) {
      if (!ctx.store.get().models.some((m) => m.metadata.id === modelId)) await loadModels();
      ctx.store.set({ selectedModelId: modelId });
    },
  };
}
