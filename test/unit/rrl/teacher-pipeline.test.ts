/**
 * Stage 1 with an imported teacher (a reduced SAM ViT written by torch.save, imported at 64 px):
 * the plan names it by id, the run records its variant, file, hash and size, its features land in
 * the teacher folder's cache (one file per volume), and a second run of another task reuses them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePlan } from '@rrl/models/rrl/plan.js';
import { runPipeline } from '@rrl/models/rrl/pipeline.js';
import type { PipelineState } from '@rrl/models/rrl/stages/types.js';
import type { RrlModelInfo } from '@rrl/models/rrl/export.js';
import { importSamCheckpoint, removeTeacher } from '@rrl/models/sam/store.js';
import { makeReference } from '../sam/torch.js';
import { texturedBlob } from './helpers.js';

const N = 16;
const tinyPlan = JSON.parse(
  readFileSync(new URL('../../../models/plans/tiny.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

const info: RrlModelInfo = {
  id: 'rrl-teacher-test@0.0.1',
  name: 'teacher test',
  version: '0.0.1',
  task: 'blob',
  modalities: ['MR'],
  intensity: { method: 'zscore' },
  labels: [1, 2].map((value) => ({
    value,
    name: `part ${value}`,
    color: [200, 100, 140] as [number, number, number],
    category: { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' },
    type: { value: '5976005', scheme: 'SCT', meaning: 'Hippocampus' },
  })),
  provenance: { createdAt: '2026-12-07T00:00:00Z', trainer: 'teacher pipeline test' },
  changelog: [{ version: '0.0.1', date: '2026-12-07', changes: 'test' }],
};

test(
  'stage 1 distils from an imported teacher by id and caches its features per volume',
  { timeout: 600_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rrl-teacher-'));
    try {
      const ref = makeReference('tiny-vit-b', 64, join(dir, 'ref'), { name: 'medsam_vit_b.pth' });
      const teachersDir = join(dir, 'teachers');
      const { card } = await importSamCheckpoint(join(ref.dir, 'medsam_vit_b.pth'), {
        dir: teachersDir,
        inputSize: 64,
      });
      const plan = parsePlan({
        ...tinyPlan,
        teacher: card.id,
        selfTraining: undefined,
        schedule: {
          ...(tinyPlan.schedule as object),
          mutual: { steps: 4, lr: 0.01 },
          decoder: { steps: 4, lr: 0.01 },
        },
      });
      const blob = texturedBlob([N, N, N], [7, 7, 7]);
      const unlabeled = [
        [9, 7, 8],
        [5, 7, 6],
      ].map((c, k) => ({
        id: `case ${k}`,
        image: texturedBlob([N, N, N], c as [number, number, number]).image,
      }));
      const lines: string[] = [];
      const run = (outDir: string): ReturnType<typeof runPipeline> =>
        runPipeline({
          plan,
          outDir,
          atlas: { image: blob.image, labels: blob.halves },
          unlabeled,
          info,
          provider: 'cpu',
          teachersDir,
          log: (l) => lines.push(l),
        });
      const first = await run(join(dir, 'run1'));
      const s1 = first.stages.find((s) => s.stage === 'distill-sam')!;
      assert.equal(s1.skipped, undefined);
      assert.equal(s1.steps, 12);
      assert.ok(s1.lastLoss! < s1.firstLoss!, `distillation loss ${s1.firstLoss} → ${s1.lastLoss}`);
      const state = JSON.parse(
        readFileSync(join(dir, 'run1', 'state.json'), 'utf8'),
      ) as PipelineState;
      assert.match(
        state.teacher ?? '',
        new RegExp(
          `^MedSAM ViT \\(width 64, depth 4\\) \\(medsam_vit_b\\.pth, sha256 ${card.sha256.slice(0, 12)}…, 64 px`,
        ),
      );
      assert.ok(
        state.notices.some((n) =>
          /^Stage 1 distilled from MedSAM ViT .*accuracy a real SAM teacher adds was not measured/.test(
            n,
          ),
        ),
        state.notices.join('\n'),
      );
      assert.ok(!state.notices.some((n) => /^No teacher/.test(n)));
      const cache = join(teachersDir, 'features', `${card.sha256.slice(0, 16)}-64`);
      assert.equal(
        readdirSync(cache).filter((f) => f.endsWith('.f32')).length,
        1 + unlabeled.length,
      );
      assert.ok(
        lines.some((l) => /teacher features 3\/3 \([\d.]+ s per slice, about \d+ s left\)/.test(l)),
        lines.join('\n'),
      );
      lines.length = 0;
      await run(join(dir, 'run2'));
      assert.ok(
        lines.some((l) => /teacher features of 3\/3 volumes found in the cache/.test(l)),
        lines.join('\n'),
      );
      assert.ok(
        !lines.some((l) => /teacher features \d+\/\d+ \(/.test(l)),
        'no volume computed again',
      );
      // removing the teacher removes its cached features
      assert.equal(await removeTeacher(teachersDir, card.id), true);
      assert.ok(!existsSync(cache));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
