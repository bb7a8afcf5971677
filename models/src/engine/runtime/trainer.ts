/**
 * The trainer: runs a training graph (one `run` = one training step) on onnxruntime-node, keeping
 * every state tensor (parameters and optimiser state) in ORT tensors between steps:
 * - CPU provider: outputs are native ORT buffers that are fed straight back (no copy);
 * - WebGPU provider: state outputs stay on the GPU (`preferredOutputLocation: 'gpu-buffer'`) and
 *   are fed back as GPU tensors; only the loss and metrics come back to JavaScript each step;
 * - CUDA provider: onnxruntime-node 1.30 returns outputs on the host (its GPU-buffer outputs are
 *   WebGPU-only), so the state makes one round trip per step.
 * State is copied to JavaScript only for checkpoints and export (`readState`).
 */
import * as ort from 'onnxruntime-node';
import {
  readCheckpoint,
  specHash as computeSpecHash,
  writeCheckpoint,
  type CheckpointHeader,
} from './checkpoint.js';
import {
  describeRunError,
  TrainingDivergedError,
  TrainingOutOfMemoryError,
  isOutOfMemoryError,
  type LastCheckpoint,
} from './errors.js';
import { identityModel, identityOutputName } from './mini-onnx.js';
import {
  executionProvidersFor,
  selectProvider,
  type Provider,
  type ProbeResult,
} from './providers.js';
import { SeededRng } from './rng.js';
import {
  dataInputName,
  elementCount,
  metricOutputMap,
  type HostTensor,
  type StateInput,
  type TrainingGraph,
  type TrainingGraphSpec,
} from './types.js';

export interface TrainerOptions {
  /** 'auto' (default): best available of cuda → webgpu → cpu (or RRL_ENGINE_PROVIDER). */
  provider?: Provider | 'auto';
  /** Seed of the trainer's RNG (batch sampling, augmentation); saved in checkpoints. Default 0. */
  seed?: number;
  /** Initial parameters (all of them, e.g. `graph.initialParams(seed)`); optimiser state not given starts at zero. */
  initialState: InitialState;
  intraOpNumThreads?: number;
  /** Keep state tensors on the GPU between steps where the provider allows (default true). */
  keepStateOnDevice?: boolean;
  /** ORT per-node profiling (see `endProfiling`). */
  enableProfiling?: boolean;
  profileFilePrefix?: string;
  /** Node names to pin to the CPU provider (a WebGPU kernel that fails at run time). */
  forceCpuNodeNames?: readonly string[];
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /**
   * ORT's intra-op threads spin while waiting for work. Default: false on the CPU provider
   * (measured faster for the reference U-Net on 2 cores: 571 → 530 ms/step idle, and 1481 → 1219
   * CPU ms/step under load), ORT's default (true) elsewhere.
   */
  allowSpinning?: boolean;
  /**
   * 'parallel' lets ORT run independent nodes (e.g. the 27 Gemms of a conv weight gradient)
   * at the same time on `interOpNumThreads` threads (default 'sequential').
   */
  executionMode?: 'sequential' | 'parallel';
  interOpNumThreads?: number;
  /** ORT graph optimisations (default 'all'). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

/**
 * ORT session config entries (`key → value`) for the trainer's options on a provider: the WebGPU
 * CPU-fallback node list, and no spin-waiting of the intra-op threads unless asked for (default
 * on the CPU provider).
 */
export function sessionConfigEntries(
  provider: Provider,
  options: Pick<TrainerOptions, 'allowSpinning' | 'forceCpuNodeNames'>,
): Record<string, string> {
  const config: Record<string, string> = {};
  if (options.forceCpuNodeNames?.length) {
    config['ep.WebGpuExecutionProvider.forceCpuNodeNames'] = options.forceCpuNodeNames.join('\n');
  }
  if (!(options.allowSpinning ?? provider !== 'cpu')) {
    config['session.intra_op.allow_spinning'] = '0';
  }
  return config;
}

/** `{'a.b.c': v}` → `{a: {b: {c: v}}}`: onnxruntime-node flattens `extra` back into config keys. */
function sessionConfigExtra(config: Record<string, string>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    const parts = key.split('.');
    let node = root;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = value;
  }
  return root;
}

