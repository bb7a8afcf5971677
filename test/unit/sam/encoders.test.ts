/**
 * The SAM image encoders imported from torch.save checkpoints give PyTorch's embeddings on the
 * same weights (our own PyTorch reference, scripts/sam/reference.py, randomly initialised with a
 * seed — position embeddings and relative-position tables included): reduced ViT configurations
 * (windowed + global attention, window padding, position embeddings and relative-position tables
 * resized for 256 and 512 pixels) and a reduced MobileSAM TinyViT (BatchNorm with running
 * statistics, grouped convolutions, offset biases). The full ViT-B runs in `npm run bench:teacher`.
 * Through the teacher store: import → card → loadTeacher by id → embeddings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { importSamCheckpoint, listTeachers, removeTeacher } from '@rrl/models/sam/store.js';
import { SamImportError } from '@rrl/models/sam/weights.js';
import { loadTeacher } from '@rrl/models/rrl/teacher.js';
import { makeReference, maxErrors, python } from './torch.js';

const T = { timeout: 300_000 };

const cases = [
  {
    variant: 'tiny-vit-b',
    size: 256,
    name: 'medsam_vit_b.pth',
    family: 'vit',
    label: /^MedSAM ViT \(width 64, depth 4\)$/,
  },
  {
    variant: 'tiny-vit-b-w5',
    size: 512,
    name: 'sam_vit_custom.pth',
    family: 'vit',
    label: /^SAM ViT \(width 48, depth 3\)$/,
  },
  {
    variant: 'tiny-mobile-sam',
    size: 256,
    name: 'mobile_sam.pt',
    family: 'tiny-vit',
    label: /^MobileSAM TinyViT$/,
  },
] as const;

for (const c of cases) {
  test(
    `${c.variant} at ${c.size} px: the imported encoder equals PyTorch (fp32, ≤ 1e-3 relative)`,
    T,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sam-enc-'));
      try {
        const ref = makeReference(c.variant, c.size, join(dir, 'ref'), { name: c.name });
        const teachers = join(dir, 'teachers');
        const { card, existed } = await importSamCheckpoint(join(ref.dir, c.name), {
          dir: teachers,
          inputSize: c.size,
          // exercise the external-data path of the big encoders on a small one
          ...(c.variant === 'tiny-vit-b-w5' ? { externalDataBytes: 1 } : {}),
        });
        assert.equal(existed, false);
        assert.equal(card.family, c.family);
        assert.match(card.variant, c.label);
        assert.equal(card.inputSize, c.size);
        assert.deepEqual(card.embeddingShape, [256, c.size / 16, c.size / 16]);
        assert.equal(card.sha256.length, 64);
        const t = await loadTeacher(card.id, {}, { teachersDir: teachers });
        try {
          assert.equal(t.inputSize, c.size);
          assert.match(
            t.description,
            new RegExp(`${c.name.replace('.', '\\.')}, sha256 ${card.sha256.slice(0, 12)}`),
          );
          const r = await t.session.run({
            [t.inputName]: new ort.Tensor('float32', ref.image, ref.imageShape),
          });
          const out = r[t.outputName]!;
          assert.deepEqual(out.dims, ref.embeddingShape);
          const { maxAbs, maxRef } = maxErrors(out.data as Float32Array, ref.embeddings);
          console.log(
            `${c.variant} ${c.size}px: max abs error ${maxAbs.toExponential(2)} (max |ref| ${maxRef.toFixed(3)}, relative ${(maxAbs / maxRef).toExponential(2)})`,
          );
          assert.ok(maxRef > 0.1, 'the reference embeddings are not trivial');
          assert.ok(maxAbs <= 1e-3 * maxRef, `max abs error ${maxAbs} > 1e-3 × ${maxRef}`);
        } finally {
          await t.session.release();
        }
        // the same file at the same size is found, not converted again
        assert.equal(
          (await importSamCheckpoint(join(ref.dir, c.name), { dir: teachers, inputSize: c.size }))
            .existed,
          true,
        );
        assert.equal((await listTeachers(teachers)).length, 1);
        assert.equal(await removeTeacher(teachers, card.id), true);
        assert.equal((await listTeachers(teachers)).length, 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}

test(
  'a training checkpoint that wraps the state dict ("model.") imports; one without an encoder says so',
  T,
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sam-enc-'));
    try {
      const ref = makeReference('tiny-vit-b', 128, join(dir, 'ref'));
      const wrapped = join(dir, 'medsam_training.pth');
      const other = join(dir, 'unet.pth');
      python(
        `
import sys, torch
sd = torch.load(sys.argv[1])
torch.save({'model': sd, 'optimizer': {'lr': 0.001}, 'epoch': 12}, sys.argv[2])
torch.save({'encoder.conv.weight': torch.zeros(4, 1, 3, 3)}, sys.argv[3])
`,
        [join(ref.dir, 'checkpoint.pth'), wrapped, other],
      );
      const { card } = await importSamCheckpoint(wrapped, { dir: join(dir, 't'), inputSize: 128 });
      assert.equal(card.keyPrefix, 'model.');
      assert.match(card.variant, /^MedSAM ViT/);
      await assert.rejects(importSamCheckpoint(other, { dir: join(dir, 't') }), (e: unknown) => {
        assert.ok(e instanceof SamImportError);
        assert.match(e.message, /no SAM image encoder in this checkpoint .* encoder\.conv\.weight/);
        return true;
      });
      await assert.rejects(
        importSamCheckpoint(wrapped, { dir: join(dir, 't'), inputSize: 100 }),
        /multiple of 16/,
      );
      assert.equal(
        JSON.parse(readFileSync(join(dir, 't', card.id, 'teacher.json'), 'utf8')).id,
        card.id,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
