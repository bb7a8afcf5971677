/**
 * Labelmaps in the viewer: show a label volume as a new cornerstone segmentation (named
 * segments, colours, in every viewport of its series), read one back in volume order, and the
 * content hash that tells whether the reader changed it.
 */
import {
  getCornerstoneLibraries,
  type CornerstoneLibraries,
  type DisplaySet,
} from '../ohif/types.js';
import type { OneShotContext } from '../inference/runOneShot.js';
import {
  labelmapImagesByReference,
  pixelArray,
  viewportsShowing,
  writeLabelsToLabelmap,
} from '../utils/viewerData.js';

export interface SegmentLook {
  value: number;
  name: string;
  color: [number, number, number];
}

/** FNV-1a over the labels: changes whenever the reader's corrections change them. */
export function contentHash(labels: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < labels.length; i++) {
    h ^= labels[i] ?? 0;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${labels.length}:${h.toString(16)}`;
}

/**
 * Creates a segmentation of `displaySet` holding `labels` (slice k = volumeImageIds[k]), shows
 * it in every viewport of the series (or `viewportId`) with the segments' colours, and returns
 * its id. On failure nothing is left in the viewer.
 */
export async function showLabelmap(
  ctx: OneShotContext,
  args: {
    displaySet: DisplaySet;
    viewportId: string;
    volumeImageIds: string[];
    labels: Uint8Array;
    sliceSize: number;
    segments: SegmentLook[];
    label: string;
  },
): Promise<string> {
  const sm = ctx.servicesManager;
  const libs = getCornerstoneLibraries(ctx.extensionManager);
  const { segmentationService } = sm.services;
  const config: Record<number, { label: string; active?: boolean }> = {};
  args.segments.forEach((l, i) => {
    config[l.value] = { label: l.name, active: i === 0 };
  });
  const id = await segmentationService.createLabelmapForDisplaySet(args.displaySet, {
    label: args.label,
    segments: config,
  });
  try {
    const images = labelmapImagesByReference(libs, sm, id);
    writeLabelsToLabelmap(images, args.volumeImageIds, args.labels, args.sliceSize);
    libs.cornerstoneTools.segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(
      id,
    );
    const viewports = viewportsShowing(sm, args.displaySet.displaySetInstanceUID);
    for (const vpId of viewports.length ? viewports : [args.viewportId]) {
      await segmentationService.addSegmentationRepresentation(vpId, {
        segmentationId: id,
        type: 'Labelmap',
      });
      for (const l of args.segments) {
        segmentationService.setSegmentColor(vpId, id, l.value, [...l.color, 255]);
      }
    }
    return id;
  } catch (e) {
    try {
      segmentationService.remove(id);
    } catch {
      // nothing more to undo
    }
    throw e;
  }
}

/** The segmentation's labels in volume order (slice k = volumeImageIds[k]). */
export function readLabelsInVolumeOrder(
  libs: CornerstoneLibraries,
  ctx: OneShotContext,
  segmentationId: string,
  volumeImageIds: string[],
  sliceSize: number,
): Uint8Array {
  const images = labelmapImagesByReference(libs, ctx.servicesManager, segmentationId);
  const out = new Uint8Array(sliceSize * volumeImageIds.length);
  volumeImageIds.forEach((imageId, k) => {
    const img = images.get(imageId);
    if (!img) throw new Error(`The labelmap has no slice for source image ${k + 1}.`);
    const d = pixelArray(img);
    const off = k * sliceSize;
    for (let i = 0; i < sliceSize; i++) out[off + i] = d[i] ?? 0;
  });
  return out;
}
