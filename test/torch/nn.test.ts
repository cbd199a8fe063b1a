import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { assertClose, device, values } from "../helpers.js";

const T = (data: torch.NestedArray, dtype?: torch.DType) => torch.tensor(data, { device, dtype });

test("matmul, mm, bmm and linear", () => {
  const a = T([
    [1, 2],
    [3, 4],
  ]);
  const b = T([
    [5, 6],
    [7, 8],
  ]);
  assert.deepEqual(a.matmul(b).toArray(), [
    [19, 22],
    [43, 50],
  ]);
  assert.deepEqual(a.mm(b).toArray(), [
    [19, 22],
    [43, 50],
  ]);
  assert.deepEqual(
    torch
      .stack([a, b])
      .bmm(torch.stack([b, a]))
      .toArray(),
    [
      [
        [19, 22],
        [43, 50],
      ],
      [
        [23, 34],
        [31, 46],
      ],
    ],
  );
  // linear(x, W, b) = x Wᵀ + b
  assert.deepEqual(torch.linear(T([[1, 1]]), a, T([10, 20])).toArray(), [[13, 27]]);
  assert.deepEqual(torch.linear(T([[1, 1]]), a).toArray(), [[3, 7]]);
});

test("softmax, logSoftmax and embedding", () => {
  const x = T([[1, 2, 3]]);
  const e = [1, 2, 3].map(Math.exp);
  const z = e.reduce((s, v) => s + v, 0);
  assertClose(
    values(x.softmax(-1)),
    e.map((v) => v / z),
    1e-6,
  );
  assertClose(
    values(x.logSoftmax(-1)),
    e.map((v) => Math.log(v / z)),
    1e-6,
  );
  const w = T([
    [0, 0],
    [1, 1],
    [2, 2],
  ]);
  assert.deepEqual(torch.embedding(w, T([[2, 0]], "int64")).toArray(), [
    [
      [2, 2],
      [0, 0],
    ],
  ]);
});

test("crossEntropy matches the hand-computed value and honours ignoreIndex", () => {
  const logits = [
    [2, 0, -1],
    [0.5, 0.5, 3],
    [1, 1, 1],
  ];
  const targets = [0, 2, -100];
  const nll = (row: number[], t: number) => Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[t];
  const l0 = nll(logits[0], 0);
  const l1 = nll(logits[1], 2);
  const ce = (reduction: "mean" | "sum" | "none") => torch.crossEntropy(T(logits), T(targets, "int64"), { reduction });
  assertClose([ce("mean").item()], [(l0 + l1) / 2], 1e-6);
  assertClose([ce("sum").item()], [l0 + l1], 1e-6);
  assertClose(values(ce("none")), [l0, l1, 0], 1e-6);
  const other = torch.crossEntropy(T(logits), T([0, 2, 1], "int64"), { ignoreIndex: 1 });
  assertClose([other.item()], [(l0 + l1) / 2], 1e-6);
});

// Attention computed with plain loops, the way the maths is written.
function referenceAttention(q: number[][][][], k: number[][][][], v: number[][][][], causal: boolean): number[] {
  const out: number[] = [];
  const [B, H, L, D] = [q.length, q[0].length, q[0][0].length, q[0][0][0].length];
  const Hkv = k[0].length;
  const S = k[0][0].length;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / Hkv));
      for (let i = 0; i < L; i++) {
        const scores = [];
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[b][h][i][d] * k[b][kh][j][d];
          scores.push(causal && j > i ? -Infinity : s / Math.sqrt(D));
        }
        const m = Math.max(...scores);
        const p = scores.map((s) => Math.exp(s - m));
        const z = p.reduce((a, c) => a + c, 0);
        for (let d = 0; d < D; d++) out.push(p.reduce((a, pj, j) => a + (pj / z) * v[b][kh][j][d], 0));
      }
    }
  return out;
}

test("scaled dot-product attention, causal and grouped-query, matches the plain formula", () => {
  torch.manualSeed(7);
  const q = torch.randn([2, 4, 5, 8], { device, dtype: "float64" });
  const k = torch.randn([2, 2, 5, 8], { device, dtype: "float64" });
  const v = torch.randn([2, 2, 5, 8], { device, dtype: "float64" });
  for (const causal of [false, true]) {
    const got = torch.scaledDotProductAttention(q, k, v, { causal });
    assert.deepEqual(got.shape, [2, 4, 5, 8]);
    const expected = referenceAttention(q.toArray() as never, k.toArray() as never, v.toArray() as never, causal);
    assertClose(values(got), expected, 1e-10, 1e-8, causal ? "causal" : "full");
  }
  // A boolean mask equal to the causal pattern gives the causal result.
  const keep = torch.ones([5, 5], { device, dtype: "bool" }).tril();
  const masked = torch.scaledDotProductAttention(q, k.repeatInterleave(2, 1), v.repeatInterleave(2, 1), { mask: keep });
  assertClose(values(masked), values(torch.scaledDotProductAttention(q, k, v, { causal: true })), 1e-10, 1e-8, "mask");
});

test("dropout keeps the expectation in training and is the identity otherwise", () => {
  const x = torch.ones([10000], { device });
  assert.deepEqual(values(torch.dropout(x, 0.5, false)), values(x));
  const d = values(torch.dropout(x, 0.5, true));
  assert.ok(d.every((v) => v === 0 || v === 2));
  const mean = d.reduce((s: number, v) => s + v, 0) / d.length;
  assert.ok(Math.abs(mean - 1) < 0.05, `mean ${mean}`);
});
