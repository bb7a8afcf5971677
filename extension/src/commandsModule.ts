/**
 * Commands: oneShotSegment (also the toolbar tool), oneShotSave, oneShotCancel, oneShotLoadModels,
 * oneShotUndoReplace.
 * Errors reach the user in the panel (data-testid="oneshot-message") and as notifications.
 */
import { COMMAND_CONTEXT } from './id.js';

export interface OneShotActions {
  /** Segments the active series with the selected model. */
  oneShotSegment(): Promise<void>;
  /** Writes the labelmap as a DICOM SEG and stores it in the PACS (a new series each time). */
  oneShotSave(): Promise<void>;
  /** Cancels a running segmentation. */
  oneShotCancel(): void;
  /** Reloads the models list from the server. */
  oneShotLoadModels(): Promise<void>;
  /** The reader's answer when a new segmentation would replace unsaved corrections. */
  oneShotResolveReplace(choice: 'replace' | 'keep' | 'cancel'): Promise<void>;
  /** Brings back the result the last replacement removed (again: redoes the replacement). */
  oneShotUndoReplace(): Promise<void>;
  /** Makes another one-shot result in the viewer the current one (Save, volumes). */
  oneShotSelectResult(segmentationId: string): void;
}

export function makeCommandsModule(actions: OneShotActions) {
  return function getCommandsModule() {
    return {
      actions,
      definitions: {
        oneShotSegment: { commandFn: actions.oneShotSegment },
        oneShotSave: { commandFn: actions.oneShotSave },
        oneShotCancel: { commandFn: actions.oneShotCancel },
        oneShotLoadModels: { commandFn: actions.oneShotLoadModels },
        oneShotUndoReplace: { commandFn: actions.oneShotUndoReplace },
      },
      defaultContext: COMMAND_CONTEXT,
    };
  };
}
