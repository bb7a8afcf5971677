/**
 * Typed wrapper around dcmjs (browser-safe: no Node built-ins). Reads and writes DICOM Part 10
 * files as dcmjs "naturalized" datasets (keyword-named attributes, sequences as arrays).
 */
import dcmjs from 'dcmjs';

/** A dcmjs naturalized dataset: DICOM keywords → values (sequences are arrays of datasets). */
export type NaturalDataset = Record<string, unknown>;

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
export const IMPLEMENTATION_CLASS_UID = '2.25.201938475610293847561029384756102938';
export const IMPLEMENTATION_VERSION_NAME = 'RRL_MEDSAM_01';

/** A new random UID in the 2.25 (UUID-derived) root: "2.25." + a 128-bit decimal number. */
export function newUid(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40; // UUID version 4
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 4122 variant
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return `2.25.${n.toString(10)}`;
}

/** Serialises a naturalized dataset as a Part 10 file (explicit VR little endian). */
export function writePart10(dataset: NaturalDataset): ArrayBuffer {
  const sopClassUID = dataset.SOPClassUID;
  const sopInstanceUID = dataset.SOPInstanceUID;
  if (typeof sopClassUID !== 'string' || typeof sopInstanceUID !== 'string') {
    throw new Error('writePart10: the dataset needs SOPClassUID and SOPInstanceUID strings');
  }
  const meta: NaturalDataset = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClassUID,
    MediaStorageSOPInstanceUID: sopInstanceUID,
    TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
    _vrMap: { FileMetaInformationVersion: 'OB' },
  };
  const { DicomDict, DicomMetaDictionary } = dcmjs.data;
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return dict.write();
}

/** Parses a Part 10 file into a naturalized dataset (file meta under `_meta`, naturalized too). */
export function readPart10(bytes: ArrayBuffer): NaturalDataset {
  const { DicomMessage, DicomMetaDictionary } = dcmjs.data;
  let dict;
  try {
    dict = DicomMessage.readFile(bytes);
  } catch (e) {
    throw new Error(
      `Not a readable DICOM Part 10 file (${e instanceof Error ? e.message : String(e)}).`,
    );
  }
  const ds = DicomMetaDictionary.naturalizeDataset(dict.dict);
  ds._meta = DicomMetaDictionary.naturalizeDataset(dict.meta);
  return ds;
}

/** Reads a value that dcmjs may give as a scalar or a one-element array. */
export function first(v: unknown): unknown {
  return Array.isArray(v) ? v[0] : v;
}

/** Reads a sequence attribute as an array of items (dcmjs gives a single item as an object). */
export function items(v: unknown): NaturalDataset[] {
  if (Array.isArray(v)) return v as NaturalDataset[];
  if (v && typeof v === 'object') return [v as NaturalDataset];
  return [];
}

/** Reads a numeric multi-valued attribute (DS/IS strings or numbers) as numbers. */
export function numbers(v: unknown): number[] {
  const arr = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return arr.map((x) => Number(x));
}

/** Reads a string attribute; PN values (objects with Alphabetic) give their Alphabetic form. */
export function str(v: unknown): string | undefined {
  const x = first(v);
  if (x === undefined || x === null) return undefined;
  if (typeof x === 'object' && 'Alphabetic' in (x as Record<string, unknown>)) {
    return String((x as Record<string, unknown>).Alphabetic ?? '');
  }
  return String(x);
}

/**
 * Converts a DICOM JSON model dataset (QIDO / WADO-RS metadata, tags as 8 hex digits) into a
 * naturalized dataset with keyword names, as `writeBinarySeg` takes for its source instances.
 */
export function naturalizeJson(dataset: Record<string, unknown>): NaturalDataset {
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dataset);
}
