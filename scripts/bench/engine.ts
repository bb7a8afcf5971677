/**
 * Training-engine benchmark: per execution provider and network, the training-step time (median of
 * N after warm-up), the forward time of the exported inference model (median), and the peak memory
 * (process RSS high-water mark). Each (provider, network) runs in its own child process so the peak
 * RSS is its own.
 *
 *   npm run bench:engine                       # CPU (+ a hardware WebGPU if present), default sizes
 *   npm run bench:engine -- --configs unet-b8-64,unet-b16-128,reg-128 --providers cpu,webgpu
 *   npm run bench:engine -- --profile          # adds the ops that cost most (ORT profiling)
 *   npm run bench:engine -- --vs-torch         # the engine and PyTorch side by side on the CPU
 *
 * Flags: --providers a,b   --configs a,b   --steps N (5)   --warmup N (2)   --forward-runs N (5)
 *        --train-providers a,b (providers that run the training step; default all)
 *        --allow-software (run WebGPU on a software adapter, e.g. lavapipe)   --threads N
 *        --conv-grad gemm27|batchAsChannel|im2col   --profile   --json FILE
 *        --parallel N (ORT parallel execution mode with N inter-op threads)
 *        --no-spin (ORT threads do not spin-wait; the Trainer's default on the CPU provider)
 *        --spin (ORT threads spin-wait: ORT's own default)
 *        --opt-level disabled|basic|extended|all (ORT graph optimisations of the training session)
 *        --vs-torch (CPU only: after each network, scripts/device/torch_reference.py runs the same
 *          network in PyTorch (/usr/bin/python3 with Debian's python3-torch, or $RRL_PYTHON) with the same threads, warm-up and
 *          steps, in its own process; prints both medians, their ratios, both peak RSS, and fails
 *          when the parameter counts differ)
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildForwardGraph, buildTrainingGraph } from '@rrl/models/engine/autodiff/training.js';
import type { ConvGradWeightMode } from '@rrl/models/engine/autodiff/autodiff.js';
import { bakeParams } from '@rrl/models/engine/export/export.js';
import {
  executionProvidersFor,
  probeProvider,
  type Provider,
} from '@rrl/models/engine/runtime/providers.js';
import { summariseOrtProfile } from '@rrl/models/engine/runtime/profile.js';
import { Trainer } from '@rrl/models/engine/runtime/trainer.js';
import { BENCH_CONFIGS, type BenchConfig } from '@rrl/models/engine/nn/bench.js';

interface Args {
  providers?: Provider[];
  trainProviders?: Provider[];
  configs?: BenchConfig[];
  steps: number;
  warmup: number;
  forwardRuns: number;
  allowSoftware: boolean;
  threads?: number;
  convGrad?: ConvGradWeightMode;
  profile: boolean;
  noSpin: boolean;
  spin: boolean;
  parallel?: number;
  optLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  json?: string;
  child?: string;
  vsTorch: boolean;
}

/** PyTorch's numbers for one network (scripts/device/torch_reference.py --json). */
interface TorchResult {
  config: string;
  params?: number;
  threads?: number;
  trainMedianMs?: number;
  forwardMedianMs?: number;
  peakRssMiB?: number;
  /** PyTorch's version. */
  torch?: string;
  error?: string;
}

interface Result {
  provider: Provider;
  config: BenchConfig;
  description?: string;
  params?: number;
  buildMs?: number;
  sessionMs?: number;
  trainStepMs?: number[];
  trainMedianMs?: number;
  /** Process CPU time (user + system) per training step, median: robust to other load. */
  trainCpuMedianMs?: number;
  forwardMs?: number[];
  forwardMedianMs?: number;
  firstLoss?: number;
  lastLoss?: number;
  peakRssMiB?: number;
  convGrad?: ConvGradWeightMode;
  topOps?: { op: string; msPerStep: number; share: number }[];
  skipped?: string;
  error?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    steps: 5,
    warmup: 2,
    forwardRuns: 5,
    allowSoftware: false,
    profile: false,
    noSpin: false,
    spin: false,
    vsTorch: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const list = <T extends string>(allowed: readonly string[], what: string): T[] =>
      v()
        .split(',')
        .filter(Boolean)
        .map((x) => {
          if (!allowed.includes(x))
            throw new Error(`unknown ${what} '${x}'; expected one of ${allowed.join(', ')}`);
          return x as T;
        });
    if (k === '--providers') a.providers = list<Provider>(['cpu', 'webgpu', 'cuda'], 'provider');
    else if (k === '--train-providers')
      a.trainProviders = list<Provider>(['cpu', 'webgpu', 'cuda'], 'provider');
    else if (k === '--configs') a.configs = list<BenchConfig>(Object.keys(BENCH_CONFIGS), 'config');
    else if (k === '--steps') a.steps = Number(v());
    else if (k === '--warmup') a.warmup = Number(v());
    else if (k === '--forward-runs') a.forwardRuns = Number(v());
    else if (k === '--threads') a.threads = Number(v());
    else if (k === '--conv-grad') a.convGrad = v() as ConvGradWeightMode;
    else if (k === '--allow-software') a.allowSoftware = true;
    else if (k === '--profile') a.profile = true;
    else if (k === '--no-spin') a.noSpin = true;
    else if (k === '--spin') a.spin = true;
    else if (k === '--parallel') a.parallel = Number(v());
    else if (k === '--opt-level') a.optLevel = v() as Args['optLevel'];
    else if (k === '--json') a.json = v();
    else if (k === '--vs-torch') a.vsTorch = true;
    else if (k === '--child') a.child = v();
    else if (k === '--help' || k === '-h') {
      console.log(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]);
      process.exit(0);
    } else throw new Error(`unknown flag ${k} (see --help)`);
  }
  return a;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.memoryUsage().rss / 1048576;
}

