/**
 * Toolbar evaluator for the One-shot button: enabled while no segmentation is running.
 * The button itself (uiType 'ohif.toolButton', command 'oneShotSegment') is declared by the mode.
 */
import type { Store } from './state/store.js';

export function makeGetToolbarModule(getStore: () => Store | undefined) {
  return function getToolbarModule() {
    return [
      {
        name: 'evaluate.oneShot.idle',
        evaluate: () => {
          const st = getStore()?.get().status;
          return st === 'running' || st === 'saving'
            ? { disabled: true, disabledText: 'One-shot segmentation is running' }
            : { disabled: false };
        },
      },
    ];
  };
}
