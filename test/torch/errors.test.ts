import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";

test("a shape mismatch throws an Error naming the op and both shapes", () => {
  assert.throws(
    () => torch.ones([2, 3]).add(torch.ones([2, 4])),
    (e: Error) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /^add: /);
      assert.match(e.message, /\[2, 3\], \[2, 4\]/);
      return true;
    },
  );
  assert.throws(() => torch.ones([2, 3]).matmul(torch.ones([2, 4])), /matmul: .*\(2x3 and 2x4\).*\[2, 3\], \[2, 4\]/);
  assert.throws(() => torch.cat([torch.ones([2, 3]), torch.ones([3, 4])], 0), /cat: .*\[2, 3\], \[3, 4\]/);
  assert.throws(() => torch.ones([6]).view(4, 2), /view: .*shape '\[4, 2\]' is invalid/);
});

test("libtorch errors never abort the process", () => {
  assert.throws(() => torch.ones([2, 2]).select(0, 5), /select: .*index 5/);
  assert.throws(() => torch.ones([2]).indexSelect(0, torch.tensor([7], { dtype: "int64" })), /indexSelect: /);
  assert.throws(() => torch.svd(torch.ones([2])), /svd: /);
  assert.throws(() => torch.ones([2]).to("cuda:7"), /to: /);
  assert.throws(() => torch.ones([3]).to("tpu"), /to: /);
  assert.throws(() => torch.embedding(torch.ones([3, 2]), torch.tensor([5], { dtype: "int64" })), /embedding: .*out of range/i);
  assert.throws(() => torch.ones([2, 2]).to({ dtype: "nope" as torch.DType }), /unknown dtype 'nope'/);
  // The process is still healthy.
  assert.equal(torch.ones([2]).sum().item(), 2);
});

test("wrong argument types are reported as TypeErrors", () => {
  const fake = { handle: 5 } as unknown as torch.Tensor;
  assert.throws(
    () => torch.cat([fake], 0),
    (e: Error) => e instanceof TypeError && /argument 0 must be an array of tensors/.test(e.message),
  );
  assert.throws(() => torch.zeros("3" as never), /argument 0 must be an array of integers/);
});