/** One step's data: each data input as a Float32Array (dims from the graph), a HostTensor or an ORT tensor. */
export type Batch = Readonly<Record<string, Float32Array | HostTensor | ort.Tensor>>;

export interface StepResult {
  /** 1-based number of the step just completed. */
  step: number;
  loss: number;
  metrics: Record<string, number>;
  /** Wall time of the session run, milliseconds. */
  ms: number;
}

export interface TrainOptions {
  steps: number;
  /** Data for the given (1-based) step; draw randomness from `rng` to stay reproducible. */
  batch: (step: number, rng: SeededRng) => Batch | Promise<Batch>;
  lr: number | ((step: number) => number);
  /** Save a checkpoint every `every` steps (and after the last) to `path`. */
  checkpoint?: { path: string; every: number };
  /** After each step, with the fraction of this `train` call done (0..1]. */
  onStep?: (result: StepResult, progress: { fraction: number; phase: 'train' }) => void;
  signal?: AbortSignal;
}

type OrtTensor = ort.Tensor;

export type InitialState =
  | ReadonlyMap<string, Float32Array | HostTensor>
  | Readonly<Record<string, Float32Array | HostTensor>>;

function scalar(value: number): OrtTensor {
  return new ort.Tensor('float32', Float32Array.of(value), []);
}

function isOrtTensor(value: Float32Array | HostTensor | OrtTensor): value is OrtTensor {
  return value instanceof ort.Tensor;
}

function toHost(
  value: Float32Array | HostTensor,
  dims: readonly number[],
  name: string,
): HostTensor {
  const t = value instanceof Float32Array ? { data: value, dims } : value;
  const n = elementCount(dims);
  if (
    t.data.length !== n ||
    t.dims.length !== dims.length ||
    t.dims.some((d, i) => d !== dims[i])
  ) {
    throw new Error(
      `Tensor '${name}' should have dims [${dims.join(', ')}] (${n} values); found dims [${t.dims.join(', ')}] with ${t.data.length} values.`,
    );
  }
  return t;
}

