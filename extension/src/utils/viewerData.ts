/**
 * Reading the active series from the viewer and writing/reading labelmaps through the host's
 * supported APIs (services + getCornerstoneLibraries()).
 */
import {
  type CornerstoneLibraries,
  type CsImage,
  type CsViewport,
  type CsVolume,
  type PixelData,
  type DisplaySet,
  type ServicesManager,
  instanceImageId,
  isImageDisplaySet,
} from '../ohif/types.js';

/** A problem the user can fix; shown in the panel as is. */
export class UserFacingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserFacingError';
  }
}

/** The image display set shown in the active viewport (SEG/SR display sets are skipped). */
export function activeImageDisplaySet(sm: ServicesManager): {
  displaySet: DisplaySet;
  viewportId: string;
} {
  const { viewportGridService, displaySetService } = sm.services;
  const viewportId = viewportGridService.getActiveViewportId();
  const uids = viewportGridService.getDisplaySetsUIDsForViewport(viewportId) ?? [];
  for (const uid of uids) {
    const ds = displaySetService.getDisplaySetByUID(uid);
    if (isImageDisplaySet(ds)) return { displaySet: ds, viewportId };
  }
  // Any viewport with an image display set will do.
  for (const [id, vp] of viewportGridService.getState().viewports) {
    for (const uid of vp.displaySetInstanceUIDs ?? []) {
      const ds = displaySetService.getDisplaySetByUID(uid);
      if (isImageDisplaySet(ds)) return { displaySet: ds, viewportId: id };
    }
  }
  const images = displaySetService.getActiveDisplaySets().filter((d) => isImageDisplaySet(d));
  if (images.length === 0) {
    throw new UserFacingError(
      'This study has no image series (only SEG, SR or other non-image objects). Open a study with an MR or CT series.',
    );
  }
  throw new NotDisplayedError(images);
}

/**
 * No viewport shows an image series, but the study has some (e.g. the layout found no volume
 * to show). The caller checks them to say why; `largest` is the one with the most images.
 */
export class NotDisplayedError extends UserFacingError {
  readonly largest: DisplaySet;
  constructor(images: DisplaySet[]) {
    super(
      'No image series is shown in the viewer. Drag an MR or CT series from the series list into a viewport, then run again.',
    );
    this.largest = images.reduce((a, b) =>
      (b.instances?.length ?? 0) > (a.instances?.length ?? 0) ? b : a,
    );
  }
}

