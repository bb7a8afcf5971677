/**
 * Commands: oneShotSegment (also the toolbar tool), oneShotSave, oneShotCancel, oneShotLoadModels.
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
      },
      defaultContext: COMMAND_CONTEXT,
    };
  };
}
