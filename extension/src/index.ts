/**
 * RRL-MedSAM One-Shot extension for OHIF 3.13 (loaded at run time by URL: default export).
 * Panel, commands, toolbar evaluator, hanging protocol; inference in a module Web Worker.
 */
import { makeCommandsModule } from './commandsModule.js';
import getHangingProtocolModule from './getHangingProtocolModule.js';
import { makeGetPanelModule } from './getPanelModule.js';
import { makeGetToolbarModule } from './getToolbarModule.js';
import { id } from './id.js';
import { disposeWorker } from './inference/client.js';
import { forgetResults, stopWatchingEdits } from './seg/results.js';
import { actions, loadModels, preRegistration, runtime, trainingHooks } from './init.js';

const getStore = () => runtime.ctx?.store;

const extension = {
  id,
  preRegistration,
  onModeEnter() {
    const store = getStore();
    if (!store) return;
    forgetResults();
    store.reset();
    void loadModels();
  },
  onModeExit() {
    actions.oneShotCancel();
    disposeWorker();
    stopWatchingEdits();
    forgetResults();
    getStore()?.reset();
  },
  getPanelModule: makeGetPanelModule(
    getStore,
    {
      run: () => void actions.oneShotSegment(),
      cancel: () => actions.oneShotCancel(),
      save: () => void actions.oneShotSave(),
      reloadModels: () => void actions.oneShotLoadModels(),
      resolveReplace: (choice) => void actions.oneShotResolveReplace(choice),
      undoReplace: () => void actions.oneShotUndoReplace(),
      selectResult: (id) => actions.oneShotSelectResult(id),
    },
    trainingHooks,
  ),
  getCommandsModule: makeCommandsModule(actions),
  getToolbarModule: makeGetToolbarModule(getStore),
  getHangingProtocolModule,
};

export default extension;
