/**
 * A pipeline run: the typed context every stage works in — the inputs (plan, atlas, unlabelled
 * volumes on the plan grid), the parameter store and checkpoints in the run's folder, the progress
 * sink and log, the abort signal — and the helpers stages share (sampling, training one stage's
 * graph, predictions, pseudo labels, registration fields). The stages are in this folder, one
 * file each; `../pipeline.ts` runs them in order.
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import {
  buildForwardGraph,
  buildTrainingGraph,
  type TrainingGraphOptions,
} from '../../engine/autodiff/training.js';
import { type Provider } from '../../engine/runtime/providers.js';
import type { SeededRng } from '../../engine/runtime/rng.js';
import { Trainer, type Batch } from '../../engine/runtime/trainer.js';
import type { RegistrationArgs } from '../../engine/nn/registration.js';
import { rrlInferenceNet, rrlNetArgsFromPlan, type RrlNetArgs } from '../networks.js';
import { stageLr, type RrlPlan, type StageSchedule } from '../plan.js';
import { applyAffine, randomAffine } from '../augment.js';
import { oneHot, pseudoLabels } from '../pseudoLabels.js';
import { atlasStack, blendDisplacements, composeShift, synthesize } from '../synthesis.js';
import { StageAbortedError } from './abort.js';
import { PrealignedAtlas } from './registration.js';
import { apDecoderTask, EG_REFERENCE, mutualTask } from '../tasks.js';
import {
  atomicWrite,
  checkInput,
  loadParams,
  lossSummary,
  pipelinePaths,
  safeId,
  saveParams,
  type PipelinePaths,
} from './files.js';
import {
  OPTIMIZER,
  PIPELINE_STAGES,
  type Params,
  type PipelineInput,
  type PipelineProgress,
  type PipelineStage,
  type PipelineState,
  type StageName,
  type StageRecord,
} from './types.js';

// The stages import the shared types and file helpers from here too.
export * from './files.js';
export * from './types.js';

export class Run {
  readonly paths: PipelinePaths;
  readonly args: RrlNetArgs;
  readonly grid: [number, number, number];
  readonly voxels: number;
  state: PipelineState = { formatVersion: 1, stages: [], notices: [] };
  provider: Provider = 'cpu';
  params: Params = new Map();
  pseudo: Uint8Array[] = [];
  /** Atlas → volume displacements for synthesis (loaded by `loadFields`). */
  fields: Float32Array[] | undefined;
  /** Atlas image + one-hot labels, the source of synthetic samples. */
  private stack: Float32Array | undefined;
  private logQueue: Promise<void> = Promise.resolve();

  constructor(readonly input: PipelineInput) {
    this.voxels = checkInput(input);
    this.paths = pipelinePaths(input.outDir);
    this.args = rrlNetArgsFromPlan(input.plan);
    this.grid = [...input.plan.grid];
  }

  get plan(): RrlPlan {
    return this.input.plan;
  }

  stageIndex(stage: StageName): number {
    return PIPELINE_STAGES.indexOf(stage);
  }

  say(line: string): void {
    this.input.log?.(line);
  }

  progress(
    stage: PipelineStage,
    p: Omit<PipelineProgress, 'phase' | 'stageIndex' | 'stageCount'>,
    of?: StageName,
  ): void {
    const stageIndex = this.stageIndex(
      of ?? (stage === 'pseudo-labels' ? 'registration' : (stage as StageName)),
    );
    this.input.onProgress?.({ phase: stage, stageIndex, stageCount: PIPELINE_STAGES.length, ...p });
    const rec = { time: new Date().toISOString(), stage, ...p };
    const line = `${JSON.stringify(rec)}\n`;
    this.logQueue = this.logQueue.then(() => appendFile(this.paths.log, line));
  }

  async flushLog(): Promise<void> {
    await this.logQueue;
  }

  async saveState(): Promise<void> {
    await atomicWrite(this.paths.state, `${JSON.stringify(this.state, null, 2)}\n`);
  }

  done(stage: StageName): StageRecord | undefined {
    return this.state.stages.find((s) => s.stage === stage);
  }

  checkAbort(stage: StageName, step = 0, total = 0): void {
    if (this.input.signal?.aborted) throw new StageAbortedError(stage, step, total);
  }

  async finish(
    stage: StageName,
    rec: Omit<StageRecord, 'stage' | 'seconds'>,
    t0: number,
  ): Promise<void> {
    await this.flushLog();
    const before = this.state.partial?.stage === stage ? this.state.partial.seconds : 0;
    const seconds = before + (performance.now() - t0) / 1000;
    const loss = rec.skipped ? {} : await lossSummary(this.paths.log, stage);
    const full: StageRecord = { stage, seconds: Math.round(seconds * 100) / 100, ...loss, ...rec };
    this.state.stages.push(full);
    delete this.state.partial;
    if (stage !== 'registration' && stage !== 'export' && !rec.skipped) {
      await saveParams(join(this.paths.checkpoints, `after-${stage}.params`), this.params);
    }
    await this.saveState();
    this.say(
      rec.skipped
        ? `[${stage}] skipped: ${rec.skipped}`
        : `[${stage}] done: ${full.steps} steps in ${full.seconds.toFixed(1)} s` +
            (full.firstLoss !== undefined
              ? `, loss ${full.firstLoss.toFixed(4)} → ${full.lastLoss!.toFixed(4)}`
              : ''),
    );
  }

  async interrupted(stage: StageName, t0: number): Promise<void> {
    await this.flushLog();
    const before = this.state.partial?.stage === stage ? this.state.partial.seconds : 0;
    this.state.partial = { stage, seconds: before + (performance.now() - t0) / 1000 };
    await this.saveState();
  }

  /**
   * One training sample: the atlas (true labels), an unlabelled volume (pseudo labels) or —
   * plans with `sampling.synthetic`, unless `o.synthetic` is false — in its place the atlas
   * warped by that volume's displacement (exact labels). `index` is the volume's (−1: atlas).
   */
  sample(
    rng: SeededRng,
    o: { synthetic?: boolean } = {},
  ): { index: number; image: Float32Array; labels: Uint8Array } {
    const s = this.plan.sampling;
    const atlas = rng.next() < s.atlasProbability;
    const index = atlas ? -1 : rng.int(this.input.unlabeled.length);
    let src = atlas ? this.input.atlas.image : this.input.unlabeled[index]!.image;
    let labels = atlas ? this.input.atlas.labels : this.pseudo[index]!;
    const u = 2 * rng.next() - 1;
    const v = 2 * rng.next() - 1;
    // Synthesis draws from the RNG only when the plan has it (older plans keep their sequence).
    const syn = s.synthetic;
    if (syn && o.synthetic !== false && !atlas && rng.next() < syn.probability) {
      if (!this.fields || !this.stack) {
        throw new Error('runPipeline: synthetic sampling before the displacements were loaded');
      }
      let disp = this.fields[index]!;
      if (rng.next() < syn.blend) {
        const j = rng.int(this.fields.length);
        disp = blendDisplacements(disp, this.fields[j]!, rng.next());
      }
      ({ image: src, labels } = synthesize(this.stack, this.plan.classes, disp, this.grid));
    }
    let image = src;
    let lab = labels;
    if (s.intensityScale !== 0 || s.intensityShift !== 0) {
      const a = 1 + u * s.intensityScale;
      const b = v * s.intensityShift;
      image = new Float32Array(src.length);
      for (let k = 0; k < src.length; k++) image[k] = src[k]! * a + b;
    }
    // Spatial augmentation draws from the RNG only when the plan asks for it, so plans without
    // it keep their sample sequence (and their checkpoints) unchanged.
    if (s.spatial && rng.next() < s.spatial.probability) {
      const aff = randomAffine(() => rng.next(), s.spatial);
      ({ image, labels: lab } = applyAffine(image, lab, this.grid, aff));
    }
    return { index, image, labels: lab };
  }

  segBatch(rng: SeededRng): Batch {
    const { image, labels } = this.sample(rng);
    return {
      image: { data: image, dims: [1, 1, ...this.grid] },
      target: {
        data: oneHot(labels, this.plan.classes),
        dims: [1, this.plan.classes, ...this.grid],
      },
    };
  }

  /**
   * Trains one stage's graph on the engine Trainer: initial values from the parameter store
   * (by name; `extra` overrides), resumed from `checkpoints/<stage>.ckpt` when it exists; on
   * cancellation the checkpoint is written and StageAbortedError thrown. The trained parameters
   * whose names the inference net uses go back into the store. `emaAlpha` applies the task's
   * mutual EMA pairs after each optimiser step.
   */
  async trainStage(o: {
    stage: StageName;
    task: Pick<TrainingGraphOptions, 'graph' | 'loss' | 'metrics'> & {
      emaPairs?: readonly (readonly [string, string])[];
    };
    emaAlpha?: number;
    steps: number;
    /** A constant rate or one per (1-based) step: `stageLr(schedule)`. */
    lr: number | ((step: number) => number);
    batch: (rng: SeededRng) => Batch;
    extra?: ReadonlyMap<string, Float32Array>;
  }): Promise<void> {
    const { graph, loss, metrics, emaPairs } = o.task;
    if (o.stage !== 'distill-sam') await this.loadFields();
    const built = buildTrainingGraph({
      graph,
      loss,
      ...(metrics ? { metrics } : {}),
      optimizer: OPTIMIZER,
      ...(emaPairs && o.emaAlpha !== undefined
        ? { ema: { pairs: emaPairs, alpha: o.emaAlpha } }
        : {}),
    });
    const init = graph.initialParams(this.plan.seeds.init);
    for (const [k, v] of this.params) if (init.has(k)) init.set(k, v);
    for (const [k, v] of o.extra ?? []) if (init.has(k)) init.set(k, v);
    const ckpt = join(this.paths.checkpoints, `${o.stage}.ckpt`);
    const trainer = await Trainer.create(built, {
      provider: this.provider,
      seed: this.plan.seeds.data + this.stageIndex(o.stage),
      initialState: init,
      intraOpNumThreads: 2,
    });
    try {
      if (existsSync(ckpt)) {
        await trainer.loadCheckpoint(ckpt);
        this.say(`[${o.stage}] resuming from step ${trainer.stepsCompleted} of ${o.steps}`);
      }
      await trainer.train({
        steps: Math.max(0, o.steps - trainer.stepsCompleted),
        lr: o.lr,
        batch: (_step, rng) => o.batch(rng),
        checkpoint: { path: ckpt, every: Math.max(1, Math.min(50, Math.ceil(o.steps / 4))) },
        signal: this.input.signal,
        onStep: (r) =>
          this.progress(o.stage, {
            step: r.step,
            total: o.steps,
            loss: r.loss,
            metrics: r.metrics,
          }),
      });
      if (trainer.stepsCompleted < o.steps) {
        await trainer.saveCheckpoint(ckpt);
        throw new StageAbortedError(o.stage, trainer.stepsCompleted, o.steps, ckpt);
      }
      for (const [k, v] of await trainer.readParams()) {
        if (!k.startsWith(`${EG_REFERENCE}.`)) this.params.set(k, v.data);
      }
    } finally {
      await trainer.dispose();
    }
  }

  // ---------------------------------------------------------------- stages

  /** The atlas warped onto unlabelled volume `k` by a registration (refined as the plan says). */
  warpAtlas(
    pre: PrealignedAtlas,
    params: ReadonlyMap<string, Float32Array>,
    args: RegistrationArgs,
    k: number,
  ): ReturnType<typeof pseudoLabels> {
    const p = this.plan;
    return pseudoLabels({
      params,
      args,
      grid: this.grid,
      classes: p.classes,
      atlasImage: pre.get(k).image,
      atlasLabels: pre.get(k).labels,
      target: this.input.unlabeled[k]!.image,
      ...(p.registrationRefine ? { refine: p.registrationRefine } : {}),
    });
  }

  /** The atlas shifted per unlabelled volume by the plan's pre-alignment (identity without). */
  prealigned(): PrealignedAtlas {
    return new PrealignedAtlas(
      this.grid,
      this.input.atlas.image,
      this.input.atlas.labels,
      this.input.unlabeled.map((u) => u.image),
      this.plan.registrationPrealign,
    );
  }

  /** What `loadRegistration` needs: args, params and the pre-alignment setting. */
  async saveRegistration(
    params: ReadonlyMap<string, Float32Array>,
    args: RegistrationArgs,
    extra: Record<string, unknown>,
  ): Promise<void> {
    await mkdir(this.paths.registration, { recursive: true });
    await saveParams(join(this.paths.registration, 'params.ckpt'), params);
    const meta = {
      formatVersion: 1,
      args,
      grid: this.grid,
      classes: this.plan.classes,
      ...(this.plan.registrationPrealign ? { prealign: this.plan.registrationPrealign } : {}),
      ...(this.plan.registrationRefine ? { refine: this.plan.registrationRefine } : {}),
      ...extra,
    };
    await atomicWrite(
      join(this.paths.registration, 'registration.json'),
      `${JSON.stringify(meta, null, 2)}\n`,
    );
  }

  /**
   * Pseudo-label file of one volume: round 0 (registration), 1 (joint refinement, fused) or 2
   * (self-training, fused with the model).
   */
  pseudoFile(id: string, round: number): string {
    return join(this.paths.pseudoLabels, `${safeId(id)}${round > 0 ? `.r${round}` : ''}.u8`);
  }

  fieldFile(id: string): string {
    return join(this.paths.fields, `${safeId(id)}.f32`);
  }

  /**
   * Writes the atlas → volume `k` displacement (plans with sampling.synthetic; before its pseudo
   * label file, so an existing label file implies a field of the same registration).
   * `displacement` is the registration's, of the atlas pre-shifted for this volume
   * (`pre.get(k)`); the file holds the atlas's own (the shift composed in), which is what
   * synthesis warps.
   */
  async saveField(k: number, displacement: Float32Array, pre: PrealignedAtlas): Promise<void> {
    if (!this.plan.sampling.synthetic) return;
    await mkdir(this.paths.fields, { recursive: true });
    const id = this.input.unlabeled[k]!.id;
    const shift = pre.get(k).shift;
    const d = shift.some((v) => v !== 0) ? composeShift(displacement, shift) : displacement;
    await atomicWrite(this.fieldFile(id), new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }

  /**
   * Loads the atlas → volume displacements for synthetic sampling (no-op without it, or when
   * loaded). A missing one (a folder from before the setting, or an interrupted write) is
   * recomputed with the saved registration — the one that made the current pseudo labels.
   */
  async loadFields(): Promise<void> {
    if (!this.plan.sampling.synthetic || this.fields) return;
    const p = this.plan;
    this.stack ??= atlasStack(this.input.atlas.image, this.input.atlas.labels, p.classes);
    const missing = this.input.unlabeled.filter((u) => !existsSync(this.fieldFile(u.id)));
    let reg: { params: Params; args: RegistrationArgs } | undefined;
    if (missing.length > 0) {
      this.say(
        `[synthesis] ${missing.length} displacement(s) to compute with the saved registration`,
      );
      const meta = JSON.parse(
        await readFile(join(this.paths.registration, 'registration.json'), 'utf8'),
      ) as { args: RegistrationArgs };
      reg = {
        params: await loadParams(join(this.paths.registration, 'params.ckpt')),
        args: meta.args,
      };
    }
    const pre = this.prealigned();
    const fields: Float32Array[] = [];
    for (const [k, u] of this.input.unlabeled.entries()) {
      const file = this.fieldFile(u.id);
      if (!existsSync(file)) {
        if (this.input.signal?.aborted)
          throw new StageAbortedError('synthesis (displacements)', 0, 0);
        const r = await this.warpAtlas(pre, reg!.params, reg!.args, k);
        await this.saveField(k, r.displacement, pre);
      }
      const b = await readFile(file);
      if (b.byteLength !== 3 * this.voxels * 4) {
        throw new Error(
          `runPipeline: ${file} has ${b.byteLength} bytes, expected ${3 * this.voxels * 4}; delete it to recompute it.`,
        );
      }
      fields.push(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice());
    }
    this.fields = fields;
  }

  async loadPseudoLabels(): Promise<void> {
    this.pseudo = [];
    const done = (s: StageName): boolean => {
      const r = this.done(s);
      return r !== undefined && !r.skipped;
    };
    const round = done('self-training') ? 2 : done('joint') ? 1 : 0;
    for (const u of this.input.unlabeled) {
      const file = this.pseudoFile(u.id, round);
      if (!existsSync(file)) {
        throw new Error(
          `runPipeline: the pseudo labels of ${u.id} are missing (${file}) although the registration stage is recorded as done; the unlabelled volumes differ from the first run — use a new output folder.`,
        );
      }
      const b = new Uint8Array(await readFile(file));
      if (b.length !== this.voxels) {
        throw new Error(
          `runPipeline: ${file} has ${b.length} voxels, expected ${this.voxels}; use a new output folder.`,
        );
      }
      this.pseudo.push(b);
    }
  }

  /**
   * Softmax of the inference net's `outputs` (current parameters) for every unlabelled volume,
   * [C, D, H, W]; with several outputs, the mean of their softmaxes.
   */
  async predictions(
    outputs: readonly ('generalLogits' | 'medicalLogits' | 'logits')[],
    stage: StageName,
  ): Promise<Float32Array[]> {
    const net = rrlInferenceNet(this.args, this.grid);
    const init = net.graph.initialParams(this.plan.seeds.init);
    const params: Params = new Map();
    for (const [k, v] of init) params.set(k, this.params.get(k) ?? v);
    const { model } = buildForwardGraph({
      graph: net.graph,
      outputs: Object.fromEntries(outputs.map((o) => [o, net[o]])),
      params,
    });
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: 2,
    });
    const C = this.plan.classes;
    const m = this.voxels;
    const out: Float32Array[] = [];
    try {
      for (const u of this.input.unlabeled) {
        this.checkAbort(stage);
        const r = await session.run(
          { image: new ort.Tensor('float32', u.image, [1, 1, ...this.grid]) },
          [...outputs],
        );
        const prob = new Float32Array(C * m);
        for (const o of outputs) {
          const logits = r[o]!.data as Float32Array;
          for (let i = 0; i < m; i++) {
            let mx = -Infinity;
            for (let c = 0; c < C; c++) mx = Math.max(mx, logits[c * m + i]!);
            let sum = 0;
            for (let c = 0; c < C; c++) sum += Math.exp(logits[c * m + i]! - mx);
            for (let c = 0; c < C; c++) {
              prob[c * m + i]! += Math.exp(logits[c * m + i]! - mx) / sum / outputs.length;
            }
          }
        }
        out.push(prob);
      }
    } finally {
      await session.release();
    }
    return out;
  }

  /**
   * Replaces the pseudo labels in use by the saved round `round` and says what share of their
   * voxels changed (e.g. "1.25 %").
   */
  async switchPseudoLabels(round: 1 | 2): Promise<string> {
    const old = this.pseudo;
    this.pseudo = [];
    for (const u of this.input.unlabeled) {
      this.pseudo.push(new Uint8Array(await readFile(this.pseudoFile(u.id, round))));
    }
    let changed = 0;
    for (const [k, a] of old.entries()) {
      const b = this.pseudo[k]!;
      for (let i = 0; i < this.voxels; i++) if (a[i] !== b[i]) changed++;
    }
    return `${((100 * changed) / (this.voxels * Math.max(1, old.length))).toFixed(2)} %`;
  }

  /** Both branches on the pseudo labels, mutual supervision and mutual EMA (mutual task). */
  async trainMutual(stage: StageName, sched: StageSchedule): Promise<void> {
    const p = this.plan;
    const t = mutualTask(this.args, this.grid, {
      dice: p.loss.dice,
      crossEntropy: p.loss.crossEntropy,
      mutual: p.loss.mutual,
    });
    await this.trainStage({
      stage,
      task: t,
      emaAlpha: p.schedule.mutual.emaAlpha,
      steps: sched.steps,
      lr: stageLr(sched),
      batch: (rng) => this.segBatch(rng),
    });
  }

  /** The AP decoder alone (everything else frozen) on the pseudo labels. */
  async trainDecoder(stage: StageName, sched: StageSchedule): Promise<void> {
    const p = this.plan;
    const t = apDecoderTask(this.args, this.grid, {
      dice: p.loss.dice,
      crossEntropy: p.loss.crossEntropy,
      consistency: p.loss.decoderConsistency,
    });
    await this.trainStage({
      stage,
      task: t,
      steps: sched.steps,
      lr: stageLr(sched),
      batch: (rng) => this.segBatch(rng),
    });
  }
}
