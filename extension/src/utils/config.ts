/** Where the extension finds models, the DICOMweb proxy and its own files. */

export interface OneShotConfig {
  /** URL of the models list (array of metadata.json objects). */
  modelsIndexUrl: string;
  /** Root of the model folders: `${modelsRoot}/<modelId>/model.onnx`. */
  modelsRoot: string;
  /** DICOMweb root for STOW-RS (through the companion server's proxy). */
  dicomWebRoot: string;
  /** URL of the folder holding index.js, inference-worker.js and ort/. */
  extensionBaseUrl: string;
}

function str(o: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Reads `appConfig.rrlMedSam` (written by the companion server's app-config.js), with same-origin
 * defaults: /models/index.json, /models, /dicom-web.
 */
export function resolveConfig(
  appConfig: Record<string, unknown> | undefined,
  extensionBaseUrl: string,
  origin: string,
): OneShotConfig {
  const c = appConfig?.rrlMedSam as Record<string, unknown> | undefined;
  const abs = (u: string) => new URL(u, origin + '/').href.replace(/\/$/, '');
  return {
    modelsIndexUrl: abs(str(c, 'modelsIndexUrl') ?? '/models/index.json'),
    modelsRoot: abs(str(c, 'modelsRoot') ?? '/models'),
    dicomWebRoot: abs(str(c, 'dicomWebRoot') ?? '/dicom-web'),
    extensionBaseUrl,
  };
}
