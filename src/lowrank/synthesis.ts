// Teacher synthesis (docs/experiment.md#step-2a-teacher-synthesis): from a trained LoRA, a rank-K
// "teacher" ΔW per adapted matrix, standing in for a full fine-tune. Everything stays factored
// (U: m×K, S: K, Vh: K×n): the m×K and K×n work runs in the storage dtype, the K×K cores in
// float64. Per module, one seeded stream draws, in order, G_U (m×(K−r)), G_V (n×(K−r)) and G (K×K).
//
//   ΔW_lora  = s·B·A = U_r Σ_r V_rᵀ                          (exact, factoredSvd)
//   tail     σ_{r+j} = σ_r · exp(−decay · j),  j = 1 … K − r
//   U_K      = [U_r, U_ext], V_K = [V_r, V_ext]               (U_ext ⟂ U_r, V_ext ⟂ V_r: seeded
//                                                              Gaussian columns, projected out twice, QR)
//   ΔW_clean = U_K Σ_K V_Kᵀ
//   noise    N = noiseScale · ‖Σ_K‖_F · G / ‖G‖_F,  G a K×K standard Gaussian
//   ΔW_synth = U_K (Σ_K + N) V_Kᵀ, re-diagonalized: Σ_K + N = P D Qᵀ → U = U_K P, S = D, Vh = Qᵀ V_Kᵀ
//
// Because U_K and V_K are orthonormal, ‖ΔW_synth − ΔW_clean‖_F = ‖N‖_F exactly, so the noise ratio
// equals noiseScale by construction; the noise perturbs both the singular values and the singular
// directions (within the K-dimensional column/row spaces), and ΔW_synth has rank exactly K.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { spectrumMetrics } from "./metrics.js";
import { GaussianSource, deriveSeed } from "./random.js";
import { type LoraDelta, type Svd, type SvdDtype, canonicalSigns, factoredSvd } from "./svd.js";

export const DECAY_FORM = "sigma_{r+j} = sigma_r * exp(-decay * j), j = 1..K-r";
export const NOISE_FORM =
  "dW_synth = U_K (Sigma_K + N) V_K^T re-diagonalized by SVD; N = noiseScale * ||Sigma_K||_F * G / ||G||_F, G ~ N(0,1)^{KxK}";

export interface SynthesisOptions {
  /** K, the teacher's rank (clamped to min(out, in) per matrix). */
  targetRank?: number;
  /** ‖ΔW_synth − ΔW_clean‖_F / ‖ΔW_clean‖_F. */
  noiseScale?: number;
  /** λ in σ_{r+j} = σ_r e^{−λ j}; the default 0.1 makes the tail fall by e every 10 values. */
  decay?: number;
  /** Base seed; each module draws from its own stream seeded by (seed, module path). */
  seed?: number;
  /** dtype of the stored factors. */
  dtype?: SvdDtype;
}

export const SYNTHESIS_DEFAULTS: Required<SynthesisOptions> = { targetRank: 64, noiseScale: 0.1, decay: 0.1, seed: 42, dtype: "float32" };

export interface SynthesisSettings {
  targetRank: number;
  noiseScale: number;
  decay: number;
  seed: number;
  dtype: SvdDtype;
  decayForm: string;
  noiseForm: string;
  /** The LoRA adapter the teacher was built from, when known. */
  sourceAdapter: string | null;
  loraRank: number | null;
  loraAlpha: number | null;
}

export interface SynthesizedModuleInfo {
  /** [out, in] of the adapted matrix. */
  shape: [number, number];
  /** Rank of the LoRA delta that was kept (min(r, out, in)). */
  loraRank: number;
  /** K for this matrix (targetRank, or less when the matrix is smaller). */
  rank: number;
  loraScaling: number;
  /** The seed of this module's random stream. */
  seed: number;
  /** The LoRA's singular values σ_1 … σ_r. */
  loraSpectrum: number[];
  /** ‖ΔW_clean‖_F = ‖Σ_K‖_F. */
  cleanNorm: number;
  /**
   * ‖ΔW_synth − ΔW_clean‖_F / ‖ΔW_clean‖_F, computed on the K×K core in float64: exact up to the
   * orthonormality of U_K, V_K in the storage dtype (about 1e-7 in float32; tests check it densely).
   */
  achievedNoiseRatio: number;
}

export interface SynthesizedDelta {
  settings: SynthesisSettings;
  /** Module path → ΔW_synth = U diag(S) Vh. */
  modules: Map<string, Svd>;
  info: Map<string, SynthesizedModuleInfo>;
}

