export * from './geometry.js';
export * from './resample.js';
export * from './normalize.js';
export * from './preprocess.js';
