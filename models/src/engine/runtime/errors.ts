/** Errors that stop a training run, each saying what happened, at which step and what to try. */

export interface LastCheckpoint {
  path: string;
  step: number;
}

function lastCheckpointText(last: LastCheckpoint | undefined): string {
  return last
    ? `The last good checkpoint is kept at ${last.path} (after step ${last.step}); resume from it with Trainer.loadCheckpoint.`
    : 'No checkpoint was written in this run.';
}

/** The loss or a state tensor became NaN or infinite. */
export class TrainingDivergedError extends Error {
  readonly step: number;
  readonly value: number;
  readonly lastCheckpoint: LastCheckpoint | undefined;

  constructor(args: {
    step: number;
    what: string;
    value: number;
    lr?: number;
    lastCheckpoint?: LastCheckpoint;
  }) {
    super(
      `Training diverged at step ${args.step}: ${args.what} is ${args.value}. ` +
        `${lastCheckpointText(args.lastCheckpoint)} ` +
        `Try a lower learning rate${args.lr !== undefined ? ` (it was ${args.lr})` : ''}, a warm-up, ` +
        'or check the input volumes for NaN/Inf voxels.',
    );
    this.name = 'TrainingDivergedError';
    this.step = args.step;
    this.value = args.value;
    this.lastCheckpoint = args.lastCheckpoint;
  }
}

/** The execution provider ran out of memory. */
export class TrainingOutOfMemoryError extends Error {
  readonly step: number;
  readonly provider: string;
  readonly lastCheckpoint: LastCheckpoint | undefined;

  constructor(args: {
    step: number;
    provider: string;
    cause: string;
    lastCheckpoint?: LastCheckpoint;
  }) {
    super(
      `Out of memory at step ${args.step} on the '${args.provider}' provider (${args.cause}). ` +
        `${lastCheckpointText(args.lastCheckpoint)} ` +
        'Try a smaller training grid, fewer base channels, or another provider (a GPU with more memory, or the CPU).',
    );
    this.name = 'TrainingOutOfMemoryError';
    this.step = args.step;
    this.provider = args.provider;
    this.lastCheckpoint = args.lastCheckpoint;
  }
}

const OOM_PATTERNS = [
  /out of memory/i,
  /\bOOM\b/,
  /bad_alloc/i,
  /failed to allocate/i,
  /allocation failed/i,
  /cannot allocate memory/i,
  /CUDNN_STATUS_ALLOC_FAILED/i,
  /CUDA_ERROR_OUT_OF_MEMORY/i,
  /buffer size .* exceeds/i,
  /maxBufferSize|maxStorageBufferBindingSize/i,
];

/** Whether an error thrown by a session run means the provider ran out of memory. */
export function isOutOfMemoryError(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return OOM_PATTERNS.some((p) => p.test(message));
}

/** A short cause for an ORT run error: the node and the allocation that failed when it is an OOM. */
export function describeRunError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const node = /Name:'([^']+)'/.exec(message)?.[1];
  const alloc = /Failed to allocate memory for requested buffer of size (\d+)/.exec(message);
  if (alloc) {
    const gib = Number(alloc[1]) / 2 ** 30;
    return `could not allocate ${gib >= 0.1 ? `${gib.toFixed(1)} GiB` : `${alloc[1]} bytes`}${node ? ` in node ${node}` : ''}`;
  }
  const status = /Status Message: (.*)/.exec(message)?.[1];
  return `${node ? `node ${node}: ` : ''}${(status ?? message).split('\n')[0]!.slice(0, 300)}`;
}
