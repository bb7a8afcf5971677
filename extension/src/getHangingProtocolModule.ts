/**
 * Hanging protocol of the One-Shot mode: the MR/CT series (reconstructable, most slices) in
 * three volume viewports, axial / sagittal / coronal, sharing the 'mpr' tool group.
 */
import { HANGING_PROTOCOL_ID } from './id.js';

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
  protocolMatchingRules: [],
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
