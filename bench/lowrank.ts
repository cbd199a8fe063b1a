// Benchmark: teacher synthesis + SVD analysis for the 196 projection matrices of Qwen2.5-Math-7B
// (28 layers × q, k, v, o, gate, up, down; rank-16 random adapters with non-zero B), all factored,
// on the CPU; and, for reference, the dense path (form ΔW = s·B·A, exact SVD) on layer 0 only,
// extrapolated ×28, with a check that both paths give the same singular values.
//   node dist/bench/lowrank.js [--layers 28] [--dense partial|full|none] [--threads N]
//   --dense partial (default): times q, k, v, o, gate, down of layer 0 densely and counts up_proj
//     with gate_proj's measured time (same 18944×3584 shape); full: all 7 (≈ 1 more minute on 2 cores).
import * as os from "node:os";
import { loraScale } from "../src/hf/peft.js";
import { svdInitFactors } from "../src/lowrank/factors.js";
import { type LoraDelta, exactSvd, factoredSvd } from "../src/lowrank/svd.js";
import { disposeDelta, synthesizeTeacher } from "../src/lowrank/synthesis.js";
import * as torch from "../src/torch/index.js";

torch.tuneHostAllocator(); // as the svdlora command does

const HIDDEN = 3584;
const KV = 512;
const INTER = 18944;
const SHAPES: [string, number, number][] = [
  ["self_attn.q_proj", HIDDEN, HIDDEN],
  ["self_attn.k_proj", KV, HIDDEN],
  ["self_attn.v_proj", KV, HIDDEN],
  ["self_attn.o_proj", HIDDEN, HIDDEN],
  ["mlp.gate_proj", INTER, HIDDEN],
  ["mlp.up_proj", INTER, HIDDEN],
  ["mlp.down_proj", HIDDEN, INTER],
];
const R = 16;
const ALPHA = 32;
const K = 64;
const scale = loraScale(ALPHA, R, false);

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const layers = Number(arg("layers", "28"));
const denseMode = arg("dense", "partial");
torch.setNumThreads(Number(arg("threads", String(os.availableParallelism()))));

const seconds = (t0: number) => (performance.now() - t0) / 1000;
const fmt = (s: number) => s.toFixed(2);

function randomAdapter(): Map<string, LoraDelta> {
  torch.manualSeed(0);
  const weights = new Map<string, LoraDelta>();
  for (let layer = 0; layer < layers; layer++) {
    for (const [name, out, inp] of SHAPES) {
      // A like PEFT's Kaiming-uniform scale, B small but non-zero (a "trained" adapter)
      weights.set(
        `model.layers.${layer}.${name}`,
        torch.tidy(() => ({ A: torch.randn([R, inp]).mul(1 / Math.sqrt(inp)), B: torch.randn([out, R]).mul(0.01), scale })),
      );
    }
  }
  return weights;
}

console.log(`lowrank bench: ${layers} layers × ${SHAPES.length} = ${layers * SHAPES.length} matrices, LoRA r=${R}, teacher K=${K}`);
console.log(
  `cpu: ${os.cpus()[0]?.model ?? "?"}, ${os.availableParallelism()} cores, torch threads ${torch.getNumThreads()}, libtorch ${torch.buildInfo().torchVersion}`,
);

const weights = randomAdapter();
const baseCount = torch.memory().count;

// 1. factored SVD of every LoRA ΔW (the analysis step the dense path replaces)
let t0 = performance.now();
const factoredSpectra = new Map<string, number[]>();
for (const [path, { A, B }] of weights) {
  const svd = factoredSvd(B, A, scale);
  factoredSpectra.set(path, Array.from(svd.S.data() as Float32Array));
  torch.dispose(svd);
}
const factoredSvdSeconds = seconds(t0);

// 2. teacher synthesis (step 2a) and SVD analysis + init factors at rank r (step 2b)
t0 = performance.now();
const teacher = synthesizeTeacher(weights, { targetRank: K });
const synthSeconds = seconds(t0);
t0 = performance.now();
const factors = svdInitFactors(teacher.modules, { rank: R, scaling: scale });
const analysisSeconds = seconds(t0);
const metrics = [...factors.metrics.values()];
const noise = [...teacher.info.values()].map((i) => i.achievedNoiseRatio);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
torch.dispose([...factors.weights.values()]);
disposeDelta(teacher);
const leaked = torch.memory().count - baseCount;

console.log(`factored SVD of ${weights.size} LoRA deltas: ${fmt(factoredSvdSeconds)} s`);
console.log(
  `synthesize teacher (K=${K}, noise 0.1): ${fmt(synthSeconds)} s; achieved noise ratio ${Math.min(...noise).toFixed(6)}–${Math.max(...noise).toFixed(6)}`,
);
console.log(
  `SVD analysis + init factors (r=${R}): ${fmt(analysisSeconds)} s; mean energy@${R} ${mean(metrics.map((m) => m.energyRatio)).toFixed(4)}, mean rel. error ${mean(metrics.map((m) => m.relativeError)).toFixed(4)}`,
);
console.log(`factored total (synthesis + analysis): ${fmt(synthSeconds + analysisSeconds)} s; tensors left over: ${leaked}`);

// 3. dense reference on layer 0
if (denseMode !== "none") {
  console.log(
    `\ndense reference, layer 0 (${denseMode === "full" ? "all 7 matrices timed" : "q, k, v, o, gate, down timed; up counted as gate (same shape)"}):`,
  );
  let layerSeconds = 0;
  let maxRelError = 0;
  const measured = new Map<string, number>();
  for (const [name, out, inp] of SHAPES) {
    const path = `model.layers.0.${name}`;
    if (denseMode !== "full" && name === "mlp.up_proj") {
      layerSeconds += measured.get("mlp.gate_proj")!;
      console.log(`  ${name.padEnd(16)} ${out}×${inp}  (not timed: gate_proj's ${fmt(measured.get("mlp.gate_proj")!)} s counted)`);
      continue;
    }
    const { A, B } = weights.get(path)!;
    t0 = performance.now();
    const S = torch.tidy(() => Array.from(exactSvd(B.matmul(A).mul(scale)).S.data() as Float32Array));
    const s = seconds(t0);
    measured.set(name, s);
    layerSeconds += s;
    const ref = factoredSpectra.get(path)!;
    const err = Math.max(...ref.map((v, i) => Math.abs(S[i] - v) / v));
    maxRelError = Math.max(maxRelError, err);
    console.log(`  ${name.padEnd(16)} ${out}×${inp}  form + SVD ${fmt(s)} s, top-${R} σ max rel. diff vs factored ${err.toExponential(2)}`);
  }
  const extrapolated = layerSeconds * 28;
  console.log(`dense layer 0: ${fmt(layerSeconds)} s → ×28 = ${fmt(extrapolated)} s (extrapolated, not measured)`);
  console.log(
    `factored SVD of all 196 deltas: ${fmt(factoredSvdSeconds * (28 / layers))} s${layers === 28 ? "" : " (scaled to 28 layers)"}; dense / factored = ${(extrapolated / (factoredSvdSeconds * (28 / layers))).toFixed(0)}×`,
  );
  console.log(
    `dense / (factored synthesis + analysis) = ${(extrapolated / ((synthSeconds + analysisSeconds) * (28 / layers))).toFixed(0)}×`,
  );
  console.log(
    `singular values agree: max relative difference ${maxRelError.toExponential(2)} over the top ${R} of every dense-timed matrix`,
  );
}
torch.dispose([...weights.values()]);
