/**
 * The demo atlas's structures (AAL values from mricron-data's aal.nii.txt), with label values
 * 1..8, display colours and SNOMED CT codes (DICOM CID 7150 / 7153, laterality modifiers from
 * CID 244). Same values, names and colours as the test-fixture model's labels
 * (test/fixtures/test-model.ts).
 */
import { segmentsFromLabels, type Code, type SegmentDescription } from '@rrl/core/dicom/seg.js';

export interface DemoLabel {
  value: number;
  name: string;
  /** Value of the structure in the AAL atlas. */
  aal: number;
  color: [number, number, number];
  category: Code;
  type: Code;
  modifier: Code;
}

// Codes from the DICOM context groups for SEG: CID 7150 (category), CID 7153 (CNS segmentation
// type), CID 244 (laterality).
const ANATOMY: Code = { value: '91723000', scheme: 'SCT', meaning: 'Anatomical Structure' };
const LEFT: Code = { value: '7771000', scheme: 'SCT', meaning: 'Left' };
const RIGHT: Code = { value: '24028007', scheme: 'SCT', meaning: 'Right' };
const HIPPOCAMPUS: Code = { value: '5366008', scheme: 'SCT', meaning: 'Hippocampus' };
const THALAMUS: Code = { value: '42695009', scheme: 'SCT', meaning: 'Thalamus' };
const CAUDATE: Code = { value: '11000004', scheme: 'SCT', meaning: 'Caudate nucleus' };
const PUTAMEN: Code = { value: '89278009', scheme: 'SCT', meaning: 'Putamen' };

const lbl = (
  value: number,
  name: string,
  aal: number,
  color: [number, number, number],
  type: Code,
  modifier: Code,
): DemoLabel => ({ value, name, aal, color, category: ANATOMY, type, modifier });

export const DEMO_LABELS: readonly DemoLabel[] = Object.freeze([
  lbl(1, 'Left hippocampus', 37, [220, 180, 140], HIPPOCAMPUS, LEFT),
  lbl(2, 'Right hippocampus', 38, [200, 160, 120], HIPPOCAMPUS, RIGHT),
  lbl(3, 'Left thalamus', 77, [0, 118, 14], THALAMUS, LEFT),
  lbl(4, 'Right thalamus', 78, [20, 160, 40], THALAMUS, RIGHT),
  lbl(5, 'Left caudate', 71, [122, 186, 220], CAUDATE, LEFT),
  lbl(6, 'Right caudate', 72, [90, 150, 200], CAUDATE, RIGHT),
  lbl(7, 'Left putamen', 73, [236, 13, 176], PUTAMEN, LEFT),
  lbl(8, 'Right putamen', 74, [200, 40, 150], PUTAMEN, RIGHT),
]);

/** The labels as SEG segment descriptions (the AAL atlas was drawn by hand on Colin27: MANUAL). */
export function demoSegments(
  algorithmType: SegmentDescription['algorithmType'] = 'MANUAL',
  algorithmName?: string,
): SegmentDescription[] {
  return segmentsFromLabels(DEMO_LABELS, algorithmType, algorithmName);
}
