/**
 * Tool groups of the One-Shot mode: navigation tools active, OHIF's segmentation brushes and
 * erasers passive (the Segmentation panel's toolbox activates them) so a reader can correct the
 * model's result.
 */
interface ToolsUtility {
  toolNames: Record<string, string>;
  Enums: {
    MouseBindings: Record<string, number>;
    KeyboardBindings: Record<string, number>;
  };
}

interface ExtensionManagerLike {
  getModuleEntry(id: string): { exports?: unknown } | undefined;
}

interface ToolGroupServiceLike {
  createToolGroupAndAddTools(id: string, tools: unknown): void;
}

const MIN_R = 0.5;
const MAX_R = 99.5;

function brush(toolName: string, activeStrategy: string, extra: Record<string, unknown> = {}) {
  return {
    toolName,
    parentTool: 'Brush',
    configuration: { activeStrategy, minRadius: MIN_R, maxRadius: MAX_R, ...extra },
  };
}

export function createTools(u: ToolsUtility, withCrosshairs: boolean) {
  const { toolNames, Enums } = u;
  const tools = {
    active: [
      { toolName: toolNames.WindowLevel, bindings: [{ mouseButton: Enums.MouseBindings.Primary }] },
      { toolName: toolNames.Pan, bindings: [{ mouseButton: Enums.MouseBindings.Auxiliary }] },
      {
        toolName: toolNames.Zoom,
        bindings: [{ mouseButton: Enums.MouseBindings.Secondary }, { numTouchPoints: 2 }],
      },
      {
        toolName: toolNames.StackScroll,
        bindings: [{ mouseButton: Enums.MouseBindings.Wheel }, { numTouchPoints: 3 }],
      },
    ],
    passive: [
      brush('CircularBrush', 'FILL_INSIDE_CIRCLE'),
      brush('CircularEraser', 'ERASE_INSIDE_CIRCLE'),
      brush('SphereBrush', 'FILL_INSIDE_SPHERE'),
      brush('SphereEraser', 'ERASE_INSIDE_SPHERE'),
      brush('ThresholdCircularBrush', 'THRESHOLD_INSIDE_CIRCLE'),
      brush('ThresholdSphereBrush', 'THRESHOLD_INSIDE_SPHERE'),
      brush('ThresholdCircularBrushDynamic', 'THRESHOLD_INSIDE_CIRCLE', {
        threshold: { isDynamic: true, dynamicRadius: 3 },
      }),
      brush('ThresholdSphereBrushDynamic', 'THRESHOLD_INSIDE_SPHERE', {
        threshold: { isDynamic: true, dynamicRadius: 3 },
      }),
      { toolName: toolNames.LabelmapSlicePropagation },
      { toolName: toolNames.MarkerLabelmap },
      { toolName: toolNames.ClickSegment },
      { toolName: toolNames.CircleScissors },
      { toolName: toolNames.RectangleScissors },
      { toolName: toolNames.SphereScissors },
      { toolName: toolNames.LabelMapEditWithContourTool },
      { toolName: toolNames.SegmentSelect },
      { toolName: toolNames.Magnify },
      { toolName: toolNames.WindowLevelRegion },
    ].filter((t) => typeof t.toolName === 'string'),
    disabled: [{ toolName: toolNames.ReferenceLines }] as Record<string, unknown>[],
  };
  if (withCrosshairs) {
    tools.disabled.push({
      toolName: toolNames.Crosshairs,
      bindings: [
        { mouseButton: Enums.MouseBindings.Primary, modifierKey: Enums.KeyboardBindings.Shift },
      ],
      configuration: {
        viewportIndicators: true,
        disableOnPassive: true,
        autoPan: { enabled: false, panSize: 10 },
      },
    });
  }
  return tools;
}

export function initToolGroups(
  extensionManager: ExtensionManagerLike,
  toolGroupService: ToolGroupServiceLike,
) {
  const entry = extensionManager.getModuleEntry('@ohif/extension-cornerstone.utilityModule.tools');
  const u = entry?.exports as ToolsUtility | undefined;
  if (!u?.toolNames) {
    throw new Error(
      'The viewer has no @ohif/extension-cornerstone tools utility module; the One-Shot mode needs it.',
    );
  }
  toolGroupService.createToolGroupAndAddTools('default', createTools(u, false));
  toolGroupService.createToolGroupAndAddTools('mpr', createTools(u, true));
}
