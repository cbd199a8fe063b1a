import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { assertClose, device, values } from "../helpers.js";

test("svd of a known matrix gives its singular values", () => {
  // diag(3, 2) rotated: singular values 3 and 2.
  const c = Math.cos(0.3),
    s = Math.sin(0.3);
  const A = torch.tensor(
    [
      [3 * c, -2 * s],
      [3 * s, 2 * c],
      [0, 0],
    ],
    { device, dtype: "float64" },
  );
  const { U, S, Vh } = torch.svd(A);
  assert.deepEqual(U.shape, [3, 2]);
  assert.deepEqual(Vh.shape, [2, 2]);
  assertClose(values(S), [3, 2], 1e-12);
  assertClose(values(torch.svdvals(A)), [3, 2], 1e-12);
});

test("reduced svd reconstructs a random matrix with orthonormal factors", () => {
  torch.manualSeed(3);
  for (const [m, n] of [
    [7, 4],
    [4, 9],
  ]) {
    const A = torch.randn([m, n], { device });
    const { U, S, Vh } = torch.svd(A);
    const k = Math.min(m, n);
    assert.deepEqual([U.shape, S.shape, Vh.shape], [[m, k], [k], [k, n]]);
    assertClose(values(U.mul(S).matmul(Vh)), values(A), 1e-5, 1e-5, "U S Vh");
    assertClose(values(U.T.matmul(U)), values(torch.eye(k, k, { device })), 1e-5, 0, "UᵀU");
    assertClose(values(Vh.matmul(Vh.T)), values(torch.eye(k, k, { device })), 1e-5, 0, "Vh Vhᵀ");
    const sv = values(S);
    assert.ok(
      sv.every((v, i) => i === 0 || v <= sv[i - 1]),
      "singular values descend",
    );
  }
});

test("reduced qr: Q orthonormal, R upper triangular, QR = A", () => {
  torch.manualSeed(4);
  const A = torch.randn([6, 3], { device, dtype: "float64" });
  const { Q, R } = torch.qr(A);
  assert.deepEqual(
    [Q.shape, R.shape],
    [
      [6, 3],
      [3, 3],
    ],
  );
  assertClose(values(Q.matmul(R)), values(A), 1e-12, 1e-12, "QR");
  assertClose(values(Q.T.matmul(Q)), values(torch.eye(3, 3, { device, dtype: "float64" })), 1e-12, 0, "QᵀQ");
  assertClose(values(R.tril(-1)), new Array(9).fill(0), 0, 0, "below diagonal");
});

test("inv: A·A⁻¹ = I for a well-conditioned matrix, and a singular one is refused", () => {
  torch.manualSeed(5);
  const A = torch.randn([5, 5], { device, dtype: "float64" }).add(torch.eye(5, 5, { device, dtype: "float64" }).mul(5));
  assertClose(values(A.matmul(torch.inv(A))), values(torch.eye(5, 5, { device, dtype: "float64" })), 1e-12, 0, "A A⁻¹");
  assert.throws(() => torch.inv(torch.zeros([3, 3], { device })), /singular|invertible/i);
});
