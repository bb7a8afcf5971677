/**
 * The SAM teacher of a task, never silent: "Teacher: MedSAM ViT-B (imported …)" or "No teacher:
 * stage 1 skipped". The list is the server's imported teachers; a checkpoint file as published
 * (sam_vit_b_01ec64.pth, medsam_vit_b.pth, mobile_sam.pt) can be imported from here — the server
 * reads it without running anything in it and converts it once.
 */
import { useCallback, useEffect, useState } from 'react';
import type { ApiClient, TeacherCard } from '../api/client.js';
import { message } from './trainingHooks.js';
import { Button, SECTION } from './ui.js';

const S = SECTION;

export function teacherLabel(t: TeacherCard | undefined): string {
  return t
    ? `Teacher: ${t.variant} (imported ${t.importedAt.slice(0, 10)} from ${t.sourceFile}, ${t.inputSize} px)`
    : 'No teacher: stage 1 (SAM distillation) skipped';
}

/** The imported teachers and an import action; errors go to `onError`. */
export function useTeachers(api: ApiClient, onError: (m: string) => void) {
  const [teachers, setTeachers] = useState<TeacherCard[]>([]);
  const [importing, setImporting] = useState<string>();
  const reload = useCallback(
    () =>
      api
        .teachers()
        .then(setTeachers)
        .catch((e: unknown) => onError(message(e))),
    [api, onError],
  );
  useEffect(() => void reload(), [reload]);
  const importFile = async (file: File): Promise<TeacherCard | undefined> => {
    setImporting(`${file.name} (${Math.round(file.size / 1e6)} MB)`);
    try {
      const r = await api.importTeacher(file, file.name);
      await reload();
      return r.teacher;
    } catch (e) {
      onError(message(e));
      return undefined;
    } finally {
      setImporting(undefined);
    }
  };
  return { teachers, importing, importFile };
}

export type TeachersState = ReturnType<typeof useTeachers>;

/** A teacher choice ('' = none) with the import of a checkpoint file. */
export function TeacherPicker(props: {
  state: TeachersState;
  value: string;
  onChange(id: string): void;
  busy: boolean;
  testId: string;
}) {
  const { teachers, importing, importFile } = props.state;
  const chosen = teachers.find((t) => t.id === props.value);
  return (
    <div data-testid={props.testId}>
      <select
        data-testid={`${props.testId}-select`}
        style={{ ...S.input, marginTop: 4 }}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
      >
        <option value="">{teacherLabel(undefined)}</option>
        {teachers.map((t) => (
          <option key={t.id} value={t.id}>
            {teacherLabel(t)}
          </option>
        ))}
      </select>
      <div style={S.small} data-testid={`${props.testId}-line`}>
        {teacherLabel(chosen)}
      </div>
      <label style={{ ...S.small, display: 'block', marginTop: 4 }}>
        Import a SAM, MedSAM or MobileSAM checkpoint (.pth / .pt as published):{' '}
        <input
          data-testid={`${props.testId}-file`}
          type="file"
          style={{ maxWidth: '100%', fontSize: 11 }}
          accept=".pth,.pt,.bin"
          disabled={props.busy || !!importing}
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = '';
            if (f) void importFile(f).then((t) => t && props.onChange(t.id));
          }}
        />
      </label>
      {importing && (
        <div style={S.small} role="status" data-testid={`${props.testId}-importing`}>
          Importing {importing}: reading and converting the encoder…
        </div>
      )}
    </div>
  );
}

/** The task's teacher with a change for the next training. */
export function TaskTeacher(props: {
  state: TeachersState;
  current: string | null | undefined;
  busy: boolean;
  change(id: string | null): void;
}) {
  const [value, setValue] = useState(props.current ?? '');
  useEffect(() => setValue(props.current ?? ''), [props.current]);
  return (
    <div>
      <TeacherPicker
        state={props.state}
        value={value}
        onChange={setValue}
        busy={props.busy}
        testId="oneshot-task-teacher"
      />
      <div style={S.row}>
        <Button
          testId="oneshot-task-teacher-apply"
          onClick={() => props.change(value || null)}
          disabled={props.busy || value === (props.current ?? '')}
        >
          Use for next training
        </Button>
      </div>
    </div>
  );
}
