import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { assertClose, device, values } from "../helpers.js";

test("filled tensors, ranges and identity have the right values", () => {
  assert.deepEqual(torch.zeros([2, 3], { device }).toArray(), [
    [0, 0, 0],
    [0, 0, 0],
  ]);
  assert.deepEqual(torch.ones([2], { device, dtype: "int32" }).toArray(), [1, 1]);
  assert.deepEqual(torch.full([2, 2], 7.5, { device }).toArray(), [
    [7.5, 7.5],
    [7.5, 7.5],
  ]);
  assert.deepEqual(torch.arange(5, undefined, 1, { device }).toArray(), [0, 1, 2, 3, 4]);
  assert.equal(torch.arange(5).dtype, "int64");
  assert.deepEqual(torch.arange(1, 2, 0.25, { dtype: "float32", device }).toArray(), [1, 1.25, 1.5, 1.75]);
  assert.deepEqual(torch.eye(2, 3, { device }).toArray(), [
    [1, 0, 0],
    [0, 1, 0],
  ]);
});

test("every dtype round-trips through JS arrays", () => {
  for (const dtype of ["float32", "float64", "int64", "int32", "uint8"] as const) {
    const t = torch.tensor(
      [
        [1, 2, 3],
        [4, 5, 250],
      ],
      { dtype, device },
    );
    assert.equal(t.dtype, dtype);
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual(t.toArray(), [
      [1, 2, 3],
      [4, 5, 250],
    ]);
  }
  // Half types keep small integers and halves exactly.
  for (const dtype of ["float16", "bfloat16"] as const) {
    const t = torch.tensor([0.5, -2, 3], { dtype, device });
    assert.equal(t.dtype, dtype);
    assert.deepEqual(t.toArray(), [0.5, -2, 3]);
  }
  const b = torch.tensor([true, false, true], { device });
  assert.equal(b.dtype, "bool");
  assert.deepEqual(b.toArray(), [true, false, true]);
  assert.equal(torch.tensor(3.5).item(), 3.5);
  assert.equal(torch.tensor([[7]], { dtype: "int64" }).item(), 7);
});

test("typed arrays and raw bytes map to tensors without conversion", () => {
  const f = torch.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
  assert.deepEqual(f.toArray(), [
    [1, 2, 3],
    [4, 5, 6],
  ]);
  const i = torch.tensor(new BigInt64Array([1n, -2n, 2n ** 40n]));
  assert.equal(i.dtype, "int64");
  assert.deepEqual(Array.from(i.data() as BigInt64Array), [1n, -2n, 2n ** 40n]);
  const bytes = f.bytes();
  assert.equal(bytes.length, 24);
  assert.equal(bytes.readFloatLE(4), 2);
  assert.deepEqual(torch.fromBytes(bytes, [3, 2], "float32").toArray(), [
    [1, 2],
    [3, 4],
    [5, 6],
  ]);
  assert.throws(() => torch.fromBytes(new Uint8Array(5), [2], "float32"), /5 bytes given, shape and dtype need 8/);
  assert.throws(() => torch.tensor([[1, 2], [3]]), /do not fill shape/);
});

test("conversions between dtypes and devices", () => {
  const t = torch.tensor([1.7, -2.2], { device });
  assert.deepEqual(t.to("int64").toArray(), [1, -2]);
  assert.equal(t.to("float64").dtype, "float64");
  assert.equal(t.cpu().device, "cpu");
  assert.ok(t.device.startsWith(device));
  const c = t.to({ dtype: "bfloat16", copy: true });
  assert.equal(c.dtype, "bfloat16");
  assertClose(values(c), [1.7, -2.2], 0.02);
});

test("random tensors are reproducible under manualSeed and have the right statistics", () => {
  torch.manualSeed(1234);
  const a = values(torch.randn([1000], { device }));
  torch.manualSeed(1234);
  const b = values(torch.randn([1000], { device }));
  assert.deepEqual(a, b);
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  const variance = a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length;
  assert.ok(Math.abs(mean) < 0.15 && Math.abs(variance - 1) < 0.2, `mean ${mean}, variance ${variance}`);
  const u = values(torch.rand([1000], { device }));
  assert.ok(u.every((x) => x >= 0 && x < 1));
  const r = values(torch.randint(3, 7, [200], { device }));
  assert.ok(r.every((x) => Number.isInteger(x) && x >= 3 && x < 7));
  assert.deepEqual(values(torch.randperm(6, { device })).sort(), [0, 1, 2, 3, 4, 5]);
  const w = torch.empty([500], { device }).uniform_(-0.5, 0.5);
  assert.ok(values(w).every((x) => x >= -0.5 && x <= 0.5));
});

test("the CPU generator state can be saved and restored", () => {
  const state = torch.getRngState();
  const a = values(torch.randn([5]));
  torch.setRngState(state);
  assert.deepEqual(values(torch.randn([5])), a);
});