export function resolveSynthesisOptions(o: SynthesisOptions = {}): Required<SynthesisOptions> {
  const d = SYNTHESIS_DEFAULTS;
  const r = {
    targetRank: o.targetRank ?? d.targetRank,
    noiseScale: o.noiseScale ?? d.noiseScale,
    decay: o.decay ?? d.decay,
    seed: o.seed ?? d.seed,
    dtype: o.dtype ?? d.dtype,
  };
  if (!Number.isInteger(r.targetRank) || r.targetRank < 1) throw new Error(`target rank must be a positive integer, got ${r.targetRank}`);
  if (!(r.noiseScale >= 0) || !Number.isFinite(r.noiseScale))
    throw new Error(`noise scale must be a finite number ≥ 0, got ${r.noiseScale}`);
  if (!(r.decay >= 0) || !Number.isFinite(r.decay)) throw new Error(`decay rate must be a finite number ≥ 0, got ${r.decay}`);
  if (!Number.isInteger(r.seed)) throw new Error(`seed must be an integer, got ${r.seed}`);
  return r;
}

/** Orthonormal columns spanning the part of G orthogonal to the orthonormal columns of basis. */
export function orthonormalComplement(basis: Tensor, G: Tensor): Tensor {
  return torch.tidy(() => {
    let X = G;
    for (let pass = 0; pass < 2; pass++) X = X.sub(basis.matmul(basis.T.matmul(X))); // twice is enough (Kahan–Parlett)
    return torch.qr(X).Q;
  });
}

/**
 * ‖X − Y‖_F for X = U₁ diag(S₁) Vh₁, Y = U₂ diag(S₂) Vh₂ via K×K products only, in float64: checks
 * a factored result without forming it (O((m + n) K²)).
 */
export function factoredDistance(x: Svd, y: Svd): number {
  return torch.tidy(() => {
    const f = (t: Tensor) => t.to("float64");
    const inner = (a: Svd, b: Svd) =>
      f(a.U)
        .T.matmul(f(b.U))
        .mul(f(a.S).unsqueeze(1))
        .mul(f(b.S).unsqueeze(0))
        .mul(f(a.Vh).matmul(f(b.Vh).T))
        .sum()
        .item();
    const squared = inner(x, x) + inner(y, y) - 2 * inner(x, y);
    return Math.sqrt(Math.max(squared, 0));
  });
}

/**
 * One module's teacher from its LoRA factors (ΔW_lora = scale · B A). The m×K and K×n work runs
 * in the storage dtype (orthonormal to its round-off); the K×K cores run in float64.
 */
export function synthesizeModule(
  modulePath: string,
  lora: LoraDelta,
  options: SynthesisOptions = {},
): { delta: Svd; info: SynthesizedModuleInfo } {
  const o = resolveSynthesisOptions(options);
  const { dtype } = o;
  const [m, n] = [lora.B.shape[0], lora.A.shape[1]];
  const device = lora.B.device;
  return torch.tidy(() => {
    const low = factoredSvd(lora.B, lora.A, lora.scale, { dtype });
    const loraSpectrum = Array.from(low.S.data() as ArrayLike<number>, Number);
    const r = loraSpectrum.length;
    if (!(loraSpectrum[0] > 0))
      throw new Error(
        `${modulePath}: the LoRA delta s·B·A is zero (an untrained random-init adapter has B = 0); nothing to synthesize a teacher from`,
      );
    const K = Math.min(o.targetRank, m, n);
    if (K < r) throw new Error(`${modulePath}: target rank ${o.targetRank} is below the LoRA rank ${r}; use a target rank ≥ ${r}`);

    const seed = deriveSeed(o.seed, modulePath);
    const gen = new GaussianSource(seed);
    const sigmaR = loraSpectrum[r - 1];
    const sigma = [...loraSpectrum, ...Array.from({ length: K - r }, (_, j) => sigmaR * Math.exp(-o.decay * (j + 1)))];
    const cleanNorm = Math.hypot(...sigma);
    let U = low.U;
    let Vh = low.Vh;
    if (K > r) {
      U = torch.cat([U, orthonormalComplement(U, gen.randn(m, K - r, { dtype, device }))], 1);
      Vh = torch.cat([Vh, orthonormalComplement(Vh.T, gen.randn(n, K - r, { dtype, device })).T], 0);
    }

    let S = torch.tensor(Float64Array.from(sigma), { device });
    let achievedNoiseRatio = 0;
    if (o.noiseScale > 0) {
      const G = gen.randn(K, K, { device });
      const clean = torch.eye(K, K, { dtype: "float64", device }).mul(S.unsqueeze(0));
      const core = torch.svd(clean.add(G.mul((o.noiseScale * cleanNorm) / G.norm().item())));
      // ‖ΔW_synth − ΔW_clean‖_F = ‖U_K (P D Qᵀ − Σ_K) V_Kᵀ‖_F = ‖P D Qᵀ − Σ_K‖_F (orthonormal U_K, V_K)
      achievedNoiseRatio = core.U.mul(core.S.unsqueeze(0)).matmul(core.Vh).sub(clean).norm().item() / cleanNorm;
      U = U.matmul(core.U.to(dtype));
      Vh = core.Vh.to(dtype).matmul(Vh);
      S = core.S;
    }
    const delta = canonicalSigns({ U, S: S.to(dtype), Vh });
    const info: SynthesizedModuleInfo = {
      shape: [m, n],
      loraRank: r,
      rank: K,
      loraScaling: lora.scale,
      seed,
      loraSpectrum,
      cleanNorm,
      achievedNoiseRatio,
    };
    return { delta: { U: delta.U.contiguous(), S: delta.S, Vh: delta.Vh.contiguous() }, info };
  });
}

