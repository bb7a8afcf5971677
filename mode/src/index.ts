/**
 * OHIF mode "One-Shot Segmentation" (loaded at run time by URL: default export). Listed for
 * studies with an MR or CT series; axial / sagittal / coronal views, the One-Shot panel and OHIF's
 * segmentation panel (brushes for corrections); toolbar with the one-shot tool.
 */
import { EXTENSION_ID, HANGING_PROTOCOL_ID, PANEL_ID, id } from './id.js';
import { initToolGroups } from './initToolGroups.js';

/** URL of our extension bundle, beside this mode bundle (dist/mode → dist/extension). */
export const EXTENSION_URL = new URL('../extension/index.js', import.meta.url).href;

const ohif = {
  layout: '@ohif/extension-default.layoutTemplateModule.viewerLayout',
  sopClassHandler: '@ohif/extension-default.sopClassHandlerModule.stack',
  seriesList: '@ohif/extension-default.panelModule.seriesList',
};
const cornerstone = {
  viewport: '@ohif/extension-cornerstone.viewportModule.cornerstone',
  labelMapPanel: '@ohif/extension-cornerstone.panelModule.panelSegmentationWithToolsLabelMap',
};
const seg = {
  sopClassHandler: '@ohif/extension-cornerstone-dicom-seg.sopClassHandlerModule.dicom-seg',
  viewport: '@ohif/extension-cornerstone-dicom-seg.viewportModule.dicom-seg',
};

export const SUPPORTED_MODALITIES = ['MR', 'CT'];

export const oneShotButton = {
  id: 'OneShotSegment',
  uiType: 'ohif.toolButton',
  props: {
    icon: 'icon-tool-brush',
    label: 'One-shot segment',
    tooltip: 'Segment the active series with the selected One-Shot model',
    commands: 'oneShotSegment',
    evaluate: 'evaluate.oneShot.idle',
  },
};

export const PRIMARY_SECTION = [
  'OneShotSegment',
  'WindowLevel',
  'Pan',
  'Zoom',
  'TrackballRotate',
  'Capture',
  'Layout',
  'Crosshairs',
  'MoreTools',
];

interface ModeServices {
  toolbarService: { register(b: unknown[]): void; updateSection(k: string, ids: unknown): void };
  toolGroupService: { createToolGroupAndAddTools(id: string, t: unknown): void; destroy(): void };
  customizationService: { getCustomization(id: string): unknown };
  measurementService?: { clearMeasurements(): void };
  syncGroupService?: { destroy(): void };
  segmentationService?: { destroy(): void };
  cornerstoneViewportService?: { destroy(): void };
  uiDialogService?: { hideAll(): void };
  uiModalService?: { hide(): void };
}

interface ModeArgs {
  servicesManager: { services: ModeServices };
  extensionManager: { getModuleEntry(id: string): { exports?: unknown } | undefined };
}

function toArray(v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

/** Valid when the study holds an MR or CT series. */
export function isValidMode({ modalities }: { modalities: string }) {
  const list = (modalities ?? '').split('\\');
  const valid = list.some((m) => SUPPORTED_MODALITIES.includes(m));
  return {
    valid,
    description: valid
      ? 'One-shot segmentation of MR/CT series'
      : 'One-Shot Segmentation needs a study with an MR or CT series',
  };
}

export function layoutTemplate() {
  return {
    id: ohif.layout,
    props: {
      leftPanels: [ohif.seriesList],
      leftPanelResizable: true,
      rightPanels: [PANEL_ID, cornerstone.labelMapPanel],
      rightPanelClosed: false,
      rightPanelResizable: true,
      viewports: [
        { namespace: cornerstone.viewport, displaySetsToDisplay: [ohif.sopClassHandler] },
        { namespace: seg.viewport, displaySetsToDisplay: [seg.sopClassHandler] },
      ],
    },
  };
}

function modeFactory() {
  return {
    id,
    routeName: 'oneshot',
    displayName: 'One-Shot Segmentation',
    toolbarButtons: [
      { $reference: 'cornerstone.toolbarButtons' },
      { $reference: 'cornerstone.segmentationToolbarButtons' },
      oneShotButton,
    ],
    toolbarSections: [
      { $reference: 'cornerstone.segmentationModeToolbarSections' },
      { $reference: 'cornerstone.segmentationToolbarSections' },
      { primary: PRIMARY_SECTION },
    ],
    toolGroupAdditions: {},
    onModeEnter({ servicesManager, extensionManager }: ModeArgs) {
      const { toolbarService, toolGroupService, customizationService, measurementService } =
        servicesManager.services;
      measurementService?.clearMeasurements();
      initToolGroups(extensionManager, toolGroupService);
      // The host seeded our toolbarButtons/toolbarSections into the mode customization scope;
      // reading them back resolves the $reference packs of the cornerstone extension.
      toolbarService.register(toArray(customizationService.getCustomization('toolbarButtons')));
      const sections = Object.assign(
        {},
        ...(toArray(customizationService.getCustomization('toolbarSections')) as object[]),
      ) as Record<string, unknown>;
      for (const [key, ids] of Object.entries(sections)) toolbarService.updateSection(key, ids);
    },
    onModeExit({ servicesManager }: ModeArgs) {
      const s = servicesManager.services;
      s.uiDialogService?.hideAll();
      s.uiModalService?.hide();
      s.toolGroupService.destroy();
      s.syncGroupService?.destroy();
      s.segmentationService?.destroy();
      s.cornerstoneViewportService?.destroy();
    },
    validationTags: { study: [], series: [] },
    isValidMode,
    routes: [{ path: 'oneshot', layoutTemplate }],
    extensions: {
      '@ohif/extension-default': '^3.0.0',
      '@ohif/extension-cornerstone': '^3.0.0',
      '@ohif/extension-cornerstone-dicom-seg': '^3.0.0',
      [EXTENSION_URL]: '^0.1.0',
    },
    // Our 1×3 MPR when the study has a reconstructable series, else OHIF's default layout (so a
    // single image or an irregular series is still shown, and the panel says why it cannot run).
    hangingProtocol: [HANGING_PROTOCOL_ID, 'default'],
    sopClassHandlers: [ohif.sopClassHandler, seg.sopClassHandler],
    nonModeModalities: ['SEG', 'SR', 'PR', 'RTSTRUCT', 'DOC', 'SM', 'ECG', 'OT'],
  };
}

const mode = {
  id,
  modeFactory,
  extensionDependencies: { [EXTENSION_ID]: '^0.1.0' },
};

export default mode;
