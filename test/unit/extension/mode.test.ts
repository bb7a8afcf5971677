// The mode and the extension must agree on ids; the mode is listed for MR/CT studies only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mode, {
  EXTENSION_URL,
  isValidMode,
  layoutTemplate,
  oneShotButton,
} from '@rrl/mode/index.js';
import * as modeIds from '@rrl/mode/id.js';
import * as extIds from '@rrl/extension/id.js';
import getHangingProtocolModule, {
  VOLUME_SERIES_ATTRIBUTE,
  countVolumeSeries,
  registerHangingProtocolAttributes,
} from '@rrl/extension/getHangingProtocolModule.js';
import { makeCommandsModule } from '@rrl/extension/commandsModule.js';
import { createTools } from '@rrl/mode/initToolGroups.js';

test('mode is listed for studies with MR or CT, not for SEG/SR-only or other modalities', () => {
  assert.equal(isValidMode({ modalities: 'MR' }).valid, true);
  assert.equal(isValidMode({ modalities: 'CT\\SEG' }).valid, true);
  assert.equal(isValidMode({ modalities: 'SEG' }).valid, false);
  assert.equal(isValidMode({ modalities: 'US\\SR' }).valid, false);
  assert.equal(isValidMode({ modalities: '' }).valid, false);
});

test('mode and extension ids, panel, hanging protocol and command agree', () => {
  assert.equal(modeIds.EXTENSION_ID, extIds.id);
  assert.equal(modeIds.PANEL_ID, extIds.PANEL_ID);
  assert.equal(modeIds.HANGING_PROTOCOL_ID, extIds.HANGING_PROTOCOL_ID);
  const m = mode.modeFactory();
  assert.equal(m.displayName, 'One-Shot Segmentation');
  assert.deepEqual(m.hangingProtocol, [extIds.HANGING_PROTOCOL_ID, 'default']);
  assert.ok(Object.keys(m.extensions).includes(EXTENSION_URL));
  assert.match(EXTENSION_URL, /\/extension\/index\.js$/);
  const layout = layoutTemplate();
  assert.deepEqual(layout.props.rightPanels[0], extIds.PANEL_ID);
  const hp = getHangingProtocolModule();
  assert.equal(hp[0].name, extIds.HANGING_PROTOCOL_ID);
  assert.equal(hp[0].protocol.id, extIds.HANGING_PROTOCOL_ID);
  assert.deepEqual(
    hp[0].protocol.stages[0].viewports.map((v) => v.viewportOptions.orientation),
    ['axial', 'sagittal', 'coronal'],
  );
  const cmds = makeCommandsModule({
    oneShotSegment: async () => undefined,
    oneShotSave: async () => undefined,
    oneShotCancel: () => undefined,
    oneShotLoadModels: async () => undefined,
    oneShotResolveReplace: async () => undefined,
    oneShotUndoReplace: async () => undefined,
    oneShotSelectResult: () => undefined,
  })();
  assert.ok(oneShotButton.props.commands in cmds.definitions);
  const primary = m.toolbarSections.find((s) => 'primary' in s) as { primary: string[] };
  assert.equal(primary.primary[0], oneShotButton.id);
});

test('tool groups include brushes and erasers for corrections', () => {
  const names = new Proxy({}, { get: (_t, k) => String(k) }) as Record<string, string>;
  const tools = createTools(
    {
      toolNames: names,
      Enums: {
        MouseBindings: { Primary: 1, Secondary: 2, Auxiliary: 4, Wheel: 524288 },
        KeyboardBindings: { Shift: 16 },
      },
    },
    true,
  );
  const passive = tools.passive.map((t) => t.toolName);
  for (const t of ['CircularBrush', 'CircularEraser', 'SphereBrush', 'SphereEraser'])
    assert.ok(passive.includes(t), t);
  assert.ok(tools.disabled.some((t) => t.toolName === 'Crosshairs'));
});

test('the MPR protocol matches studies with an MR/CT volume series only', () => {
  const [{ protocol }] = getHangingProtocolModule();
  const rule = protocol.protocolMatchingRules[0];
  assert.equal(rule.attribute, VOLUME_SERIES_ATTRIBUTE);
  assert.equal(rule.required, true);
  const registered: Record<string, typeof countVolumeSeries> = {};
  registerHangingProtocolAttributes({
    addCustomAttribute: (id, _name, cb) => {
      registered[id] = cb;
    },
  });
  const count = registered[VOLUME_SERIES_ATTRIBUTE];
  assert.equal(count, countVolumeSeries);
  const mr = { isReconstructable: true, Modality: 'MR', numImageFrames: 181 };
  assert.equal(count({}, { displaySets: [mr, { ...mr, Modality: 'SEG' }] }), 1);
  assert.equal(count({}, { displaySets: [{ ...mr, isReconstructable: false }] }), 0);
  assert.equal(count({}, { displaySets: [{ ...mr, numImageFrames: 1 }] }), 0);
  assert.equal(count({}, undefined), 0);
});