async function runOne(provider: Provider, config: BenchConfig, args: Args): Promise<Result> {
  const result: Result = { provider, config };
  const t0 = performance.now();
  const net = BENCH_CONFIGS[config]();
  result.description = net.description;
  const convGrad = args.convGrad ?? (provider === 'cpu' ? 'gemm27' : 'batchAsChannel');
  result.convGrad = convGrad;
  const params = net.graph.initialParams(0);
  result.params = [...params.values()].reduce((a, p) => a + p.length, 0);
  const feeds: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
  for (const inp of net.inputs) {
    const n = inp.value.shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = inp.fill(i, n);
    feeds[inp.value.name] = { data, dims: inp.value.shape };
  }
  const train = !args.trainProviders || args.trainProviders.includes(provider);
  const built = train
    ? buildTrainingGraph({
        graph: net.graph,
        loss: net.loss,
        optimizer: { type: 'adamw', weightDecay: 1e-4 },
        gradientOptions: { convGradWeight: convGrad },
      })
    : undefined;
  const forward = buildForwardGraph({
    graph: net.graph,
    outputs: { out: net.output },
    params: 'inputs',
  });
  result.buildMs = performance.now() - t0;

  const profDir = args.profile ? mkdtempSync(path.join(tmpdir(), 'rrl-prof-')) : undefined;
  if (built) {
    const t1 = performance.now();
    const trainer = await Trainer.create(built, {
      provider,
      initialState: params,
      ...(args.threads ? { intraOpNumThreads: args.threads } : {}),
      ...(args.noSpin ? { allowSpinning: false } : args.spin ? { allowSpinning: true } : {}),
      ...(args.parallel
        ? { executionMode: 'parallel' as const, interOpNumThreads: args.parallel }
        : {}),
      ...(args.optLevel ? { graphOptimizationLevel: args.optLevel } : {}),
      ...(profDir ? { enableProfiling: true, profileFilePrefix: path.join(profDir, 'train') } : {}),
    });
    result.sessionMs = performance.now() - t1;
    const times: number[] = [];
    const cpuTimes: number[] = [];
    for (let i = 0; i < args.warmup + args.steps; i++) {
      const t = performance.now();
      const c = process.cpuUsage();
      const r = await trainer.step(feeds, 1e-3);
      const ms = performance.now() - t;
      const cpu = process.cpuUsage(c);
      if (i === 0) result.firstLoss = r.loss;
      result.lastLoss = r.loss;
      if (i >= args.warmup) {
        times.push(ms);
        cpuTimes.push((cpu.user + cpu.system) / 1000);
      }
    }
    result.trainStepMs = times;
    result.trainMedianMs = median(times);
    result.trainCpuMedianMs = median(cpuTimes);
    if (profDir) {
      trainer.endProfiling();
      const file = readdirSync(profDir).find((f) => f.startsWith('train'));
      if (file) result.topOps = summariseOrtProfile(path.join(profDir, file), args.warmup, 10).ops;
    }
    await trainer.dispose();
  }

  // forward pass of the exported (baked) inference model
  const baked = bakeParams(forward.model, params, 'out', forward.spec.inputs.length);
  const session = await ort.InferenceSession.create(baked.model, {
    executionProviders: executionProvidersFor(provider),
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...(args.threads ? { intraOpNumThreads: args.threads } : {}),
  });
  const inFeeds: Record<string, ort.Tensor> = {};
  for (const inp of forward.spec.inputs) {
    inFeeds[inp.name] = new ort.Tensor('float32', feeds[inp.name]!.data, inp.dims);
  }
  const ftimes: number[] = [];
  for (let i = 0; i < 1 + args.forwardRuns; i++) {
    const t = performance.now();
    await session.run(inFeeds);
    if (i > 0) ftimes.push(performance.now() - t);
  }
  await session.release();
  result.forwardMs = ftimes;
  result.forwardMedianMs = median(ftimes);
  result.peakRssMiB = peakRssMiB();
  if (profDir) rmSync(profDir, { recursive: true, force: true });
  return result;
}

