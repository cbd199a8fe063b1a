import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { device } from "../helpers.js";

test("tidy frees everything made inside except what it returns", () => {
  const before = torch.memory();
  const kept = torch.tidy(() => {
    const a = torch.randn([64, 64], { device });
    const b = a.matmul(a).relu().sum(0);
    return { b, list: [b.mul(2)] };
  });
  const after = torch.memory();
  assert.equal(after.count, before.count + 2);
  torch.dispose(kept);
  assert.deepEqual(torch.memory(), before);
});

test("nested tidy hands returned tensors to the outer scope; keep exempts a tensor", () => {
  const before = torch.memory().count;
  let escaped: torch.Tensor | undefined;
  torch.tidy(() => {
    const inner = torch.tidy(() => torch.ones([3]).add(1));
    escaped = torch.keep(torch.zeros([2]));
    assert.equal(inner.isDisposed, false);
    inner.mul(2);
  });
  assert.equal(torch.memory().count, before + 1);
  assert.equal(escaped!.isDisposed, false);
  escaped!.dispose();
  assert.equal(torch.memory().count, before);
});

test("tidy disposes its tensors when the function throws, and refuses async functions", () => {
  const before = torch.memory().count;
  assert.throws(
    () =>
      torch.tidy(() => {
        torch.ones([1000]);
        throw new Error("boom");
      }),
    /boom/,
  );
  assert.equal(torch.memory().count, before);
  assert.throws(() => torch.tidy(() => Promise.resolve(1) as never), /synchronous/);
});

test("live bytes count shared storage once and drop after dispose", () => {
  const before = torch.memory();
  const a = torch.zeros([256], { dtype: "float32" });
  const v = a.view(16, 16);
  const now = torch.memory();
  assert.equal(now.count, before.count + 2);
  assert.equal(now.bytes, before.bytes + 1024);
  a.dispose();
  v.dispose();
  assert.deepEqual(torch.memory(), before);
  assert.throws(() => a.add(1), /used after dispose/);
  assert.equal(a.isDisposed, true);
  a.dispose(); // twice is harmless
});

test("a training-like loop keeps the live tensor count flat", () => {
  const w = torch.randn([8, 8], { device }).requiresGrad_();
  const step = () =>
    torch.tidy(() => {
      const loss = torch.randn([4, 8], { device }).matmul(w).square().mean();
      loss.backward();
      torch.noGrad(() => w.sub_(w.grad!.mul(0.01)));
      w.grad = null;
      return loss.item();
    });
  step();
  const before = torch.memory().count;
  for (let i = 0; i < 20; i++) step();
  assert.equal(torch.memory().count, before);
});

test("cuda.index reads a device string's index, 0 when it names none", () => {
  assert.deepEqual(
    ["cuda", "cuda:0", "cuda:3"].map((d) => torch.cuda.index(d)),
    [0, 0, 3],
  );
});
