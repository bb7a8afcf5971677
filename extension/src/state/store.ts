/** The One-Shot panel's state: a tiny observable store shared by commands and the panel. */
import type { ModelMetadata } from '@rrl/core/format/metadata.js';
import type { ExecutionProvider } from '../inference/protocol.js';

export type OneShotStatus =
  'idle' | 'loading-models' | 'running' | 'done' | 'saving' | 'saved' | 'error' | 'cancelled';

export interface ModelEntry {
  metadata: ModelMetadata;
  /** URL of the model folder, ending in '/'. */
  baseUrl: string;
}

export interface SegmentInfo {
  value: number;
  name: string;
  color: [number, number, number];
  voxels: number;
}

export interface OneShotState {
  status: OneShotStatus;
  models: ModelEntry[];
  /** Models whose metadata was rejected, with the reason. */
  rejectedModels: { id: string; reason: string }[];
  selectedModelId?: string;
  preferredProvider: ExecutionProvider;
  /** Provider actually used by the last run, and why it fell back. */
  provider?: ExecutionProvider;
  fallbackReason?: string;
  phase?: string;
  progress?: number;
  /** User-facing message (errors, save results). */
  message?: string;
  messageKind?: 'info' | 'error' | 'success';
  timings?: Record<string, number>;
  segments: SegmentInfo[];
  /** The segmentation created by the last run (cornerstone segmentation id). */
  segmentationId?: string;
  /** Source display set of that segmentation. */
  sourceDisplaySetUID?: string;
  sourceSeriesUID?: string;
  lastSave?: {
    seriesInstanceUID: string;
    seriesDescription: string;
    seriesNumber: number;
    sopInstanceUID: string;
  };
  saveCount: number;
  /**
   * The identity of the SEG for the labelmap content last sent to the PACS (kept after a failed
   * or a successful try): saving the same content again reuses its UIDs, so a retried save never
   * stores a second copy.
   */
  saveIdentity?: SaveIdentity;
  /** Content hash of the labelmap when it was last clean (as the model made it, or as saved). */
  cleanHash?: string;
  /** The labelmap differs from its clean state: the reader's corrections are not in the PACS. */
  unsavedEdits: boolean;
  /** mm³ of one voxel of the result's series (volumes in mL). */
  voxelMm3?: number;
  /** The model that made the result: the SEG codes its labels, whatever is chosen since. */
  resultModelId?: string;
  /** A Segment click waits for the reader's choice: the labelmap holds unsaved corrections. */
  confirmReplace: boolean;
  /** The last replacement can be undone ('undo'), or the undo redone ('redo'). */
  undo?: 'undo' | 'redo';
  /** The one-shot results in the viewer (several after "Keep both"); the current one first. */
  results: { segmentationId: string; label: string }[];
}

export interface SaveIdentity {
  /** Segmentation id + a hash of the labelmap's content. */
  key: string;
  seriesInstanceUID: string;
  sopInstanceUID: string;
  seriesNumber: number;
}

export function initialState(): OneShotState {
  return {
    status: 'idle',
    models: [],
    rejectedModels: [],
    preferredProvider: 'webgpu',
    segments: [],
    saveCount: 0,
    unsavedEdits: false,
    confirmReplace: false,
    results: [],
  };
}

export class Store {
  private state: OneShotState = initialState();
  private readonly listeners = new Set<(s: OneShotState) => void>();

  get(): OneShotState {
    return this.state;
  }

  set(patch: Partial<OneShotState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l(this.state);
  }

  reset(): void {
    const { models, rejectedModels, selectedModelId, preferredProvider } = this.state;
    this.state = { ...initialState(), models, rejectedModels, selectedModelId, preferredProvider };
    for (const l of this.listeners) l(this.state);
  }

  subscribe(l: (s: OneShotState) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
