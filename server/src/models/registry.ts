/**
 * The models folder: `<modelsDir>/<modelId>/{model.onnx,metadata.json}`. Lists the published
 * models' metadata and computes (and caches, by size and mtime) each model file's SHA-256, which
 * the server sends as the strong ETag of model.onnx.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

import {
  ModelMetadataError,
  validateMetadata,
  type ModelMetadata,
} from '@rrl/core/format/index.js';
import type { ModelCard } from '@rrl/core/api.js';
import type { Logger } from '../log.js';
import { fileInfo, type FileInfo } from '../http/static.js';

/** Model ids are folder names: `name@version`, letters, digits and `._-@+`. */
export const MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

export type { ModelMetadata };

export interface ModelProblem {
  folder: string;
  problem: string;
}

export interface ModelListing {
  models: ModelMetadata[];
  problems: ModelProblem[];
}

export class ModelRegistry {
  private readonly hashes = new Map<string, { key: string; sha256: string }>();
  /** Model cards read, by file, with the size and mtime they were read at. */
  private readonly cards = new Map<string, { key: string; card: ModelCard }>();
  private readonly reported = new Set<string>();

  constructor(
    readonly modelsDir: string,
    private readonly log: Logger,
  ) {}

  /**
   * Reads every `<folder>/metadata.json`. A folder is listed when its metadata passes the model
   * format's validator (core/src/format), its `id` equals the folder name, and its ONNX file
   * exists with the SHA-256 the metadata names; others are reported as problems (and logged),
   * never served as models.
   */
  async list(): Promise<ModelListing> {
    let entries: string[];
    try {
      entries = (await readdir(this.modelsDir, { withFileTypes: true }))
        // Dot folders (e.g. `.staging`, where versions are assembled before publishing) are not models.
        .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
        .map((d) => d.name)
        .sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { models: [], problems: [] };
      throw e;
    }
    const models: ModelMetadata[] = [];
    const problems: ModelProblem[] = [];
    for (const folder of entries) {
      const result = await this.readModel(folder);
      if ('problem' in result) {
        problems.push({ folder, problem: result.problem });
        // Once per folder and problem, not on every listing.
        const key = `${folder}\n${result.problem}`;
        if (!this.reported.has(key)) {
          this.reported.add(key);
          this.log.warn('model skipped', { folder, problem: result.problem });
        }
      } else {
        models.push(result.metadata);
      }
    }
    return { models, problems };
  }

  private async readModel(
    folder: string,
  ): Promise<{ metadata: ModelMetadata } | { problem: string }> {
    if (!MODEL_ID_PATTERN.test(folder)) {
      return { problem: `folder name is not a valid model id (${MODEL_ID_PATTERN.source})` };
    }
    const metaPath = path.join(this.modelsDir, folder, 'metadata.json');
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(metaPath, 'utf8'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return {
        problem:
          code === 'ENOENT'
            ? 'metadata.json is missing'
            : `metadata.json is unreadable: ${(e as Error).message}`,
      };
    }
    let meta: ModelMetadata;
    try {
      meta = validateMetadata(raw, `${folder}/metadata.json`);
    } catch (e) {
      if (e instanceof ModelMetadataError) return { problem: e.problems.join(' ') };
      throw e;
    }
    if (meta.id !== folder) {
      return {
        problem: `metadata.json id ${JSON.stringify(meta.id)} does not match the folder name`,
      };
    }
    const onnx = await this.modelFile(folder, meta.onnx.file);
    if (!onnx) {
      return { problem: `the ONNX file ${meta.onnx.file} named in metadata.json is missing` };
    }
    const sha = await this.sha256(onnx.file, onnx.info);
    if (sha !== meta.onnx.sha256.toLowerCase()) {
      return {
        problem:
          `${meta.onnx.file} does not match the sha256 in metadata.json (file ${sha}, ` +
          `metadata ${meta.onnx.sha256}): the copy is damaged or incomplete; publish the model again`,
      };
    }
    return { metadata: meta };
  }

  /** The absolute path of a file inside a model folder, if it exists (no path traversal). */
  async modelFile(
    modelId: string,
    name: string,
  ): Promise<{ file: string; info: FileInfo } | undefined> {
    if (!MODEL_ID_PATTERN.test(modelId)) return undefined;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return undefined;
    const file = path.join(this.modelsDir, modelId, name);
    const info = await fileInfo(file);
    return info ? { file, info } : undefined;
  }

