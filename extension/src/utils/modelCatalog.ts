/** Fetches /models/index.json and validates every model's metadata. */
import { validateMetadata, ModelMetadataError } from '@rrl/core/format/metadata.js';
import type { ModelEntry } from '../state/store.js';

export interface Catalog {
  models: ModelEntry[];
  rejected: { id: string; reason: string }[];
}

export function parseCatalog(json: unknown, modelsRoot: string): Catalog {
  const list = Array.isArray(json)
    ? json
    : Array.isArray((json as { models?: unknown })?.models)
      ? (json as { models: unknown[] }).models
      : undefined;
  if (!list) {
    throw new Error(
      'The models list is not a JSON array of metadata.json objects. Check the companion server’s models folder.',
    );
  }
  const models: ModelEntry[] = [];
  const rejected: { id: string; reason: string }[] = [];
  list.forEach((m, i) => {
    const id =
      typeof (m as { id?: unknown })?.id === 'string' ? (m as { id: string }).id : `entry ${i + 1}`;
    try {
      const metadata = validateMetadata(m, `entry ${i + 1} of the models list`);
      models.push({ metadata, baseUrl: `${modelsRoot}/${encodeURIComponent(metadata.id)}/` });
    } catch (e) {
      rejected.push({
        id,
        reason: e instanceof ModelMetadataError ? e.problems.join(' ') : String(e),
      });
    }
  });
  return { models, rejected };
}

export async function fetchCatalog(modelsIndexUrl: string, modelsRoot: string): Promise<Catalog> {
  let res: Response;
  try {
    res = await fetch(modelsIndexUrl, { headers: { accept: 'application/json' } });
  } catch (e) {
    throw new Error(
      `Could not reach the models list at ${modelsIndexUrl} (${e instanceof Error ? e.message : String(e)}). Is the companion server running?`,
    );
  }
  if (!res.ok) {
    throw new Error(
      `The models list at ${modelsIndexUrl} answered HTTP ${res.status}. Check the companion server’s models folder.`,
    );
  }
  return parseCatalog(await res.json(), modelsRoot);
}