export class Trainer {
  readonly provider: Provider;
  readonly probes: ProbeResult[];
  readonly spec: TrainingGraphSpec;
  readonly specHash: string;
  /** Seeded RNG of this run; its state is saved in checkpoints. */
  rng: SeededRng;
  private seed: number;
  private stepsDone = 0;
  private state = new Map<string, OrtTensor>();
  private copySession: ort.InferenceSession | undefined;
  private lastGood: LastCheckpoint | undefined;
  private readonly stateOnDevice: boolean;
  private readonly lrInput: string;
  private readonly stepInput: string;
  private readonly metrics: Record<string, string>;
  private readonly dataDims = new Map<string, readonly number[] | undefined>();
  private disposed = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    provider: Provider,
    probes: ProbeResult[],
    spec: TrainingGraphSpec,
    seed: number,
    stateOnDevice: boolean,
  ) {
    this.provider = provider;
    this.probes = probes;
    this.spec = spec;
    this.specHash = computeSpecHash(spec);
    this.seed = seed;
    this.rng = new SeededRng(seed);
    this.stateOnDevice = stateOnDevice;
    this.lrInput = spec.scalarInputs?.lr ?? 'lr';
    this.stepInput = spec.scalarInputs?.step ?? 'step';
    this.metrics = metricOutputMap(spec);
    for (const d of spec.dataInputs)
      this.dataDims.set(dataInputName(d), typeof d === 'string' ? undefined : d.dims);
  }

  static async create(graph: TrainingGraph, options: TrainerOptions): Promise<Trainer> {
    const { spec } = graph;
    const choice = await selectProvider(options.provider ?? 'auto');
    const provider = choice.provider;
    const stateOnDevice = (options.keepStateOnDevice ?? true) && provider === 'webgpu';
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: executionProvidersFor(provider),
      graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
      logSeverityLevel: options.logSeverityLevel ?? 3,
      enableProfiling: options.enableProfiling ?? false,
      ...(options.profileFilePrefix ? { profileFilePrefix: options.profileFilePrefix } : {}),
      ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
      ...(options.executionMode ? { executionMode: options.executionMode } : {}),
      ...(options.interOpNumThreads ? { interOpNumThreads: options.interOpNumThreads } : {}),
    };
    if (stateOnDevice) {
      const locations: Record<string, ort.Tensor.DataLocation> = {};
      for (const out of Object.values(spec.stateOutputs)) locations[out] = 'gpu-buffer';
      locations[spec.lossOutput] = 'cpu';
      for (const out of Object.values(metricOutputMap(spec))) locations[out] = 'cpu';
      sessionOptions.preferredOutputLocation = locations;
    }
    const sessionConfig = sessionConfigEntries(provider, options);
    if (Object.keys(sessionConfig).length) sessionOptions.extra = sessionConfigExtra(sessionConfig);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(graph.model, sessionOptions);
    } catch (err) {
      if (isOutOfMemoryError(err)) {
        throw new TrainingOutOfMemoryError({
          step: 0,
          provider,
          cause: String(err).split('\n')[0]!.slice(0, 300),
        });
      }
      throw new Error(
        `onnxruntime-node (${provider}) could not load the training graph: ${String(err).split('\n')[0]!.slice(0, 500)}. ` +
          'The graph may use an operator this provider lacks; try provider cpu.',
      );
    }
    const trainer = new Trainer(
      session,
      provider,
      choice.probes,
      spec,
      options.seed ?? 0,
      stateOnDevice,
    );
    trainer.checkGraph();
    trainer.setInitialState(options.initialState);
    return trainer;
  }

  /** Steps completed so far. */
  get stepsCompleted(): number {
    return this.stepsDone;
  }

  /** Where each state tensor lives now ('cpu' or 'gpu-buffer'). */
  get stateLocations(): Record<string, string> {
    return Object.fromEntries([...this.state].map(([k, t]) => [k, t.location]));
  }

  /** The last checkpoint written (or loaded) by this trainer. */
  get lastCheckpoint(): LastCheckpoint | undefined {
    return this.lastGood;
  }

  private checkGraph(): void {
    const inputs = new Set(this.session.inputNames);
    const outputs = new Set(this.session.outputNames);
    const missing: string[] = [];
    for (const s of this.spec.stateInputs) {
      if (!inputs.has(s.name)) missing.push(`input ${s.name}`);
      const out = this.spec.stateOutputs[s.name];
      if (!out || !outputs.has(out)) missing.push(`output for state ${s.name}`);
    }
    for (const d of this.spec.dataInputs)
      if (!inputs.has(dataInputName(d))) missing.push(`input ${dataInputName(d)}`);
    if (!outputs.has(this.spec.lossOutput)) missing.push(`output ${this.spec.lossOutput}`);
    for (const o of Object.values(this.metrics)) if (!outputs.has(o)) missing.push(`output ${o}`);
    if (missing.length) {
      throw new Error(
        `The training graph does not match its spec: missing ${missing.join(', ')}. Rebuild it with buildTrainingGraph.`,
      );
    }
    for (let i = 0; i < this.session.inputNames.length; i++) {
      const name = this.session.inputNames[i]!;
      const meta = this.session.inputMetadata[i];
      if (meta?.isTensor && this.dataDims.has(name) && this.dataDims.get(name) === undefined) {
        const shape = meta.shape;
        if (shape.every((d): d is number => typeof d === 'number')) this.dataDims.set(name, shape);
      }
    }
  }

  private setInitialState(initial: InitialState): void {
    const next = new Map<string, OrtTensor>();
    const lookup = (name: string): Float32Array | HostTensor | undefined =>
      initial instanceof Map
        ? (initial as ReadonlyMap<string, Float32Array | HostTensor>).get(name)
        : (initial as Readonly<Record<string, Float32Array | HostTensor>>)[name];
    for (const s of this.spec.stateInputs) {
      const given = lookup(s.name);
      if (given === undefined && s.kind === 'param') {
        throw new Error(
          `initialState lacks parameter '${s.name}' (dims [${s.dims.join(', ')}]). Pass the result of initialParams(seed).`,
        );
      }
      const host = given
        ? toHost(given, s.dims, s.name)
        : { data: new Float32Array(elementCount(s.dims)), dims: s.dims };
      // Copy so later changes to the caller's arrays cannot reach the run.
      next.set(s.name, new ort.Tensor('float32', Float32Array.from(host.data), [...s.dims]));
    }
    this.replaceState(next);
  }

  private replaceState(next: Map<string, OrtTensor>): void {
    for (const [name, old] of this.state) {
      if (old.location === 'gpu-buffer' && next.get(name) !== old) old.dispose();
    }
    this.state = next;
  }

  private feedFor(batch: Batch, lr: number, step: number): Record<string, OrtTensor> {
    const feeds: Record<string, OrtTensor> = {};
    for (const [name, t] of this.state) feeds[name] = t;
    feeds[this.lrInput] = scalar(lr);
    feeds[this.stepInput] = scalar(step);
    for (const [name, dims] of this.dataDims) {
      const value = batch[name];
      if (value === undefined) {
        throw new Error(
          `The batch lacks data input '${name}'; the graph needs ${[...this.dataDims.keys()].join(', ')}.`,
        );
      }
      if (isOrtTensor(value)) {
        feeds[name] = value;
      } else if (value instanceof Float32Array) {
        if (!dims)
          throw new Error(`Data input '${name}' has symbolic dims; pass it as { data, dims }.`);
        feeds[name] = new ort.Tensor('float32', toHost(value, dims, name).data, [...dims]);
      } else {
        const host = dims ? toHost(value, dims, name) : value;
        feeds[name] = new ort.Tensor('float32', host.data, [...host.dims]);
      }
    }
    return feeds;
  }

  /**
   * One training step: forward, backward and optimiser update in one session run. A NaN/Inf loss
   * throws TrainingDivergedError and keeps the state from before this step.
   */
  async step(batch: Batch, lr: number): Promise<StepResult> {
    if (this.disposed) throw new Error('This trainer was disposed; create a new one.');
    const step = this.stepsDone + 1;
    const feeds = this.feedFor(batch, lr, step);
    const t0 = performance.now();
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds);
    } catch (err) {
      const cause = describeRunError(err);
      if (isOutOfMemoryError(err)) {
        throw new TrainingOutOfMemoryError({
          step,
          provider: this.provider,
          cause,
          lastCheckpoint: this.lastGood,
        });
      }
      throw new Error(`Training step ${step} failed on the '${this.provider}' provider: ${cause}`);
    }
    const ms = performance.now() - t0;
    const next = new Map<string, OrtTensor>();
    for (const s of this.spec.stateInputs) next.set(s.name, out[this.spec.stateOutputs[s.name]!]!);
    const lossTensor = out[this.spec.lossOutput]!;
    const loss = (lossTensor.data as Float32Array)[0]!;
    if (!Number.isFinite(loss)) {
      for (const t of next.values()) if (t.location === 'gpu-buffer') t.dispose();
      throw new TrainingDivergedError({
        step,
        what: 'the loss',
        value: loss,
        lr,
        lastCheckpoint: this.lastGood,
      });
    }
    const metrics: Record<string, number> = {};
    for (const [m, o] of Object.entries(this.metrics))
      metrics[m] = (out[o]!.data as Float32Array)[0]!;
    this.replaceState(next);
    this.stepsDone = step;
    return { step, loss, metrics, ms };
  }

  /** Copies every state tensor to JavaScript (a GPU → host copy on WebGPU). */
  async readState(): Promise<Map<string, HostTensor>> {
    const result = new Map<string, HostTensor>();
    const onDevice = [...this.state].filter(([, t]) => t.location === 'gpu-buffer');
    for (const [name, t] of this.state) {
      if (t.location !== 'gpu-buffer')
        result.set(name, { data: t.data as Float32Array, dims: t.dims });
    }
    if (onDevice.length) {
      if (!this.copySession) {
        const all = this.spec.stateInputs.map((s) => ({ name: s.name, dims: s.dims }));
        this.copySession = await ort.InferenceSession.create(identityModel(all), {
          executionProviders: executionProvidersFor(this.provider),
          logSeverityLevel: 3,
        });
      }
      const feeds: Record<string, OrtTensor> = {};
      for (const [name, t] of this.state) feeds[name] = t;
      const out = await this.copySession.run(feeds);
      for (const [name, t] of onDevice) {
        result.set(name, {
          data: out[identityOutputName(name)]!.data as Float32Array,
          dims: t.dims,
        });
      }
    }
    return result;
  }

  /** The current parameters (not the optimiser state), copied to JavaScript. */
  async readParams(): Promise<Map<string, HostTensor>> {
    const state = await this.readState();
    const params = new Map<string, HostTensor>();
    for (const s of this.spec.stateInputs)
      if (s.kind === 'param') params.set(s.name, state.get(s.name)!);
    return params;
  }

  /**
   * Writes a checkpoint atomically. Refuses (TrainingDivergedError) when a state tensor holds
   * NaN/Inf, so a checkpoint on disk is always a good one.
   */
  async saveCheckpoint(file: string, extra?: Record<string, unknown>): Promise<void> {
    const state = await this.readState();
    const tensors: { name: string; kind: StateInput['kind']; tensor: HostTensor }[] = [];
    for (const s of this.spec.stateInputs) {
      const tensor = state.get(s.name)!;
      const bad = tensor.data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw new TrainingDivergedError({
          step: this.stepsDone,
          what: `state tensor '${s.name}' (value ${bad}; checkpoint not written)`,
          value: tensor.data[bad]!,
          lastCheckpoint: this.lastGood,
        });
      }
      tensors.push({ name: s.name, kind: s.kind, tensor });
    }
    await writeCheckpoint(
      file,
      {
        step: this.stepsDone,
        seed: this.seed,
        rng: this.rng.state(),
        specHash: this.specHash,
        provider: this.provider,
        ...(extra ? { extra } : {}),
      },
      tensors,
    );
    this.lastGood = { path: file, step: this.stepsDone };
  }

  /** Restores parameters, optimiser state, step count, seed and RNG state from a checkpoint. */
  async loadCheckpoint(file: string): Promise<CheckpointHeader> {
    const ckpt = await readCheckpoint(file);
    if (ckpt.header.specHash !== this.specHash) {
      throw new Error(
        `Checkpoint ${file} was written for a different training graph (state layout hash ${ckpt.header.specHash}, ` +
          `this graph's is ${this.specHash}). Build the graph with the same network and optimiser settings.`,
      );
    }
    const next = new Map<string, OrtTensor>();
    for (const s of this.spec.stateInputs) {
      const t = ckpt.tensors.get(s.name);
      if (!t) throw new Error(`Checkpoint ${file} lacks state tensor '${s.name}'.`);
      next.set(s.name, new ort.Tensor('float32', toHost(t, s.dims, s.name).data, [...s.dims]));
    }
    this.replaceState(next);
    this.stepsDone = ckpt.header.step;
    this.seed = ckpt.header.seed;
    this.rng = SeededRng.fromState(ckpt.header.rng);
    this.lastGood = { path: file, step: ckpt.header.step };
    return ckpt.header;
  }

  /**
   * Runs `steps` more steps, checkpointing as asked. Errors (divergence, out of memory) propagate
   * with the last good checkpoint named; a cancelled run stops after the current step.
   */
  async train(opts: TrainOptions): Promise<StepResult[]> {
    const results: StepResult[] = [];
    const end = this.stepsDone + opts.steps;
    while (this.stepsDone < end) {
      if (opts.signal?.aborted) break;
      const step = this.stepsDone + 1;
      const lr = typeof opts.lr === 'number' ? opts.lr : opts.lr(step);
      const batch = await opts.batch(step, this.rng);
      const r = await this.step(batch, lr);
      results.push(r);
      opts.onStep?.(r, { fraction: results.length / opts.steps, phase: 'train' });
      if (opts.checkpoint && (step % opts.checkpoint.every === 0 || step === end)) {
        await this.saveCheckpoint(opts.checkpoint.path, { lastLoss: r.loss });
      }
    }
    return results;
  }

  /** Ends ORT profiling (when enabled): ORT writes `<profileFilePrefix>_<date>.json` in the working folder. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.replaceState(new Map());
    await this.copySession?.release();
    await this.session.release();
  }
}