  /** SHA-256 (hex) of a file, cached until its size or mtime changes. */
  async sha256(file: string, info: FileInfo): Promise<string> {
    const key = `${info.size}:${info.mtimeMs}`;
    const cached = this.hashes.get(file);
    if (cached && cached.key === key) return cached.sha256;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    this.hashes.set(file, { key, sha256 });
    return sha256;
  }

  /** Published versions of a task (metadata.task), oldest first, with their version numbers. */
  async versions(taskId: string): Promise<ModelMetadata[]> {
    const { models } = await this.list();
    return models
      .filter((m) => m.task === taskId)
      .sort((a, b) => versionNumber(a.version) - versionNumber(b.version));
  }

  /** Removes every published version of a task (its folders); returns the removed ids. */
  async removeTaskVersions(taskId: string): Promise<string[]> {
    const ids: string[] = [];
    let entries: string[];
    try {
      entries = await readdir(this.modelsDir);
    } catch {
      return ids;
    }
    // Also folders that are not (valid) models any more: they carry the task's name.
    for (const folder of entries) {
      if (!folder.startsWith(`${taskId}@`) || !MODEL_ID_PATTERN.test(folder)) continue;
      await rm(path.join(this.modelsDir, folder), { recursive: true, force: true });
      ids.push(folder);
    }
    if (ids.length) this.log.info('models removed', { task: taskId, models: ids.length });
    return ids;
  }

  /** `model-card.json` beside a model (training data, parameters, timing, evaluation), if any. */
  async modelCard(modelId: string): Promise<ModelCard | undefined> {
    const f = await this.modelFile(modelId, 'model-card.json');
    if (!f) return undefined;
    // Read once per version of the file: the task's model list asks for every card on each poll.
    const key = `${f.info.size}:${f.info.mtimeMs}`;
    const cached = this.cards.get(f.file);
    if (cached?.key === key) return cached.card;
    const card = JSON.parse(await readFile(f.file, 'utf8')) as ModelCard;
    this.cards.set(f.file, { key, card });
    return card;
  }

  /**
   * Publishes the model in `srcDir` (model.onnx + metadata.json) as the next version of `taskId`:
   * `<modelsDir>/<taskId>@<n>/` with metadata id/version/task rewritten and `model-card.json`
   * written beside it. The folder is assembled under `<modelsDir>/.staging/` and renamed into
   * place in one step, so a half-written model is never listed. Returns the new model id.
   */
  async publishVersion(
    taskId: string,
    srcDir: string,
    card: ModelCard,
    changes = 'trained by the companion server',
  ): Promise<string> {
    const raw = JSON.parse(await readFile(path.join(srcDir, 'metadata.json'), 'utf8')) as unknown;
    validateMetadata(raw, `${srcDir}/metadata.json`);
    const meta = raw as ModelMetadata & {
      onnx: { file: string };
      changelog?: { version: string; date: string; changes: string }[];
    };
    const staging = path.join(this.modelsDir, '.staging', `${taskId}-${process.pid}-${Date.now()}`);
    await mkdir(staging, { recursive: true });
    try {
      await copyFile(path.join(srcDir, meta.onnx.file), path.join(staging, meta.onnx.file));
      for (let attempt = 0; attempt < 5; attempt++) {
        const existing = await this.versions(taskId);
        let next = 1;
        for (const m of existing) next = Math.max(next, versionNumber(m.version) + 1);
        // Folders that exist but are not (valid) models still take their number.
        for (;;) {
          const taken = await this.modelFile(`${taskId}@${next}`, 'metadata.json');
          if (!taken) break;
          next++;
        }
        const id = `${taskId}@${next}`;
        const date = new Date().toISOString().slice(0, 10);
        const published = {
          ...meta,
          id,
          version: String(next),
          task: taskId,
          changelog: [...(meta.changelog ?? []), { version: String(next), date, changes }],
        };
        validateMetadata(published, `${id}/metadata.json`);
        await writeFile(path.join(staging, 'metadata.json'), JSON.stringify(published, null, 2));
        await writeFile(
          path.join(staging, 'model-card.json'),
          JSON.stringify({ id, task: taskId, version: String(next), ...card }, null, 2),
        );
        try {
          await rename(staging, path.join(this.modelsDir, id));
          this.log.info('model published', { model: id, task: taskId });
          return id;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw e;
        }
      }
      throw new Error(
        `Could not find a free version folder for task ${taskId} in ${this.modelsDir}.`,
      );
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
}

function versionNumber(v: unknown): number {
  const n = Number.parseInt(String(v), 10);
  return Number.isFinite(n) ? n : 0;
}
