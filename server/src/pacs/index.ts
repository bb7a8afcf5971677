export {
  startOrthanc,
  freePort,
  orthancConfig,
  OrthancStartError,
  type OrthancProcess,
  type StartOrthancOptions,
} from './orthanc';
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
} from './dicomweb';
export {
  fetchSeriesVolume,
  fetchSegLabelmap,
  volumeFromInstances,
  voxelToLps,
  VolumeError,
  type SeriesVolume,
} from './volume';
