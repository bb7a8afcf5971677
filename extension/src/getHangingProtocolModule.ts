/**
 * Hanging protocol of the One-Shot mode: the MR/CT series (reconstructable, most slices) in
 * three volume viewports, axial / sagittal / coronal, sharing the 'mpr' tool group.
 */
import { HANGING_PROTOCOL_ID } from './id.js';

/** Custom hanging-protocol attribute (study level): number of reconstructable MR/CT display sets. */
export const VOLUME_SERIES_ATTRIBUTE = 'rrlOneShotVolumeSeries';

interface HpDisplaySet {
  isReconstructable?: boolean;
  Modality?: string;
  numImageFrames?: number;
}

export function countVolumeSeries(
  _study: unknown,
  extraData?: { displaySets?: HpDisplaySet[] },
): number {
  return (extraData?.displaySets ?? []).filter(
    (ds) =>
      ds.isReconstructable === true &&
      (ds.Modality === 'MR' || ds.Modality === 'CT') &&
      (ds.numImageFrames ?? 0) > 1,
  ).length;
}

/** Registers VOLUME_SERIES_ATTRIBUTE with the host's hangingProtocolService (preRegistration). */
export function registerHangingProtocolAttributes(hangingProtocolService: {
  addCustomAttribute(id: string, name: string, cb: typeof countVolumeSeries): void;
}): void {
  hangingProtocolService.addCustomAttribute(
    VOLUME_SERIES_ATTRIBUTE,
    'Number of MR/CT volume series',
    countVolumeSeries,
  );
}

const VOI_SYNC = { type: 'voi', id: 'oneshot-voi', source: true, target: true };
const HYDRATE_SEG_SYNC = {
  type: 'hydrateseg',
  id: 'sameFORId',
  source: true,
  target: true,
  options: { matchingRules: ['sameFOR'] },
};

function viewport(orientation: 'axial' | 'sagittal' | 'coronal') {
  return {
    viewportOptions: {
      viewportId: `oneshot-${orientation}`,
      toolGroupId: 'mpr',
      viewportType: 'volume',
      orientation,
      initialImageOptions: { preset: 'middle' },
      syncGroups: [VOI_SYNC, HYDRATE_SEG_SYNC],
    },
    displaySets: [{ id: 'imageSeries' }],
  };
}

export const oneShotProtocol = {
  id: HANGING_PROTOCOL_ID,
  name: 'One-Shot MPR',
  locked: true,
  createdDate: '2026-11-26',
  modifiedDate: '2026-11-26',
  availableTo: {},
  editableBy: {},
  numberOfPriorsReferenced: 0,
  // OHIF 3.13 skips protocols without study rules; this one matches when the study has an MR/CT
  // series that can be shown as a volume (else OHIF's default layout shows what there is).
  protocolMatchingRules: [
    {
      id: 'hasMrCtVolume',
      weight: 25,
      attribute: VOLUME_SERIES_ATTRIBUTE,
      constraint: { greaterThan: { value: 0 } },
      required: true,
    },
  ],
  imageLoadStrategy: 'nth',
  callbacks: {},
  displaySetSelectors: {
    imageSeries: {
      seriesMatchingRules: [
        {
          weight: 1,
          attribute: 'isReconstructable',
          constraint: { equals: { value: true } },
          required: true,
        },
        { weight: 2, attribute: 'Modality', constraint: { containsAnyOf: ['MR', 'CT'] } },
        { weight: 1, attribute: 'numImageFrames', constraint: { greaterThan: { value: 7 } } },
      ],
    },
  },
  defaultViewport: {
    viewportOptions: { viewportType: 'volume', toolGroupId: 'mpr', orientation: 'axial' },
    displaySets: [{ id: 'imageSeries', matchedDisplaySetsIndex: -1 }],
  },
  stages: [
    {
      id: 'oneShotMpr1x3',
      name: 'MPR 1x3',
      viewportStructure: {
        layoutType: 'grid',
        properties: {
          rows: 1,
          columns: 3,
          layoutOptions: [
            { x: 0, y: 0, width: 1 / 3, height: 1 },
            { x: 1 / 3, y: 0, width: 1 / 3, height: 1 },
            { x: 2 / 3, y: 0, width: 1 / 3, height: 1 },
          ],
        },
      },
      viewports: [viewport('axial'), viewport('sagittal'), viewport('coronal')],
    },
  ],
};

export default function getHangingProtocolModule() {
  return [{ name: HANGING_PROTOCOL_ID, protocol: oneShotProtocol }];
}
