export {
  startOrthanc,
  freePort,
  orthancConfig,
  OrthancStartError,
  type OrthancProcess,
  type StartOrthancOptions,
} from './orthanc.js';
export {
  DicomWebClient,
  PacsError,
  parseMultipart,
  jsonString,
  jsonValue,
  type DicomJsonDataset,
  type DicomWebClientOptions,
  type PacsErrorKind,
  type QidoQuery,
  type StowResult,
} from './dicomweb.js';
export {
  fetchSeriesVolume,
  fetchSegLabelmap,
  volumeFromInstances,
  voxelToLps,
  VolumeError,
  type SeriesVolume,
} from './volume.js';
