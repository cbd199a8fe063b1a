import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { assertClose, device, values } from "../helpers.js";

const T = (data: torch.NestedArray, dtype?: torch.DType) => torch.tensor(data, { device, dtype });

test("views: reshape, transpose, permute, narrow, slice, select", () => {
  const a = torch.arange(0, 6, 1, { device }).reshape(2, 3);
  assert.deepEqual(a.toArray(), [
    [0, 1, 2],
    [3, 4, 5],
  ]);
  assert.deepEqual(a.view([3, 2]).toArray(), [
    [0, 1],
    [2, 3],
    [4, 5],
  ]);
  assert.deepEqual(a.transpose(0, 1).toArray(), [
    [0, 3],
    [1, 4],
    [2, 5],
  ]);
  assert.equal(a.T.isContiguous(), false);
  assert.equal(a.T.contiguous().isContiguous(), true);
  assert.deepEqual(torch.arange(0, 24, 1, { device }).reshape(2, 3, 4).permute(2, 0, 1).shape, [4, 2, 3]);
  assert.deepEqual(a.narrow(1, 1, 2).toArray(), [
    [1, 2],
    [4, 5],
  ]);
  assert.deepEqual(a.slice(1, 0, 3, 2).toArray(), [
    [0, 2],
    [3, 5],
  ]);
  assert.deepEqual(a.slice(0, 1).toArray(), [[3, 4, 5]]);
  assert.deepEqual(a.select(0, 1).toArray(), [3, 4, 5]);
  assert.deepEqual(a.flatten().toArray(), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(a.flip(1).toArray(), [
    [2, 1, 0],
    [5, 4, 3],
  ]);
});

test("indexing: indexSelect, gather, maskedFill, where, topk, sort", () => {
  const a = T([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.deepEqual(a.indexSelect(1, T([2, 0], "int64")).toArray(), [
    [3, 1],
    [6, 4],
  ]);
  assert.deepEqual(
    a
      .gather(
        1,
        T(
          [
            [0, 0],
            [2, 1],
          ],
          "int64",
        ),
      )
      .toArray(),
    [
      [1, 1],
      [6, 5],
    ],
  );
  const mask = T([
    [true, false, false],
    [false, false, true],
  ]);
  assert.deepEqual(a.maskedFill(mask, -1).toArray(), [
    [-1, 2, 3],
    [4, 5, -1],
  ]);
  assert.deepEqual(torch.where(mask, a, 0).toArray(), [
    [1, 0, 0],
    [0, 0, 6],
  ]);
  assert.deepEqual(torch.where(mask, 9, a).toArray(), [
    [9, 2, 3],
    [4, 5, 9],
  ]);
  const [v, i] = T([3, 1, 4, 1, 5]).topk(2);
  assert.deepEqual(v.toArray(), [5, 4]);
  assert.deepEqual(i.toArray(), [4, 2]);
  assert.deepEqual(T([3, 1, 2]).sort()[0].toArray(), [1, 2, 3]);
});

test("joining and splitting: cat, stack, split, chunk, unsqueeze, squeeze, expand, repeat", () => {
  const a = T([[1, 2]]);
  const b = T([[3, 4]]);
  assert.deepEqual(torch.cat([a, b], 0).toArray(), [
    [1, 2],
    [3, 4],
  ]);
  assert.deepEqual(torch.cat([a, b], 1).toArray(), [[1, 2, 3, 4]]);
  assert.deepEqual(torch.stack([a, b], 0).shape, [2, 1, 2]);
  const r = T([1, 2, 3, 4, 5]);
  assert.deepEqual(
    r.split(2).map((t) => t.toArray()),
    [[1, 2], [3, 4], [5]],
  );
  assert.deepEqual(
    r.split([1, 4]).map((t) => t.toArray()),
    [[1], [2, 3, 4, 5]],
  );
  assert.deepEqual(
    r.chunk(2).map((t) => t.toArray()),
    [
      [1, 2, 3],
      [4, 5],
    ],
  );
  assert.deepEqual(r.unsqueeze(0).shape, [1, 5]);
  assert.deepEqual(r.unsqueeze(1).unsqueeze(0).squeeze().shape, [5]);
  assert.deepEqual(a.squeeze(0).shape, [2]);
  assert.deepEqual(a.expand(3, 2).toArray(), [
    [1, 2],
    [1, 2],
    [1, 2],
  ]);
  assert.deepEqual(a.repeat(1, 2).toArray(), [[1, 2, 1, 2]]);
  assert.deepEqual(
    T([[1], [2]])
      .repeatInterleave(2, 0)
      .toArray(),
    [[1], [1], [2], [2]],
  );
  assert.deepEqual(
    T([
      [1, 1],
      [1, 1],
    ])
      .tril()
      .toArray(),
    [
      [1, 0],
      [1, 1],
    ],
  );
  assert.deepEqual(
    T([
      [1, 1],
      [1, 1],
    ])
      .triu(1)
      .toArray(),
    [
      [0, 1],
      [0, 0],
    ],
  );
});

test("pointwise math broadcasts and takes numbers on the right", () => {
  const a = T([
    [1, 2],
    [3, 4],
  ]);
  const row = T([10, 20]);
  assert.deepEqual(a.add(row).toArray(), [
    [11, 22],
    [13, 24],
  ]);
  assert.deepEqual(a.add(row, 2).toArray(), [
    [21, 42],
    [23, 44],
  ]);
  assert.deepEqual(a.sub(1).toArray(), [
    [0, 1],
    [2, 3],
  ]);
  assert.deepEqual(a.rsub(1).toArray(), [
    [0, -1],
    [-2, -3],
  ]);
  assert.deepEqual(a.mul(row.unsqueeze(1)).toArray(), [
    [10, 20],
    [60, 80],
  ]);
  assert.deepEqual(a.div(2).toArray(), [
    [0.5, 1],
    [1.5, 2],
  ]);
  assert.deepEqual(a.pow(2).toArray(), [
    [1, 4],
    [9, 16],
  ]);
  assert.deepEqual(a.remainder(3).toArray(), [
    [1, 2],
    [0, 1],
  ]);
  assert.deepEqual(a.maximum(2.5).toArray(), [
    [2.5, 2.5],
    [3, 4],
  ]);
  assert.deepEqual(a.minimum(T([2, 2])).toArray(), [
    [1, 2],
    [2, 2],
  ]);
  assert.deepEqual(a.gt(2).toArray(), [
    [false, false],
    [true, true],
  ]);
  assert.deepEqual(a.eq(T([1, 4])).toArray(), [
    [true, false],
    [false, true],
  ]);
  assert.deepEqual(a.ge(2).logicalAnd(a.le(3)).toArray(), [
    [false, true],
    [true, false],
  ]);
  assert.deepEqual(a.neg().abs().toArray(), a.toArray());
  assert.deepEqual(a.clamp(2, 3).toArray(), [
    [2, 2],
    [3, 3],
  ]);
  assert.deepEqual(a.clamp(null, 2).toArray(), [
    [1, 2],
    [2, 2],
  ]);
  assert.deepEqual(T([-2, 0, 3]).sign().toArray(), [-1, 0, 1]);
  assert.deepEqual(T([1, 4, 9]).sqrt().toArray(), [1, 2, 3]);
  assert.deepEqual(T([1, 4]).rsqrt().toArray(), [1, 0.5]);
  assert.deepEqual(
    T([1, 0, 1])
      .div(T([0, 0, 1]))
      .isfinite()
      .toArray(),
    [false, false, true],
  );
  // Integer tensors stay integral with whole-number scalars.
  assert.equal(T([1, 2], "int64").add(1).dtype, "int64");
});

test("transcendental functions match Math", () => {
  const xs = [-2, -0.5, 0, 0.7, 3];
  const x = T(xs);
  assertClose(values(x.exp()), xs.map(Math.exp), 1e-5, 1e-5, "exp");
  assertClose(
    values(x.abs().add(1).log()),
    xs.map((v) => Math.log(Math.abs(v) + 1)),
    1e-6,
    1e-6,
    "log",
  );
  assertClose(values(x.sin()), xs.map(Math.sin), 1e-6, 1e-6, "sin");
  assertClose(values(x.cos()), xs.map(Math.cos), 1e-6, 1e-6, "cos");
  assertClose(values(x.tanh()), xs.map(Math.tanh), 1e-6, 1e-6, "tanh");
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  assertClose(values(x.sigmoid()), xs.map(sig), 1e-6, 1e-6, "sigmoid");
  assertClose(
    values(x.silu()),
    xs.map((v) => v * sig(v)),
    1e-6,
    1e-6,
    "silu",
  );
  assertClose(
    values(x.relu()),
    xs.map((v) => Math.max(0, v)),
    1e-6,
    1e-6,
    "relu",
  );
  assertClose(
    values(x.square()),
    xs.map((v) => v * v),
    1e-6,
    1e-6,
    "square",
  );
});

test("foreachNorm gives each tensor's 2-norm, as norm() does one at a time, stacked; foreachMul_ scales them all in place", () => {
  const ts = [
    T([3, 4]),
    T([
      [1, 2],
      [2, 4],
    ]),
    torch.zeros([0]),
  ];
  const norms = torch.foreachNorm(ts);
  assert.deepEqual(norms.shape, [3]);
  assert.deepEqual(
    norms.toArray(),
    ts.map((t) => t.norm().item()),
  );
  assert.deepEqual(norms.toArray(), [5, 5, 0]);
  torch.foreachMul_(ts, T(0.5));
  assert.deepEqual(
    ts.map((t) => t.toArray()),
    [
      [1.5, 2],
      [
        [0.5, 1],
        [1, 2],
      ],
      [],
    ],
  );
});

test("reductions over all elements and over dims", () => {
  const a = T([
    [1, 5, 3],
    [4, 2, 6],
  ]);
  assert.equal(a.sum().item(), 21);
  assert.deepEqual(a.sum(0).toArray(), [5, 7, 9]);
  assert.deepEqual(a.sum(1, true).toArray(), [[9], [12]]);
  assert.deepEqual(a.sum([0, 1]).toArray(), 21);
  assert.equal(a.mean().item(), 3.5);
  assert.deepEqual(a.mean(1).toArray(), [3, 4]);
  assert.equal(a.max().item(), 6);
  assert.equal(a.min().item(), 1);
  const [mv, mi] = a.maxDim(1);
  assert.deepEqual(mv.toArray(), [5, 6]);
  assert.deepEqual(mi.toArray(), [1, 2]);
  assert.deepEqual(a.minDim(0)[0].toArray(), [1, 2, 3]);
  assert.equal(a.argmax().item(), 5);
  assert.deepEqual(a.argmax(0).toArray(), [1, 0, 1]);
  assertClose([a.norm().item()], [Math.sqrt(1 + 25 + 9 + 16 + 4 + 36)], 1e-5);
  assertClose(values(a.norm(2, 1)), [Math.sqrt(35), Math.sqrt(56)], 1e-5);
  assertClose(values(a.norm(1, 0)), [5, 7, 9], 1e-6);
  assertClose(
    values(a.logsumexp(1)),
    [Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)), Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6))],
    1e-5,
  );
  assert.deepEqual(T([1, 2, 3]).cumsum(0).toArray(), [1, 3, 6]);
});

test("in-place ops change the tensor and return it", () => {
  const a = T([1, 2, 3]);
  assert.equal(a.add_(1), a);
  assert.deepEqual(a.toArray(), [2, 3, 4]);
  a.mul_(T([1, 0, 2])).sub_(1);
  assert.deepEqual(a.toArray(), [1, -1, 7]);
  a.div_(2);
  assert.deepEqual(a.toArray(), [0.5, -0.5, 3.5]);
  a.addcmul_(T([1, 1, 1]), T([2, 2, 2]), 0.5);
  assert.deepEqual(a.toArray(), [1.5, 0.5, 4.5]);
  a.addcdiv_(T([1, 1, 1]), T([2, 2, 2]), 2);
  assert.deepEqual(a.toArray(), [2.5, 1.5, 5.5]);
  a.lerp_(T([0.5, 0.5, 0.5]), 0.5);
  assert.deepEqual(a.toArray(), [1.5, 1, 3]);
  a.copy_(T([7, 8, 9]));
  assert.deepEqual(a.toArray(), [7, 8, 9]);
  assert.deepEqual(a.fill_(4).toArray(), [4, 4, 4]);
  assert.deepEqual(a.zero_().toArray(), [0, 0, 0]);
});
