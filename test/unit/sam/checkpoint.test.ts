/**
 * The torch.save reader (models/src/format/torchCheckpoint.ts) on files that PyTorch writes:
 * every dtype a state dict holds, strided views and nested dicts come back as PyTorch has them; a
 * pickle that names any other global is refused and never runs; the legacy (< 1.6) format reads
 * to the same tensors; truncated and foreign files give errors that say what they are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
  copyFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CheckpointError,
  readTorchCheckpoint,
  restrictedUnpickle,
} from '@rrl/models/format/torchCheckpoint.js';
import { python, writeEvilCheckpoint } from './torch.js';

const T = { timeout: 120_000 };

test(
  'reads float32/float16/bfloat16/float64/int64 tensors, views and nested dicts as PyTorch has them',
  T,
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    try {
      const file = join(dir, 'mixed.pth');
      const expected = JSON.parse(
        python(
          `
import json, sys, torch
g = torch.Generator().manual_seed(3)
base = torch.randn(4, 6, generator=g)
sd = {
  'model': {
    'f32': base,
    'f16': torch.randn(3, 5, generator=g).half(),
    'bf16': torch.randn(2, 7, generator=g).bfloat16(),
    'f64': torch.randn(5, generator=g).double(),
    'i64': torch.arange(6).reshape(2, 3) * 1000,
    'view': base[:, 1::2],
    'transposed': base.t(),
    'scalar': torch.tensor(2.5),
  },
  'epoch': 7,
}
torch.save(sd, sys.argv[1])
m = sd['model']
print(json.dumps({k: {'shape': list(v.shape), 'values': v.float().flatten().tolist()} for k, v in m.items()}))
`,
          [file],
        ),
      ) as Record<string, { shape: number[]; values: number[] }>;
      const ck = await readTorchCheckpoint(file);
      assert.equal(ck.scalars.get('epoch'), 7);
      for (const [k, want] of Object.entries(expected)) {
        const t = ck.tensors.get(`model.${k}`);
        assert.ok(t, `model.${k} missing`);
        assert.deepEqual(t.shape, want.shape, k);
        assert.equal(t.data.length, want.values.length, k);
        want.values.forEach((v, i) =>
          assert.ok(Math.abs(t.data[i]! - v) <= 1e-6 * Math.max(1, Math.abs(v)), `${k}[${i}]`),
        );
      }
      assert.equal(ck.tensors.get('model.f16')!.dtype, 'float16');
      assert.equal(ck.tensors.get('model.i64')!.data[5], 5000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('a checkpoint whose pickle names os.system is refused, and nothing runs', T, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
  try {
    const file = join(dir, 'evil.pth');
    const marker = join(dir, 'pwned');
    writeEvilCheckpoint(file, `touch ${marker}`);
    assert.ok(!existsSync(marker), 'saving must not have run it');
    await assert.rejects(readTorchCheckpoint(file), (e: unknown) => {
      assert.ok(e instanceof CheckpointError);
      assert.match(e.message, /refused: the checkpoint's pickle names posix\.system/);
      return true;
    });
    assert.ok(!existsSync(marker), 'the reader ran the pickle');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the unpickler refuses other globals and opcodes outside the binary protocols', T, () => {
  // protocol 2: GLOBAL builtins eval, then the call
  const evalPickle = Buffer.concat([
    Buffer.from([0x80, 0x02]),
    Buffer.from('cbuiltins\neval\n', 'latin1'),
    Buffer.from([0x58, 4, 0, 0, 0]),
    Buffer.from('1+1', 'latin1').subarray(0, 3),
    Buffer.from(' '),
    Buffer.from([0x85, 0x52, 0x2e]),
  ]);
  assert.throws(() => restrictedUnpickle(evalPickle), /names builtins\.eval/);
  // STACK_GLOBAL with subprocess.Popen (protocol 4)
  const popen = Buffer.concat([
    Buffer.from([0x80, 0x04, 0x8c, 10]),
    Buffer.from('subprocess', 'latin1'),
    Buffer.from([0x8c, 5]),
    Buffer.from('Popen', 'latin1'),
    Buffer.from([0x93, 0x2e]),
  ]);
  assert.throws(() => restrictedUnpickle(popen), /names subprocess\.Popen/);
  // protocol 0 text opcode INT
  assert.throws(
    () => restrictedUnpickle(Buffer.from('I1\n.', 'latin1')),
    /opcode 0x49 .* not allowed/,
  );
  // a truncated pickle
  assert.throws(() => restrictedUnpickle(Buffer.from([0x80, 0x02, 0x58, 9, 0, 0])), /ends early/);
});

test(
  'legacy files read; truncated, bare-pickle and foreign files give clear errors',
  T,
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
    try {
      const good = join(dir, 'good.pth');
      const legacy = join(dir, 'legacy.pth');
      const bare = join(dir, 'bare.pkl');
      python(
        `
import pickle, sys, torch
sd = {'w': torch.randn(64, 64)}
torch.save(sd, sys.argv[1])
torch.save(sd, sys.argv[2], _use_new_zipfile_serialization=False)
pickle.dump({'a': list(range(40))}, open(sys.argv[3], 'wb'), protocol=2)
`,
        [good, legacy, bare],
      );
      assert.equal((await readTorchCheckpoint(good)).tensors.get('w')!.shape.join(), '64,64');
      const cut = join(dir, 'cut.pth');
      copyFileSync(good, cut);
      truncateSync(cut, Math.floor(readFileSync(good).length / 2));
      await assert.rejects(readTorchCheckpoint(cut), /truncated/);
      // the legacy (PyTorch < 1.6) format reads to the same tensors
      const a = (await readTorchCheckpoint(good)).tensors.get('w')!;
      const l = await readTorchCheckpoint(legacy);
      assert.equal(l.formatVersion, 'legacy');
      assert.deepEqual(l.tensors.get('w')!.shape, a.shape);
      assert.deepEqual(l.tensors.get('w')!.data, a.data);
      const cutLegacy = join(dir, 'cut-legacy.pth');
      copyFileSync(legacy, cutLegacy);
      truncateSync(cutLegacy, readFileSync(legacy).length - 100);
      await assert.rejects(readTorchCheckpoint(cutLegacy), /truncated/);
      await assert.rejects(readTorchCheckpoint(bare), /bare pickle, not a torch\.save archive/);
      const onnx = join(dir, 'model.onnx');
      writeFileSync(
        onnx,
        Buffer.from([0x08, 0x08, 0x12, 0x04, 0x74, 0x65, 0x73, 0x74, ...new Array(40).fill(0)]),
      );
      await assert.rejects(readTorchCheckpoint(onnx), /not a PyTorch checkpoint/);
      await assert.rejects(
        readTorchCheckpoint(join(dir, 'missing.pth')),
        /cannot open the checkpoint \(ENOENT\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
