export {
  seedDemo,
  generateDemo,
  demoUid,
  DEMO_VERSION,
  DEFAULT_DEMO_SEED,
  DEFAULT_DEMO_SUBJECTS,
} from './seed.js';
export type { SeedDemoOptions, SeedDemoResult, DemoManifest, DemoStudy, DemoRole } from './seed.js';
export { DEMO_LABELS, demoSegments, type DemoLabel } from './labels.js';
export { loadDemoAtlas, findMricronTemplates, rasAffine, type DemoVolume } from './atlas.js';
export { synthesizeSubject, type SynthOptions } from './synth.js';
export { readNifti, writeNifti, encodeNifti, type NiftiImage } from './nifti.js';