function runChild(provider: Provider, config: BenchConfig, argv: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const script = process.argv[1]!;
    const child = spawn(
      process.execPath,
      [...process.execArgv, script, ...argv, '--child', `${provider}:${config}`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      const line = out
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{"provider"'));
      if (line) resolve(JSON.parse(line) as Result);
      else {
        const why = err
          .split('\n')
          .filter((l) => l.trim() && !l.includes('artificially reduced'))
          .slice(-3)
          .join(' | ');
        resolve({ provider, config, error: `child exited with ${code}: ${why.slice(0, 400)}` });
      }
    });
  });
}

const fmt = (x: number | undefined, digits = 0): string =>
  x === undefined ? '—' : x.toFixed(digits);

function printTable(results: Result[]): void {
  const rows = results.map((r) => [
    r.provider,
    r.config,
    r.params !== undefined ? `${(r.params / 1000).toFixed(1)}k` : '—',
    r.skipped || r.error ? '' : fmt(r.trainMedianMs),
    r.skipped || r.error ? '' : fmt(r.trainCpuMedianMs),
    r.skipped || r.error ? '' : fmt(r.forwardMedianMs),
    r.skipped || r.error ? '' : fmt(r.peakRssMiB),
    r.skipped
      ? `skipped: ${r.skipped}`
      : r.error
        ? `ERROR: ${r.error}`
        : r.trainMedianMs === undefined
          ? 'forward only'
          : `loss ${fmt(r.firstLoss, 4)} → ${fmt(r.lastLoss, 4)}, conv grad ${r.convGrad}`,
  ]);
  const head = [
    'provider',
    'network',
    'params',
    'train step ms (median)',
    'CPU ms/step',
    'forward ms (median)',
    'peak RSS MiB',
    'notes',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(line(head));
  console.log('| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |');
  for (const r of rows) console.log(line(r));
  for (const r of results) {
    if (r.topOps?.length) {
      console.log(
        `\nmost expensive ops, ${r.provider} ${r.config} (ms per training step, share of kernel time):`,
      );
      for (const o of r.topOps)
        console.log(
          `  ${o.op.padEnd(24)} ${o.msPerStep.toFixed(1).padStart(9)}  ${(o.share * 100).toFixed(1)}%`,
        );
    }
  }
}

/** Runs one network in the PyTorch reference (its own process, so its peak RSS is its own). */
function runTorch(config: BenchConfig, args: Args, threads: number): Promise<TorchResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-torch-'));
  const out = path.join(dir, 'torch.json');
  const script = path.join(
    path.dirname(new URL(import.meta.url).pathname),
    '..',
    'device',
    'torch_reference.py',
  );
  return new Promise((resolve) => {
    // Debian's interpreter, where apt installs python3-torch ($RRL_PYTHON overrides).
    const child = spawn(
      process.env.RRL_PYTHON ?? '/usr/bin/python3',
      [
        script,
        '--device',
        'cpu',
        '--threads',
        String(threads),
        '--warmup',
        String(args.warmup),
        '--steps',
        String(args.steps),
        '--configs',
        config,
        '--json',
        out,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, OMP_NUM_THREADS: String(threads) },
      },
    );
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.on('error', (e) => resolve({ config, error: `python3: ${e.message}` }));
    child.on('close', (code) => {
      try {
        const doc = JSON.parse(readFileSync(out, 'utf8')) as {
          torch: string;
          results: TorchResult[];
        };
        const r = doc.results[0];
        resolve(r ? { ...r, torch: doc.torch } : { config, error: 'no result' });
      } catch {
        resolve({
          config,
          error: `PyTorch reference failed (exit ${code}): ${err.trim().split('\n').pop() ?? ''}`,
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined ? '—' : `${(a / b).toFixed(2)}×`;

/** The side-by-side table; false when a network's parameter counts differ. */
function printVsTorch(rows: { engine: Result; torch: TorchResult }[], threads: number): boolean {
  let same = true;
  console.log(
    `\nEngine (onnxruntime-node ${ort.env.versions.node ?? ''}) vs PyTorch ` +
      `${rows.find((r) => r.torch.torch)?.torch.torch ?? ''} on the CPU, ${threads} intra-op ` +
      'threads each; ratio = engine / PyTorch (below 1: the engine is faster)\n',
  );
  console.log(
    '| network | params engine / PyTorch | train step ms engine / PyTorch | ratio | forward ms engine / PyTorch | ratio | peak RSS MiB engine / PyTorch |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const { engine: e, torch: t } of rows) {
    if (t.error || e.error) {
      console.log(`| ${e.config} | ${t.error ?? e.error} |`);
      same = false;
      continue;
    }
    const match = e.params === t.params;
    if (!match) same = false;
    console.log(
      `| ${e.config} | ${e.params ?? '—'} / ${t.params ?? '—'}${match ? '' : ' MISMATCH'} | ` +
        `${fmt(e.trainMedianMs)} / ${fmt(t.trainMedianMs)} | ${ratio(e.trainMedianMs, t.trainMedianMs)} | ` +
        `${fmt(e.forwardMedianMs, 1)} / ${fmt(t.forwardMedianMs, 1)} | ${ratio(e.forwardMedianMs, t.forwardMedianMs)} | ` +
        `${fmt(e.peakRssMiB)} / ${fmt(t.peakRssMiB)} |`,
    );
  }
  return same;
}

/** Configs too slow for a provider by default (CPU: minutes per run). */
const SLOW_ON_CPU: readonly BenchConfig[] = ['unet-b16-128', 'reg-128'];

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  if (args.child) {
    const [provider, config] = args.child.split(':') as [Provider, BenchConfig];
    try {
      console.log(JSON.stringify(await runOne(provider, config, args)));
    } catch (err) {
      console.log(JSON.stringify({ provider, config, error: String(err).split('\n')[0] }));
    }
    return;
  }
  if (args.vsTorch) {
    // Side by side on the CPU with equal threads (default: every core).
    args.providers = ['cpu'];
    args.threads ??= cpus().length;
    if (!argv.includes('--threads')) argv.push('--threads', String(args.threads));
  }
  const childArgv = argv.filter(
    (_, i) => argv[i] !== '--json' && argv[i - 1] !== '--json' && argv[i] !== '--vs-torch',
  );
  const providers: Provider[] = [];
  const notes: string[] = [];
  for (const p of args.providers ?? (['cuda', 'webgpu', 'cpu'] as Provider[])) {
    const probe = await probeProvider(p);
    if (!probe.available) notes.push(`${p}: not available (${probe.reason})`);
    else if (probe.software && !args.allowSoftware) {
      notes.push(
        `${p}: software adapter only (lavapipe), skipped; --allow-software runs it (correct but slow)`,
      );
    } else providers.push(p);
  }
  const results: Result[] = [];
  for (const provider of providers) {
    const explicit = args.configs !== undefined;
    const configs =
      args.configs ?? (['unet-b8-64', 'unet-b16-128', 'reg-64', 'reg-128'] as BenchConfig[]);
    for (const config of configs) {
      if (provider === 'cpu' && !explicit && SLOW_ON_CPU.includes(config)) {
        results.push({
          provider,
          config,
          skipped: 'too slow on this CPU by default; --configs ' + config + ' runs it',
        });
        continue;
      }
      process.stderr.write(`running ${provider} ${config} …\n`);
      const r = await runChild(provider, config, childArgv);
      results.push(r);
      process.stderr.write(
        `  ${provider} ${config}: ${r.error ?? `train ${fmt(r.trainMedianMs)} ms, forward ${fmt(r.forwardMedianMs)} ms`}\n`,
      );
      // partial results survive a time limit
      if (args.json)
        writeFileSync(args.json, JSON.stringify({ results, notes, args, partial: true }, null, 2));
    }
  }
  console.log(
    `\nonnxruntime-node ${ort.env.versions.node ?? ''}, ${args.warmup} warm-up + ${args.steps} timed steps, AdamW; ` +
      `CPU ms/step = process CPU time (all threads) per step; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`,
  );
  for (const n of notes) console.log(`note: ${n}`);
  printTable(results);
  let vsTorch: { engine: Result; torch: TorchResult }[] | undefined;
  if (args.vsTorch) {
    vsTorch = [];
    for (const r of results) {
      if (r.skipped) continue;
      process.stderr.write(`running PyTorch ${r.config} …\n`);
      vsTorch.push({ engine: r, torch: await runTorch(r.config, args, args.threads ?? 1) });
    }
    const same = printVsTorch(vsTorch, args.threads ?? 1);
    if (!same) {
      console.error(
        'The engine and PyTorch differ in parameter count (or one failed): the networks are not the same, so the ratios mean nothing. Fix models/src/engine/nn/bench.ts or scripts/device/torch_reference.py.',
      );
      process.exitCode = 1;
    }
  }
  if (args.json)
    writeFileSync(args.json, JSON.stringify({ results, notes, args, vsTorch }, null, 2));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
