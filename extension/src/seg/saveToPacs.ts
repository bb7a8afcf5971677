/**
 * Save to PACS: the labelmap in the viewer (with the reader's corrections) → BINARY DICOM SEG
 * (core/src/dicom/seg.ts) → STOW-RS through the companion server. Each save of new content is
 * a new series; saving the same content again (a retry after a failure or a timeout) reuses the
 * same SOP Instance UID, so the PACS keeps one copy. On failure the labelmap stays in the viewer
 * and saving again works.
 */
import { newUid } from '@rrl/core/dicom/dcmjs.js';
import type { SaveIdentity } from '../state/store.js';
import {
  segmentsFromLabels,
  writeBinarySeg,
  type SegmentDescription,
} from '@rrl/core/dicom/seg.js';
import type { ModelMetadata } from '@rrl/core/format/metadata.js';
import { getCornerstoneLibraries } from '../ohif/types.js';
import type { OneShotContext } from '../inference/runOneShot.js';
import {
  UserFacingError,
  labelmapImagesByReference,
  readLabelmapForInstances,
} from '../utils/viewerData.js';
import { StowError, stowInstances } from './stow.js';
import { contentHash } from './labelmap.js';
import { currentHash, markSaved } from './results.js';

export const SOFTWARE_VERSION = 'rrl-medsam-ohif 0.1.0';

export function segmentDescriptions(meta: ModelMetadata): SegmentDescription[] {
  // The reader may have corrected the model's output with brushes before saving.
  return segmentsFromLabels(
    meta.labels,
    'SEMIAUTOMATIC',
    `${meta.name} ${meta.version}`.slice(0, 64),
  );
}

/** The next free series number in the study (max existing + 1, at least 9001 for our results). */
export function nextSeriesNumber(
  existing: (number | string | undefined)[],
  saveCount: number,
): number {
  const max = existing.reduce<number>((m, v) => {
    const n = Number(v);
    return Number.isFinite(n) && n > m ? n : m;
  }, 0);
  return Math.max(max + 1, 9001 + saveCount);
}

/** The labelmap's identity for saving: changes whenever the reader's corrections change it. */
export function labelmapKey(segmentationId: string, labelmap: Uint8Array): string {
  return `${segmentationId}:${contentHash(labelmap)}`;
}

/**
 * The UIDs and series number of this save: those of the previous try when the labelmap is the
 * same (a retry after a failure or a timeout must not store a duplicate), else new ones.
 */
export function saveIdentityFor(
  previous: SaveIdentity | undefined,
  key: string,
  seriesNumber: () => number,
): SaveIdentity {
  if (previous && previous.key === key) return previous;
  return {
    key,
    seriesInstanceUID: newUid(),
    sopInstanceUID: newUid(),
    seriesNumber: seriesNumber(),
  };
}

let saving = false;

export async function saveToPacs(ctx: OneShotContext): Promise<void> {
  const { servicesManager: sm, extensionManager, store } = ctx;
  if (saving) throw new UserFacingError('A save is already in progress.');
  const s = store.get();
  // The labels of the model that made the result (the reader may have chosen another since).
  const model = s.models.find((m) => m.metadata.id === (s.resultModelId ?? s.selectedModelId));
  if (!s.segmentationId || !s.sourceDisplaySetUID || !model) {
    store.set({
      message:
        s.segmentationId && !model
          ? `The model that made this result (${s.resultModelId ?? 'unknown'}) is no longer published, so its labels cannot be coded in a SEG. Publish it again or segment with a published model.`
          : 'There is no one-shot segmentation to save yet. Run the segmentation first.',
      messageKind: 'error',
    });
    return;
  }
  saving = true;
  const prevStatus = s.status;
  store.set({
    status: 'saving',
    phase: 'Writing the DICOM SEG',
    message: undefined,
    messageKind: undefined,
  });
  try {
    const ds = sm.services.displaySetService.getDisplaySetByUID(s.sourceDisplaySetUID);
    if (!ds?.instances?.length) {
      throw new UserFacingError(
        'The source series of the segmentation is no longer open. Reopen the study and run again.',
      );
    }
    const libs = getCornerstoneLibraries(extensionManager);
    const images = labelmapImagesByReference(libs, sm, s.segmentationId);
    const labelmap = readLabelmapForInstances(images, ds);
    const savedHash = currentHash(ctx);
    let any = false;
    for (let i = 0; i < labelmap.length; i++) {
      if (labelmap[i] !== 0) {
        any = true;
        break;
      }
    }
    if (!any) {
      throw new UserFacingError(
        'The segmentation is empty: nothing to save. Run the model again or draw with the brush.',
      );
    }
    const meta = model.metadata;
    const studySeries = sm.services.displaySetService
      .getActiveDisplaySets()
      .filter((d) => d.StudyInstanceUID === ds.StudyInstanceUID)
      .map((d) => d.SeriesNumber);
    const identity = saveIdentityFor(s.saveIdentity, labelmapKey(s.segmentationId, labelmap), () =>
      nextSeriesNumber(studySeries, s.saveCount),
    );
    const retry = identity === s.saveIdentity;
    store.set({ saveIdentity: identity });
    const seriesNumber = identity.seriesNumber;
    const seriesDescription = `One-shot SEG: ${meta.name}`.slice(0, 64);
    const written = writeBinarySeg({
      sourceInstances: ds.instances,
      labelmap,
      segments: segmentDescriptions(meta),
      seriesDescription,
      seriesNumber,
      seriesInstanceUID: identity.seriesInstanceUID,
      sopInstanceUID: identity.sopInstanceUID,
      contentLabel: 'ONESHOT',
      manufacturer: 'RRL-MedSAM for OHIF',
      softwareVersions: SOFTWARE_VERSION,
      deviceSerialNumber: meta.id.slice(0, 64),
    });
    store.set({ phase: 'Storing in the PACS (STOW-RS)' });
    await stowInstances(ctx.config.dicomWebRoot, [written.bytes]);
    store.set({
      status: 'saved',
      phase: undefined,
      saveCount: retry ? s.saveCount : s.saveCount + 1,
      lastSave: {
        seriesInstanceUID: written.seriesInstanceUID,
        sopInstanceUID: written.sopInstanceUID,
        seriesDescription,
        seriesNumber,
      },
      message: `Saved to the PACS as series ${seriesNumber} "${seriesDescription}" (${written.frameCount} frames) in study ${ds.StudyInstanceUID}. It appears in the study's series list when the study is reopened.`,
      messageKind: 'success',
    });
    if (savedHash) markSaved(ctx, savedHash);
    sm.services.uiNotificationService.show({
      title: 'One-shot segmentation saved',
      message: `Series ${seriesNumber} "${seriesDescription}" is in the PACS.`,
      type: 'success',
    });
  } catch (e) {
    store.set({
      status: prevStatus === 'saved' ? 'saved' : 'done',
      phase: undefined,
      message: e instanceof Error ? e.message : String(e),
      messageKind: 'error',
    });
    if (!(e instanceof UserFacingError || e instanceof StowError)) {
      console.error('[one-shot] save failed', e);
    }
    sm.services.uiNotificationService.show({
      title: 'Saving the segmentation failed',
      message: e instanceof Error ? e.message : String(e),
      type: 'error',
    });
  } finally {
    saving = false;
  }
}
