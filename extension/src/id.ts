/** Extension id (OHIF convention: the package name). */
export const id = '@rrl-medsam/extension-oneshot';
export const PANEL_NAME = 'oneShot';
export const PANEL_ID = `${id}.panelModule.${PANEL_NAME}`;
export const HANGING_PROTOCOL_ID = 'rrlOneShotMPR';
export const COMMAND_CONTEXT = 'CORNERSTONE';
