/**
 * The few shapes of the OHIF 3.13 host that the extension uses: OHIF publishes no usable
 * TypeScript types on npm, so these are written from the host's source and checked at run time
 * where a wrong guess would crash (see `requireService`). cornerstone3D's types come from its own
 * packages (below).
 */

export interface DisplaySet {
  displaySetInstanceUID: string;
  StudyInstanceUID: string;
  SeriesInstanceUID: string;
  SeriesDescription?: string;
  SeriesNumber?: number | string;
  Modality?: string;
  SOPClassUID?: string;
  isReconstructable?: boolean;
  /** Naturalized per-instance metadata (keys like ImagePositionPatient). imageId is non-enumerable. */
  instances?: Record<string, unknown>[];
  imageIds?: string[];
}

export interface DisplaySetService {
  getDisplaySetByUID(uid: string): DisplaySet | undefined;
  getActiveDisplaySets(): DisplaySet[];
}

export interface ViewportGridService {
  getActiveViewportId(): string;
  getDisplaySetsUIDsForViewport(viewportId: string): string[] | undefined;
  getState(): { viewports: Map<string, { viewportId: string; displaySetInstanceUIDs?: string[] }> };
}

export interface SegmentConfig {
  label: string;
  active?: boolean;
  locked?: boolean;
}

export interface CsSegmentation {
  segmentationId: string;
  label?: string;
  segments: Record<string, { label: string; segmentIndex: number } | undefined>;
  representationData: { Labelmap?: { imageIds?: string[]; volumeId?: string } };
}

export interface SegmentationService {
  createLabelmapForDisplaySet(
    displaySet: DisplaySet,
    options: { label?: string; segmentationId?: string; segments?: Record<number, SegmentConfig> },
  ): Promise<string>;
  addSegmentationRepresentation(
    viewportId: string,
    args: { segmentationId: string; type?: string },
  ): Promise<void>;
  getSegmentation(segmentationId: string): CsSegmentation | undefined;
  setSegmentColor(
    viewportId: string,
    segmentationId: string,
    segmentIndex: number,
    color: [number, number, number, number],
  ): void;
  remove(segmentationId: string): void;
}

export interface UINotificationService {
  show(args: {
    title: string;
    message: string;
    type?: 'info' | 'success' | 'warning' | 'error';
    duration?: number;
  }): void;
}

export interface CustomizationService {
  getCustomization(id: string): unknown;
}

export interface ToolbarService {
  register(buttons: unknown[]): void;
  updateSection(key: string, buttonIds: string[]): void;
}

export interface ToolGroupService {
  createToolGroupAndAddTools(id: string, tools: unknown): void;
  destroy(): void;
}

export interface Services {
  displaySetService: DisplaySetService;
  viewportGridService: ViewportGridService;
  segmentationService: SegmentationService;
  uiNotificationService: UINotificationService;
  customizationService: CustomizationService;
  toolbarService: ToolbarService;
  toolGroupService: ToolGroupService;
  [name: string]: unknown;
}

export interface ServicesManager {
  services: Services;
}

export interface CommandsManager {
  runCommand(name: string, options?: Record<string, unknown>, context?: string): unknown;
}

export interface DataSourceLike {
  getConfig?(): { wadoRoot?: string; stowRoot?: string; qidoRoot?: string } | undefined;
}

export interface ExtensionManager {
  getModuleEntry(id: string): { exports?: Record<string, unknown> } | undefined;
  getActiveDataSource?(): DataSourceLike[] | DataSourceLike | undefined;
}

// ---- cornerstone3D: the types of @cornerstonejs/core and /tools 5.6.8, the versions inside the
// prebuilt OHIF 3.13.2 viewer (a type-only dependency: at run time the libraries come from the
// host through getCornerstoneLibraries()).
import type * as CornerstoneCoreModule from '@cornerstonejs/core';
import type * as CornerstoneToolsModule from '@cornerstonejs/tools';

export type CornerstoneCore = typeof CornerstoneCoreModule;
export type CornerstoneTools = typeof CornerstoneToolsModule;
export type CsImage = CornerstoneCoreModule.Types.IImage;
export type CsVolume = CornerstoneCoreModule.Types.IImageVolume;
/** The typed array of an image's pixels (a labelmap slice: one label value per pixel). */
export type PixelData = CornerstoneCoreModule.Types.PixelDataTypedArray;
/** A viewport the extension reads a volume id from or navigates (volume or stack). */
export type CsViewport = CornerstoneCoreModule.Types.IViewport & {
  getVolumeId?(): string;
  jumpToWorld?(world: CornerstoneCoreModule.Types.Point3): boolean;
};

export interface CornerstoneLibraries {
  cornerstone: CornerstoneCore;
  cornerstoneTools: CornerstoneTools;
}

/** getCornerstoneLibraries() through the cornerstone extension's supported utility module. */
export function getCornerstoneLibraries(extensionManager: ExtensionManager): CornerstoneLibraries {
  const entry = extensionManager.getModuleEntry('@ohif/extension-cornerstone.utilityModule.common');
  const fn = entry?.exports?.getCornerstoneLibraries;
  if (typeof fn !== 'function') {
    throw new Error(
      'The viewer has no @ohif/extension-cornerstone utility module (getCornerstoneLibraries). This extension needs OHIF 3.x with the cornerstone extension loaded.',
    );
  }
  return fn() as CornerstoneLibraries;
}

export function requireService<K extends keyof Services>(
  sm: ServicesManager,
  name: K,
): Services[K] {
  const s = sm.services[name];
  if (!s) {
    throw new Error(`The viewer has no ${String(name)}; this extension needs OHIF 3.13 or later.`);
  }
  return s;
}

/** The image id of an OHIF instance (a non-enumerable runtime property). */
export function instanceImageId(inst: Record<string, unknown>): string | undefined {
  const id = (inst as { imageId?: unknown }).imageId;
  return typeof id === 'string' ? id : undefined;
}

/** SEG/RT/SR display sets are never the image series to segment. */
const NON_IMAGE_MODALITIES = new Set([
  'SEG',
  'RTSTRUCT',
  'RTPLAN',
  'RTDOSE',
  'SR',
  'PR',
  'KO',
  'DOC',
]);

export function isImageDisplaySet(ds: DisplaySet | undefined): ds is DisplaySet {
  return !!ds && !NON_IMAGE_MODALITIES.has(String(ds.Modality ?? '').toUpperCase());
}
