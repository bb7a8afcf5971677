/**
 * The execution providers the trainer knows, best first, and what a user may ask for ('auto' =
 * the best available). The one list for the engine, the CLIs, the server's settings and its API;
 * no onnxruntime import, so any code may use it.
 */
export const PROVIDERS = Object.freeze(['cuda', 'webgpu', 'cpu'] as const);
export type Provider = (typeof PROVIDERS)[number];

export const PROVIDER_SETTINGS = Object.freeze(['auto', ...PROVIDERS] as const);
export type ProviderSetting = (typeof PROVIDER_SETTINGS)[number];

export function isProvider(value: string): value is Provider {
  return (PROVIDERS as readonly string[]).includes(value);
}

export function isProviderSetting(value: string): value is ProviderSetting {
  return (PROVIDER_SETTINGS as readonly string[]).includes(value);
}
