export {
  seedDemo,
  generateDemo,
  demoUid,
  DEMO_VERSION,
  DEFAULT_DEMO_SEED,
  DEFAULT_DEMO_SUBJECTS,
} from './seed';
export type { SeedDemoOptions, SeedDemoResult, DemoManifest, DemoStudy, DemoRole } from './seed';
export { DEMO_LABELS, demoSegments, type DemoLabel } from './labels';
export { loadDemoAtlas, findMricronTemplates, rasAffine, type DemoVolume } from './atlas';
export { synthesizeSubject, type SynthOptions } from './synth';
export { readNifti, writeNifti, encodeNifti, type NiftiImage } from './nifti';
