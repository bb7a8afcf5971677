// Minimal typings for the parts of dcmjs 0.52 we use (dcmjs ships no TypeScript types).
// Kept deliberately loose: `core/src/dicom/dcmjs.ts` is the typed wrapper the rest of the code uses.
declare module 'dcmjs' {
  interface DcmjsDicomDict {
    meta: Record<string, unknown>;
    dict: Record<string, unknown>;
    write(options?: { allowInvalidVRLength?: boolean }): ArrayBuffer;
  }
  interface DcmjsData {
    DicomDict: new (meta: Record<string, unknown>) => DcmjsDicomDict;
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DcmjsDicomDict;
    };
    DicomMetaDictionary: {
      naturalizeDataset(dataset: Record<string, unknown>): Record<string, unknown>;
      denaturalizeDataset(dataset: Record<string, unknown>): Record<string, unknown>;
    };
  }
  const dcmjs: { data: DcmjsData; log: { setLevel?: (level: string) => void } };
  export default dcmjs;
}