/** Where the LoRA came from: recorded in the settings for the report, not used by the maths. */
export type TeacherSource = Partial<Pick<SynthesisSettings, "sourceAdapter" | "loraRank" | "loraAlpha">>;

/**
 * Step 2a: a teacher for every module of a LoRA adapter (module path → s·B·A; the factors are left
 * as they are).
 */
export function synthesizeTeacher(
  loras: ReadonlyMap<string, LoraDelta>,
  options: SynthesisOptions = {},
  source: TeacherSource = {},
): SynthesizedDelta {
  const o = resolveSynthesisOptions(options);
  const result: SynthesizedDelta = {
    settings: {
      ...o,
      decayForm: DECAY_FORM,
      noiseForm: NOISE_FORM,
      sourceAdapter: source.sourceAdapter ?? null,
      loraRank: source.loraRank ?? null,
      loraAlpha: source.loraAlpha ?? null,
    },
    modules: new Map(),
    info: new Map(),
  };
  try {
    for (const modulePath of [...loras.keys()].sort()) {
      const { delta, info } = synthesizeModule(modulePath, loras.get(modulePath)!, o);
      result.modules.set(modulePath, delta);
      result.info.set(modulePath, info);
    }
  } catch (error) {
    disposeDelta(result);
    throw error;
  }
  return result;
}

export function disposeDelta(delta: { modules: Map<string, Svd> }): void {
  torch.dispose([...delta.modules.values()]);
}

// ---- report ---------------------------------------------------------------------------------

/** Plain-text synthesis report: every choice made, then one line per module. */
export function synthesisReport(delta: SynthesizedDelta): string {
  const s = delta.settings;
  const lines = [
    "Synthesized teacher ΔW",
    `source adapter: ${s.sourceAdapter ?? "(in memory)"}  (LoRA r = ${s.loraRank ?? "?"}, alpha = ${s.loraAlpha ?? "?"})`,
    `target rank K: ${s.targetRank} (clamped to min(out, in) per matrix)`,
    `tail: ${s.decayForm}, decay = ${s.decay}`,
    `noise: ${s.noiseForm}, noiseScale = ${s.noiseScale}`,
    `seed: ${s.seed} (per-module streams: FNV-1a(seed, module path) → xoshiro128** + Box–Muller)`,
    `stored as ${s.dtype} factors U [out×K], S [K], Vh [K×in]`,
    "columns: ‖·‖ = Frobenius norm; energy@r = share of ‖ΔW_synth‖² in its top r singular values; noise = achieved ‖ΔW_synth − ΔW_clean‖ / ‖ΔW_clean‖",
    "",
  ];
  const rows = [...delta.info].map(([path, info]) => {
    const S = delta.modules.get(path)!.S;
    const m = spectrumMetrics(S, info.loraRank);
    const f = (x: number) => x.toPrecision(4);
    const loraNorm = Math.sqrt(info.loraSpectrum.reduce((a, v) => a + v * v, 0));
    return `${path}  [${info.shape.join("×")}]  r=${info.loraRank} K=${info.rank}  ‖ΔW_lora‖=${f(loraNorm)} ‖ΔW_synth‖=${f(m.frobeniusNorm)}  σ1=${f(m.spectrum[0])} σr=${f(m.spectrum[info.loraRank - 1])} σK=${f(m.spectrum[info.rank - 1])}  energy@r=${f(m.energyRatio)}  noise=${f(info.achievedNoiseRatio)}`;
  });
  const ratios = [...delta.info.values()].map((i) => i.achievedNoiseRatio);
  lines.push(
    `${rows.length} modules; achieved noise ratio min ${Math.min(...ratios).toPrecision(6)}, max ${Math.max(...ratios).toPrecision(6)}`,
    "",
    ...rows,
  );
  return `${lines.join("\n")}\n`;
}
