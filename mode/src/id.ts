export const id = '@rrl-medsam/mode-oneshot';
/** Must match the extension's id / ids (extension/src/id.ts). */
export const EXTENSION_ID = '@rrl-medsam/extension-oneshot';
export const PANEL_ID = `${EXTENSION_ID}.panelModule.oneShot`;
export const HANGING_PROTOCOL_ID = 'rrlOneShotMPR';
