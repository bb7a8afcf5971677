/**
 * Pieces the One-Shot panel and its training section share: the button and the styles of labels
 * and form fields, so both parts of the panel look the same.
 */
import type { CSSProperties } from 'react';

export const UI = {
  label: { fontSize: 11, textTransform: 'uppercase', letterSpacing: 0.5, color: '#9aa4b8' },
  /** Select and text input. */
  field: {
    width: '100%',
    background: '#151a2a',
    color: '#e6e9ef',
    border: '1px solid #3a4766',
    borderRadius: 4,
    padding: '4px 6px',
  },
  button: {
    flex: '1 1 auto',
    padding: '6px 10px',
    borderRadius: 4,
    border: '1px solid #5acce6',
    background: '#1b3b55',
    color: '#ffffff',
    cursor: 'pointer',
  },
  buttonDisabled: { opacity: 0.45, cursor: 'not-allowed' },
} satisfies Record<string, CSSProperties>;

/** Layout pieces the panel's sections share. */
export const SECTION = {
  section: { borderTop: '1px solid #2a3350', paddingTop: 8 },
  label: UI.label,
  input: { ...UI.field, boxSizing: 'border-box' },
  row: { display: 'flex', gap: 6, flexWrap: 'wrap', marginTop: 6 },
  small: { color: '#9aa4b8', fontSize: 12 },
  box: { background: '#0f1422', borderRadius: 4, padding: 8, marginTop: 6 },
  /** A question before something is replaced or stopped. */
  ask: {
    background: '#3d2e12',
    border: '1px solid #e6a23c',
    borderRadius: 4,
    padding: 8,
    marginTop: 6,
  },
  /** A question before something is removed for good. */
  danger: {
    background: '#4a1c1c',
    border: '1px solid #d9534f',
    borderRadius: 4,
    padding: 8,
    marginTop: 6,
  },
} satisfies Record<string, CSSProperties>;

export function Button(props: {
  testId: string;
  onClick(): void;
  disabled?: boolean;
  children: string;
}) {
  return (
    <button
      type="button"
      data-testid={props.testId}
      disabled={props.disabled}
      onClick={props.onClick}
      style={{ ...UI.button, ...(props.disabled ? UI.buttonDisabled : {}) }}
    >
      {props.children}
    </button>
  );
}

/** What the server noted at task creation, and the last error of a training action. */
export function TrainingMessages({ warnings, error }: { warnings: string[]; error?: string }) {
  return (
    <>
      {warnings.length > 0 && (
        <div data-testid="oneshot-task-warnings" role="status" style={SECTION.small}>
          {warnings.map((w) => (
            <div key={w}>⚠ {w}</div>
          ))}
        </div>
      )}
      {error && (
        <div data-testid="oneshot-training-message" role="status" style={SECTION.danger}>
          {error}
        </div>
      )}
    </>
  );
}
