// Helpers for the low-rank tests: random factors, dense checks, orthonormality.
import assert from "node:assert/strict";
import { type LoraAdapterConfig, type LoraWeights, loraConfig, loraScale } from "../../src/hf/peft.js";
import { GaussianSource } from "../../src/lowrank/random.js";
import type { LoraDelta, Svd } from "../../src/lowrank/svd.js";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { tempDir as sharedTempDir, values } from "../helpers.js";

/** Seeded Gaussian matrix in the given dtype (independent of torch's global RNG). */
export const gaussian = (seed: number, rows: number, cols: number, dtype: torch.DType = "float32"): Tensor =>
  new GaussianSource(seed).randn(rows, cols, { dtype });

/** max |QᵀQ − I| over the columns of Q. */
export function orthonormalityError(Q: Tensor): number {
  return torch.tidy(() => {
    const k = Q.shape[1];
    return Q.T.matmul(Q)
      .sub(torch.eye(k, k, { dtype: Q.dtype }))
      .abs()
      .max()
      .item();
  });
}

/** ‖X − Y‖_F / ‖Y‖_F. */
export const relativeDistance = (X: Tensor, Y: Tensor): number => torch.tidy(() => X.sub(Y).norm().item() / Y.norm().item());

export function maxRelativeError(actual: number[], expected: number[]): number {
  assert.equal(actual.length, expected.length);
  return Math.max(...actual.map((a, i) => Math.abs(a - expected[i]) / Math.abs(expected[i])));
}

/** Asserts U, Vh orthonormal and U diag(S) Vh = M within tolerances. */
export function assertValidSvd(svd: Svd, M: Tensor, tol: number, what: string): void {
  assert.ok(orthonormalityError(svd.U) < tol, `${what}: U orthonormal (${orthonormalityError(svd.U)})`);
  assert.ok(orthonormalityError(svd.Vh.T) < tol, `${what}: Vh orthonormal (${orthonormalityError(svd.Vh.T)})`);
  const err = torch.tidy(() => relativeDistance(svd.U.mul(svd.S).matmul(svd.Vh), M));
  assert.ok(err < tol, `${what}: reconstruction error ${err}`);
  const s = values(svd.S);
  assert.ok(
    s.every((v, i) => v >= 0 && (i === 0 || v <= s[i - 1])),
    `${what}: singular values descending and ≥ 0`,
  );
}

/** A temp directory removed after the test file finishes. */
export const tempDir = (prefix = "lowrank") => sharedTempDir(prefix);

/** The LoRA deltas s·B·A of a small trained-looking adapter: non-zero B, modules of several shapes (out × in). */
export function tinyLoras(r = 4, alpha = 8, shapes: Record<string, [number, number]> = TINY_SHAPES): Map<string, LoraDelta> {
  const loras = new Map<string, LoraDelta>();
  const scale = loraScale(alpha, r, false);
  let seed = 100;
  for (const [modulePath, [out, inp]] of Object.entries(shapes)) {
    const [a, b] = [seed++, seed++];
    loras.set(
      modulePath,
      torch.tidy(() => ({ A: gaussian(a, r, inp).mul(0.1), B: gaussian(b, out, r).mul(0.05), scale })),
    );
  }
  return loras;
}

/** tinyLoras as a PEFT adapter in memory: its config and factors. */
export function tinyAdapter(
  r = 4,
  alpha = 8,
  shapes: Record<string, [number, number]> = TINY_SHAPES,
): { config: LoraAdapterConfig; weights: LoraWeights } {
  const weights: LoraWeights = new Map([...tinyLoras(r, alpha, shapes)].map(([modulePath, { A, B }]) => [modulePath, { A, B }]));
  const targetModules = [...new Set(Object.keys(shapes).map((p) => p.split(".").pop()!))];
  return { config: loraConfig({ r, loraAlpha: alpha, targetModules, baseModel: "tiny" }), weights };
}

export const TINY_SHAPES: Record<string, [number, number]> = {
  "model.layers.0.self_attn.q_proj": [24, 16],
  "model.layers.0.self_attn.v_proj": [8, 16],
  "model.layers.0.mlp.down_proj": [16, 40],
  "model.layers.1.self_attn.q_proj": [24, 16],
};
