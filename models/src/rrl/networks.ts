/**
 * The RRL-MedSAM networks, written with the engine's graph builder and layers
 * (`engine/nn/layers.ts`): the lightweight 3-D CNN encoder shared by the general branch E_g and the
 * medical-specific branch E_m, the segmentation head, the distillation projection to the SAM
 * teacher's 256 channels, and the auto-prompting (AP) decoder. The builder arguments
 * (`RrlNetArgs`) are recorded with a model so that it can be rebuilt exactly.
 */
import { Graph, numel, type Value } from '../engine/graph/graph.js';
import { convBlock, convStack, downsample, pointwise, upsample } from '../engine/nn/layers.js';
import { ENCODER_PARAM_LIMIT, type RrlPlan } from './plan.js';

export interface RrlNetArgs {
  inChannels: number;
  /** Encoder channels per scale (default 32-64-128-256). */
  channels: number[];
  /** Conv blocks per scale (default [2, 2, 2, 1]). */
  convsPerLevel: number[];
  /** Auto-prompting decoder channels per scale (default 16-32-64-128). */
  decoderChannels: number[];
  /** Conv blocks per decoder scale (default 1). */
  decoderConvs: number;
  /** Output classes (labels + background). */
  classes: number;
  /** Width of the segmentation head's per-scale projections (default 16). */
  headWidth: number;
  /** Channels of the SAM teacher's image embeddings (256 for ViT-B). */
  teacherChannels: number;
  /** LeakyReLU slope (default 0.01). */
  slope: number;
}

export function rrlNetArgsFromPlan(plan: RrlPlan, inChannels = 1): RrlNetArgs {
  return {
    inChannels,
    channels: [...plan.channels],
    convsPerLevel: [...plan.convsPerLevel],
    decoderChannels: [...plan.decoderChannels],
    decoderConvs: plan.decoderConvs,
    classes: plan.classes,
    headWidth: 16,
    teacherChannels: 256,
    slope: 0.01,
  };
}

/** Number of parameter values whose names start with `prefix`. */
export function countParams(g: Graph, prefix = ''): number {
  let n = 0;
  for (const p of g.params.values()) if (p.name.startsWith(prefix)) n += numel(p.shape);
  return n;
}

/**
 * Parameters of the encoder alone (conv weights + biases, InstanceNorm scale + bias), computed
 * analytically: Σ_l Σ_i (Cin·27 + 1 + 2)·C_l.
 */
export function encoderParamCount(
  a: Pick<RrlNetArgs, 'inChannels' | 'channels' | 'convsPerLevel'>,
): number {
  let cin = a.inChannels;
  let n = 0;
  a.channels.forEach((c, l) => {
    for (let i = 0; i < a.convsPerLevel[l]!; i++) {
      n += c * (cin * 27 + 3);
      cin = c;
    }
  });
  return n;
}

/** Throws when the encoder exceeds the 2.7M-parameter budget of E_g / E_m. */
export function assertEncoderBudget(
  a: Pick<RrlNetArgs, 'inChannels' | 'channels' | 'convsPerLevel'>,
): number {
  const n = encoderParamCount(a);
  if (n > ENCODER_PARAM_LIMIT) {
    throw new Error(
      `RRL encoder: channels [${a.channels.join(', ')}] with [${a.convsPerLevel.join(', ')}] conv blocks per scale have ${n} parameters, above the ${ENCODER_PARAM_LIMIT} budget (about 3 % of SAM ViT-B). Use narrower channels or fewer conv blocks at the deepest scale in the plan.`,
    );
  }
  return n;
}

/**
 * Encoder (E_g or E_m): scale l = MaxPool 2 (l > 0) then `convsPerLevel[l]` conv blocks
 * (conv3³ + bias → InstanceNorm affine → LeakyReLU(slope)) to `channels[l]`. Parameters under
 * `<name>.level<l>.<i>.conv.w/b`, `.norm.scale/bias`. Returns every scale's features.
 */
export function rrlEncoder(g: Graph, name: string, x: Value, a: RrlNetArgs): Value[] {
  assertEncoderBudget({ ...a, inChannels: x.shape[1]! });
  const feats: Value[] = [];
  g.scope(name, () => {
    let h = x;
    a.channels.forEach((c, l) => {
      if (l > 0) h = downsample(g, `down${l - 1}`, h, 'maxpool');
      h = convStack(g, `level${l}`, h, c, a.convsPerLevel[l]!, { slope: a.slope });
      feats.push(h);
    });
  });
  return feats;
}

/**
 * Segmentation head (FPN-style, light): each scale → 1×1×1 conv to `headWidth` → nearest
 * up-sampling to full resolution; the sum → one conv block → 1×1×1 conv to `classes` logits.
 */
