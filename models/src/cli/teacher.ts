/**
 * `npm run teacher -- import <checkpoint> | list | remove <id>`: the SAM teachers of stage 1.
 * A published checkpoint (sam_vit_b_01ec64.pth, sam_vit_l_…, sam_vit_h_…, medsam_vit_b.pth,
 * mobile_sam.pt) is read without Python (a restricted unpickler: no code in the file runs),
 * converted once into an ONNX image encoder and kept with a card. Exit codes: 0 ok, 2 bad input or
 * usage, 1 failure.
 */
import path from 'node:path';
import { CheckpointError } from '../format/torchCheckpoint.js';
import {
  DEFAULT_TEACHER_INPUT_SIZE,
  importSamCheckpoint,
  isTeacherInputSize,
  listTeachers,
  removeTeacher,
  teacherSummary,
} from '../sam/store.js';
import { SamImportError } from '../sam/weights.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  parseCommand,
  processIo,
  str,
  usage,
  type CommandSpec,
  type Io,
  isMain,
} from './args.js';
import { teachersDir } from './split.js';

export const TEACHER_SPEC: CommandSpec = {
  command: 'teacher',
  summary:
    'Manages the SAM teachers of stage 1: `import <checkpoint>` converts a published SAM, MedSAM or MobileSAM checkpoint (read without Python; nothing in the file runs) into an ONNX image encoder with a card; `list` shows them; `remove <id>` deletes one. A plan or a task names a teacher by its id.',
  options: [
    {
      name: 'size',
      value: 'PIXELS',
      help: `import: square input size, a multiple of 16 (default ${DEFAULT_TEACHER_INPUT_SIZE}; SAM as published uses 1024, which is about 20× slower per slice on a CPU)`,
    },
    {
      name: 'variant',
      value: 'NAME',
      help: 'import: the name to show (default: detected from the weights and the file name, e.g. "MedSAM ViT-B")',
    },
    {
      name: 'teachers-dir',
      value: 'DIR',
      help: "where teachers are kept (default $RRL_TEACHERS_DIR, else the server's var/server/teachers)",
    },
    {
      name: 'source-name',
      value: 'NAME',
      help: "import: the checkpoint's file name to record (default: the file's own name)",
    },
    { name: 'json', flag: true, help: 'list: print the cards as JSON' },
  ],
  examples: [
    'npm run teacher -- import ~/Downloads/medsam_vit_b.pth',
    'npm run teacher -- import sam_vit_b_01ec64.pth --size 512',
    'npm run teacher -- list',
    'npm run teacher -- remove medsam-vit-b-1a2b3c4d-256',
  ],
};

function gib(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : `${(n / 1e6).toFixed(1)} M`;
}

export async function teacherCli(argv: string[], io: Io = processIo): Promise<number> {
  const out = (s: string): void => void io.stdout.write(`${s}\n`);
  const err = (s: string): void => void io.stderr.write(`${s}\n`);
  try {
    const { values: v, positionals } = parseCommand(TEACHER_SPEC, argv);
    const [cmd, ...rest] = positionals;
    if (v.help || cmd === undefined || cmd === 'help') {
      out(usage(TEACHER_SPEC).replace('[options]', '<import FILE | list | remove ID> [options]'));
      return cmd === undefined && !v.help ? EXIT_USAGE : EXIT_OK;
    }
    const dir = teachersDir(str(v, 'teachers-dir'));
    if (cmd === 'list') {
      if (rest.length > 0) throw new UsageError(`list takes no argument, found "${rest[0]}"`);
      const cards = await listTeachers(dir);
      if (v.json) out(JSON.stringify(cards, null, 2));
      else if (cards.length === 0) {
        out('No teacher imported: stage 1 (SAM distillation) is skipped by every plan.');
        out(
          'Import one with: npm run teacher -- import <sam_vit_b_01ec64.pth | medsam_vit_b.pth | mobile_sam.pt>',
        );
      } else
        for (const c of cards)
          out(`${c.id}\t${teacherSummary(c)}\t${gib(c.parameters)} parameters`);
      return EXIT_OK;
    }
    if (cmd === 'remove') {
      const id = rest[0];
      if (!id || rest.length > 1)
        throw new UsageError('remove takes one teacher id (see `npm run teacher -- list`)');
      if (!(await removeTeacher(dir, id))) {
        throw new UsageError(`no teacher ${id}; \`npm run teacher -- list\` shows the ids`);
      }
      out(`removed ${id}`);
      return EXIT_OK;
    }
    if (cmd === 'import') {
      const file = rest[0];
      if (!file || rest.length > 1) throw new UsageError('import takes one checkpoint file');
      const sizeText = str(v, 'size');
      const size = sizeText === undefined ? undefined : Number(sizeText);
      if (size !== undefined && !isTeacherInputSize(size)) {
        throw new UsageError(`--size: a multiple of 16 from 64 to 1024, found "${sizeText}"`);
      }
      const started = Date.now();
      const { card, existed } = await importSamCheckpoint(path.resolve(file), {
        dir,
        inputSize: size,
        variant: str(v, 'variant'),
        sourceName: str(v, 'source-name'),
        onProgress: (what) =>
          err(`[teacher] ${what} (${Math.round((Date.now() - started) / 1000)} s)`),
      });
      out(existed ? `already imported: ${card.id}` : `imported: ${card.id}`);
      out(`  ${teacherSummary(card)}`);
      out(`  ${gib(card.parameters)} parameters; embeddings [${card.embeddingShape.join(', ')}]`);
      out(
        `  use it: "teacher": "${card.id}" in a plan, or choose it in the viewer's new-task form`,
      );
      return EXIT_OK;
    }
    throw new UsageError(`unknown command "${cmd}": import, list or remove`);
  } catch (e) {
    if (e instanceof UsageError || e instanceof CheckpointError || e instanceof SamImportError) {
      err(`error: ${e.message}`);
      return EXIT_USAGE;
    }
    err(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return EXIT_FAILURE;
  }
}

if (isMain(import.meta.url, 'teacher')) {
  process.exit(await teacherCli(process.argv.slice(2)));
}
