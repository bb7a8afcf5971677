/**
 * Cancellation of a training stage: the stage saves its checkpoint and throws this error
 * (`name` 'AbortError', like the DOM's), so a rerun on the same folder continues from there.
 */
export class StageAbortedError extends Error {
  readonly stage: string;
  /** Steps completed (the checkpoint holds them). */
  readonly step: number;
  readonly checkpoint?: string;
  constructor(stage: string, step: number, total: number, checkpoint?: string) {
    super(
      `training cancelled during stage "${stage}" after step ${step} of ${total}; ` +
        (checkpoint
          ? `the checkpoint ${checkpoint} is kept: run again with the same output folder to continue.`
          : 'nothing of this stage was saved, so a rerun starts it again.'),
    );
    this.name = 'AbortError';
    this.stage = stage;
    this.step = step;
    if (checkpoint !== undefined) this.checkpoint = checkpoint;
  }
}
