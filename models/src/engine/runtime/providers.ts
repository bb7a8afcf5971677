/**
 * Execution providers of onnxruntime-node that the trainer can use, in order of preference, with a
 * real availability probe: a provider is available when a session on a tiny model can be created
 * with it and gives the right answer.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { PROBE_INPUT, PROBE_OUTPUT, PROBE_X, PROBE_Y, probeModel } from './mini-onnx.js';

// The providers, best first (CUDA needs ORT's CUDA binaries, which are not installed by default).
import { PROVIDERS, isProvider, type Provider } from './providerChoice.js';
export {
  PROVIDERS,
  PROVIDER_SETTINGS,
  isProvider,
  isProviderSetting,
  type Provider,
  type ProviderSetting,
} from './providerChoice.js';

export interface ProbeResult {
  provider: Provider;
  available: boolean;
  /** Why not, when not available. */
  reason?: string;
  /** Milliseconds to create the session and run it once. */
  ms: number;
  /**
   * True when the provider runs on a software device (WebGPU on Mesa's lavapipe, a CPU): correct
   * but far slower than the CPU provider, so 'auto' passes it over.
   */
  software?: boolean;
}

/**
 * Whether the machine has a hardware GPU that Vulkan/Dawn could use: a DRM render node or an
 * NVIDIA device file. Without one, a WebGPU adapter can only be a software rasteriser.
 */
export function hasHardwareGpu(): boolean {
  if (existsSync('/dev/nvidia0') || existsSync('/dev/dxg')) return true;
  try {
    return readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
  } catch {
    return process.platform === 'darwin' || process.platform === 'win32';
  }
}

/** The onnxruntime-node `executionProviders` entry for a provider. */
export function executionProvidersFor(
  provider: Provider,
): ort.InferenceSession.SessionOptions['executionProviders'] {
  switch (provider) {
    case 'cuda':
      return [{ name: 'cuda' }];
    case 'webgpu':
      // NCHW: the 3-D pooling kernels of the WebGPU provider only exist in that layout.
      return [
        { name: 'webgpu', preferredLayout: 'NCHW' } as ort.InferenceSession.ExecutionProviderConfig,
      ];
    case 'cpu':
      return ['cpu'];
  }
}

function backendListed(provider: Provider): { listed: boolean; bundled: boolean } {
  const list = ort.listSupportedBackends() as { name: string; bundled: boolean }[];
  const entry = list.find((b) => b.name === provider);
  return { listed: entry !== undefined, bundled: entry?.bundled ?? false };
}

/**
 * onnxruntime-node lists 'cuda' as a backend (not bundled) whether or not its CUDA provider library
 * was installed; look for the library beside the native binding so a missing CUDA costs no failed
 * session (and no ORT error on stderr).
 */
export function cudaProviderLibrary(): string | undefined {
  if (!backendListed('cuda').listed) return undefined;
  try {
    const require = createRequire(import.meta.url);
    const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
    const dir = path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    const name =
      process.platform === 'win32'
        ? 'onnxruntime_providers_cuda.dll'
        : 'libonnxruntime_providers_cuda.so';
    return existsSync(path.join(dir, name)) ? path.join(dir, name) : undefined;
  } catch {
    return undefined;
  }
}

const probeCache = new Map<Provider, Promise<ProbeResult>>();

/** Probes one provider (cached per process). Never throws. */
export function probeProvider(provider: Provider): Promise<ProbeResult> {
  let cached = probeCache.get(provider);
  if (!cached) {
    cached = runProbe(provider);
    probeCache.set(provider, cached);
  }
  return cached;
}

async function runProbe(provider: Provider): Promise<ProbeResult> {
  const t0 = performance.now();
  const ms = (): number => Math.round(performance.now() - t0);
  if (provider === 'cuda' && !cudaProviderLibrary()) {
    return {
      provider,
      available: false,
      reason: "ORT's CUDA provider library is not installed beside onnxruntime-node's binding",
      ms: ms(),
    };
  }
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(probeModel(), {
      executionProviders: executionProvidersFor(provider),
      logSeverityLevel: 3,
    });
    const out = await session.run({
      [PROBE_INPUT.name]: new ort.Tensor('float32', PROBE_X, [...PROBE_INPUT.dims]),
    });
    const y = out[PROBE_OUTPUT]?.data as Float32Array | undefined;
    if (!y || y.length !== PROBE_Y.length || y.some((v, i) => Math.abs(v - PROBE_Y[i]!) > 1e-6)) {
      return {
        provider,
        available: false,
        reason: 'the probe model ran but gave a wrong answer',
        ms: ms(),
      };
    }
    const software = provider === 'webgpu' && !hasHardwareGpu();
    return { provider, available: true, ms: ms(), ...(software ? { software } : {}) };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { provider, available: false, reason: message.split('\n')[0]!.slice(0, 300), ms: ms() };
  } finally {
    await session?.release();
  }
}

export class ProviderUnavailableError extends Error {
  constructor(
    readonly provider: Provider,
    readonly reason: string,
  ) {
    super(
      `The '${provider}' execution provider was asked for but is not available here (${reason}). ` +
        (provider === 'webgpu'
          ? 'WebGPU needs a Vulkan driver (on CPU-only Debian 12: mesa-vulkan-drivers from bookworm-backports, see scripts/install-deps.sh). '
          : provider === 'cuda'
            ? "CUDA needs onnxruntime-node's CUDA binaries (install onnxruntime-node without ONNXRUNTIME_NODE_INSTALL=skip on a machine with CUDA 12). "
            : '') +
        "Use provider 'auto' to take the best available one.",
    );
    this.name = 'ProviderUnavailableError';
  }
}

export interface ProviderChoice {
  provider: Provider;
  /** The probes that were run to decide, in order. */
  probes: ProbeResult[];
}

/**
 * Chooses a provider: an explicit one must be available (else ProviderUnavailableError); 'auto'
 * (the default) takes the first available of `order` (default PROVIDERS), passing over software
 * devices (WebGPU on lavapipe) unless `allowSoftware`. The environment variable
 * RRL_ENGINE_PROVIDER overrides 'auto' when set.
 */
export async function selectProvider(
  requested: Provider | 'auto' = 'auto',
  order: readonly Provider[] = PROVIDERS,
  allowSoftware = false,
): Promise<ProviderChoice> {
  const fromEnv = process.env['RRL_ENGINE_PROVIDER'];
  if (requested === 'auto' && fromEnv && fromEnv !== 'auto') {
    if (!isProvider(fromEnv)) {
      throw new Error(
        `RRL_ENGINE_PROVIDER is '${fromEnv}'; expected one of ${PROVIDERS.join(', ')} or 'auto'.`,
      );
    }
    requested = fromEnv;
  }
  if (requested !== 'auto') {
    const probe = await probeProvider(requested);
    if (!probe.available) throw new ProviderUnavailableError(requested, probe.reason ?? 'unknown');
    return { provider: requested, probes: [probe] };
  }
  const probes: ProbeResult[] = [];
  for (const provider of order) {
    const probe = await probeProvider(provider);
    probes.push(probe);
    if (probe.available && (allowSoftware || !probe.software)) return { provider, probes };
  }
  throw new Error(
    `No execution provider is available (tried ${probes.map((p) => `${p.provider}: ${p.reason}`).join('; ')}). ` +
      'Reinstall onnxruntime-node (npm ci) and check that its native library loads.',
  );
}