/** All viewports currently showing the display set. */
export function viewportsShowing(sm: ServicesManager, displaySetUID: string): string[] {
  const out: string[] = [];
  for (const [id, vp] of sm.services.viewportGridService.getState().viewports) {
    if ((vp.displaySetInstanceUIDs ?? []).includes(displaySetUID)) out.push(id);
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * The cornerstone volume of the display set, fully loaded: the MPR viewport's own volume when
 * there is one, else a new cached volume from the series' image ids.
 */
export async function loadVolume(
  libs: CornerstoneLibraries,
  viewportId: string,
  displaySet: DisplaySet,
  sortedImageIds: string[],
  isCancelled: () => boolean,
): Promise<CsVolume> {
  const { cornerstone: cs } = libs;
  const vp = cs.getEnabledElementByViewportId(viewportId)?.viewport as CsViewport | undefined;
  let volume: CsVolume | undefined;
  const vid = vp?.getVolumeId?.();
  if (vid) {
    const v = cs.cache.getVolume(vid);
    if (v && v.imageIds?.length === sortedImageIds.length) volume = v;
  }
  if (!volume) {
    const id = `cornerstoneStreamingImageVolume:oneshot-${displaySet.displaySetInstanceUID}`;
    volume =
      cs.cache.getVolume(id) ??
      (await cs.volumeLoader.createAndCacheVolume(id, { imageIds: sortedImageIds }));
    volume.load?.();
  }
  const status = (volume as unknown as { loadStatus?: { loaded?: boolean } }).loadStatus;
  const deadline = Date.now() + 300_000;
  while (status && !status.loaded) {
    if (isCancelled()) throw new UserFacingError('Cancelled while the series was loading.');
    if (Date.now() > deadline) {
      throw new UserFacingError(
        `Series ${displaySet.SeriesInstanceUID} did not finish loading within 5 minutes. Check the connection to the PACS and try again.`,
      );
    }
    await sleep(200);
  }
  return volume;
}

/** The volume's voxels as a flat array (x fastest). */
export function volumeVoxels(volume: CsVolume): ArrayLike<number> {
  const vm = volume.voxelManager;
  const data = vm?.getCompleteScalarDataArray?.() ?? vm?.getScalarData?.();
  if (!data) {
    throw new Error(
      'The viewer’s volume gives no voxel data (voxelManager has no getCompleteScalarDataArray).',
    );
  }
  return data;
}

/** Labelmap images of a segmentation, keyed by the image id of the source slice they cover. */
export function labelmapImagesByReference(
  libs: CornerstoneLibraries,
  sm: ServicesManager,
  segmentationId: string,
): Map<string, CsImage> {
  const seg = sm.services.segmentationService.getSegmentation(segmentationId);
  const ids = seg?.representationData?.Labelmap?.imageIds;
  if (!seg || !ids) {
    throw new UserFacingError(
      'The segmentation is no longer in the viewer (it was removed). Run the segmentation again.',
    );
  }
  const map = new Map<string, CsImage>();
  for (const id of ids) {
    const img = libs.cornerstone.cache.getImage(id);
    if (img?.referencedImageId) map.set(img.referencedImageId, img);
  }
  return map;
}

/** A labelmap image's pixels (one label value per pixel). */
export function pixelArray(img: CsImage): PixelData {
  const d = (img.voxelManager?.getScalarData?.() ?? img.getPixelData?.()) as PixelData | undefined;
  if (!d) throw new Error(`Labelmap image ${img.imageId} has no pixel data.`);
  return d;
}

/** Writes `labels` (volume order: slice k = volume.imageIds[k]) into the labelmap images. */
export function writeLabelsToLabelmap(
  images: Map<string, CsImage>,
  volumeImageIds: string[],
  labels: Uint8Array,
  sliceSize: number,
): void {
  volumeImageIds.forEach((imageId, k) => {
    const img = images.get(imageId);
    if (!img) {
      throw new Error(
        `The labelmap has no slice for source image ${k + 1}; cannot show the result.`,
      );
    }
    const d = pixelArray(img);
    if (d.length !== sliceSize) {
      throw new Error(`Labelmap slice ${k + 1} holds ${d.length} pixels, expected ${sliceSize}.`);
    }
    const off = k * sliceSize;
    d.set(labels.subarray(off, off + sliceSize));
    img.voxelManager?.setScalarData?.(d);
  });
}

/**
 * Reads the labelmap (possibly corrected with brushes) in the order of `instances`:
 * index (k·Rows + r)·Columns + c for instances[k] (the SEG writer's layout).
 */
export function readLabelmapForInstances(
  images: Map<string, CsImage>,
  displaySet: DisplaySet,
): Uint8Array {
  const instances = displaySet.instances ?? [];
  const first = instances[0];
  if (!first) throw new UserFacingError('The source series has no instances to reference.');
  const rows = Number(first.Rows);
  const cols = Number(first.Columns);
  const slice = rows * cols;
  const out = new Uint8Array(slice * instances.length);
  instances.forEach((inst, k) => {
    const imageId = instanceImageId(inst) ?? displaySet.imageIds?.[k];
    const img = imageId ? images.get(imageId) : undefined;
    if (!img) {
      throw new UserFacingError(
        `The labelmap has no slice for image ${k + 1} of series ${displaySet.SeriesInstanceUID}; run the segmentation again before saving.`,
      );
    }
    const d = pixelArray(img);
    if (d.length !== slice)
      throw new Error(`Labelmap slice ${k + 1} holds ${d.length} pixels, expected ${slice}.`);
    const off = k * slice;
    out.set(d.subarray(0, slice), off);
  });
  return out;
}