export function segmentationHead(
  g: Graph,
  name: string,
  feats: readonly Value[],
  a: RrlNetArgs,
): Value {
  return g.scope(name, () => {
    let sum: Value | undefined;
    feats.forEach((f, l) => {
      let p = pointwise(g, `proj${l}`, f, a.headWidth);
      for (let k = 0; k < l; k++) p = upsample(g, `up${l}.${k}`, p, 'nearest');
      sum = sum ? g.add(sum, p) : p;
    });
    const h = convBlock(g, 'fuse', sum!, a.headWidth, { slope: a.slope });
    return pointwise(g, 'out', h, a.classes);
  });
}

/** Distillation projection: 1×1×1 conv from an encoder feature to the teacher's channels. */
export function distillProjection(g: Graph, name: string, feat: Value, a: RrlNetArgs): Value {
  return pointwise(g, name, feat, a.teacherChannels);
}

/**
 * Auto-prompting decoder over E_m's features, prompted by the general branch's mask `prompt`
 * ([1, classes, D, H, W] probabilities): the prompt is average-pooled to every scale and
 * concatenated there. Bottleneck: conv block on [f_L, prompt_L] to D_L (D = `decoderChannels`);
 * then for l = L−1..0: nearest ×2 up-sampling, concat [f_l, up, prompt_l], `decoderConvs` conv
 * blocks to D_l;
 * 1×1×1 conv to `classes` logits. Parameters under `<name>.bottleneck`, `<name>.dec<l>.<i>`,
 * `<name>.head`.
 */
export function autoPromptDecoder(
  g: Graph,
  name: string,
  feats: readonly Value[],
  prompt: Value,
  a: RrlNetArgs,
): Value {
  const L = feats.length - 1;
  const prompts: Value[] = [prompt];
  for (let l = 1; l <= L; l++)
    prompts.push(g.averagePool(prompts[l - 1]!, { kernel: 2, strides: 2 }));
  return g.scope(name, () => {
    let h = convBlock(
      g,
      'bottleneck',
      g.concat([feats[L]!, prompts[L]!], 1),
      a.decoderChannels[L]!,
      {
        slope: a.slope,
      },
    );
    for (let l = L - 1; l >= 0; l--) {
      const up = upsample(g, `up${l}`, h, 'nearest');
      h = convStack(
        g,
        `dec${l}`,
        g.concat([feats[l]!, up, prompts[l]!], 1),
        a.decoderChannels[l]!,
        a.decoderConvs,
        {
          slope: a.slope,
        },
      );
    }
    return pointwise(g, 'head', h, a.classes);
  });
}

export interface RrlInferenceNet {
  args: RrlNetArgs;
  grid: [number, number, number];
  graph: Graph;
  image: Value;
  /** General branch logits (E_g + head) — the prompt before softmax. */
  generalLogits: Value;
  /** Medical branch without the prompt (E_m + its own head). */
  medicalLogits: Value;
  /** Full pipeline: E_m + AP decoder prompted by softmax(generalLogits). */
  logits: Value;
}

/**
 * The inference graph of the whole method on `grid` [D, H, W]: image [1, inChannels, D, H, W] →
 * E_g (`eg.`) + head (`eg_head.`) → softmax = prompt; E_m (`em.`) + head (`em_head.`);
 * E_m features + prompt → AP decoder (`ap.`). `stopPromptGradient` cuts the prompt's gradient
 * (AP-decoder training: the general branch is not changed by the decoder's loss).
 */
export function rrlInferenceNet(
  args: RrlNetArgs,
  grid: readonly [number, number, number],
  o: {
    stopPromptGradient?: boolean;
    /** Centre each channel before InstanceNormalization (graphs run in the browser: see Graph). */
    centreInstanceNorm?: boolean;
  } = {},
): RrlInferenceNet {
  const div = 2 ** (args.channels.length - 1);
  if (grid.some((d) => d % div !== 0)) {
    throw new Error(
      `rrlInferenceNet: grid [${grid.join(', ')}] must be divisible by ${div} for ${args.channels.length} scales`,
    );
  }
  const g = new Graph();
  g.centreInstanceNorm = o.centreInstanceNorm === true;
  const image = g.input('image', [1, args.inChannels, ...grid]);
  const fg = rrlEncoder(g, 'eg', image, args);
  const generalLogits = segmentationHead(g, 'eg_head', fg, args);
  const fm = rrlEncoder(g, 'em', image, args);
  const medicalLogits = segmentationHead(g, 'em_head', fm, args);
  const soft = g.softmax(generalLogits, 1);
  const prompt = o.stopPromptGradient ? g.stopGradient(soft) : soft;
  const logits = autoPromptDecoder(g, 'ap', fm, prompt, args);
  return {
    args,
    grid: [grid[0], grid[1], grid[2]],
    graph: g,
    image,
    generalLogits,
    medicalLogits,
    logits,
  };
}
