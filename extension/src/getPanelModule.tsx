/**
 * Panel module. The host renders `component` with its own React and passes no props; the
 * component has no hooks and returns a <div> whose (stable) ref callback mounts our own React
 * root there (the pattern that works in the prebuilt OHIF 3.13.2).
 */
import { createRoot, type Root } from 'react-dom/client';
import { PANEL_NAME } from './id.js';
import { OneShotPanel, type PanelActions, type TrainingHooks } from './panels/OneShotPanel.js';
import type { Store } from './state/store.js';

export function makeGetPanelModule(
  getStore: () => Store | undefined,
  actions: PanelActions,
  getTraining?: () => TrainingHooks | undefined,
) {
  return function getPanelModule() {
    let root: Root | undefined;
    let mountedOn: HTMLElement | undefined;
    // One identity for the lifetime of the panel module: the host must not re-mount our root.
    const ref = (el: HTMLDivElement | null) => {
      if (el && el !== mountedOn) {
        const store = getStore();
        if (!store) return;
        root?.unmount();
        mountedOn = el;
        root = createRoot(el);
        root.render(<OneShotPanel store={store} actions={actions} training={getTraining?.()} />);
      } else if (!el && root) {
        const r = root;
        root = undefined;
        mountedOn = undefined;
        // Unmount after the host's commit phase.
        setTimeout(() => r.unmount(), 0);
      }
    };
    function OneShotPanelHost() {
      return (
        <div
          ref={ref}
          data-testid="oneshot-panel-host"
          style={{ height: '100%', overflowY: 'auto' }}
        />
      );
    }
    return [
      {
        name: PANEL_NAME,
        iconName: 'tab-roi-threshold', // not the Segmentation panel's icon: two alike tabs confuse
        iconLabel: 'One-Shot',
        label: 'One-Shot',
        component: OneShotPanelHost,
      },
    ];
  };
}
