// The preparation of every LoRA init on the Qwen2.5-Math-7B architecture, one GPU: q_proj and
// v_proj of all 28 layers at r = 16 (α = 16), the path `svdlora train` takes (trainer.ts
// attachLora: the calibration pass of the data-dependent inits over `--calibration-batches`
// batches of 4 of the samples, then each module's factors). One JSON line per method: seconds
// (from the loaded model to the adapter in place), calibration tokens and batches, the peak GPU
// memory, and whether it kept within 60 s and the `--max-memory` budget. The base weights an init
// rewrites are put back between methods.
//
// On the GPU machine, from the repository root, after `npm run build`:
//   python3 bench/write_checkpoint_7b.py /tmp/qwen7b-random     # random bf16 weights, 15 GB
//   python3 bench/make_samples.py /tmp/samples.json              # 81 token sequences of 150–600 tokens
//   node dist/bench/init-prep-7b.js /tmp/qwen7b-random /tmp/samples.json [--max-memory-gib 40]
//        [--methods pissa,eva,…] [--calibration-batches 8]
// (--device cpu runs it on a small model to try the script: no memory figures there)
// (the samples' first third is taken as the prompt, the rest as the answer tokens EVA reads).
import fs from "node:fs";
import { parseArgs } from "node:util";
import { loadCausalLM } from "../src/model/loader.js";
import type { LoraSettings } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { INIT_NAMES, type InitKind, LORA_TRAINING, type LoraTrainingSettings } from "../src/train/settings.js";
import { attachLora, memoryBudget, recomputePolicy, resolveSettings } from "../src/train/trainer.js";

torch.tuneHostAllocator(); // as the svdlora command does

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "max-memory-gib": { type: "string" },
    methods: { type: "string" },
    "calibration-batches": { type: "string", default: "8" },
    device: { type: "string", default: "cuda" },
  },
});
const [modelDir, samplesFile] = positionals;
if (!modelDir || !samplesFile)
  throw new Error("usage: node dist/bench/init-prep-7b.js MODEL_DIR SAMPLES.json [--max-memory-gib G] [--methods a,b]");
const methods = (flags.methods?.split(",") ??
  INIT_NAMES.filter((n) => n !== "svd").map((n) => (n === "pissa-niter-N" ? "pissa-niter-4" : n))) as InitKind[];
const samples: number[][] = JSON.parse(fs.readFileSync(samplesFile, "utf8"));
const train = samples.map((ids) => ({ ids, lossMask: ids.map((_, t) => t >= ids.length / 3), truncated: false }));

const device = flags.device!;
const cuda = device.startsWith("cuda");
const sync = () => cuda && torch.cuda.synchronize();
const t0 = performance.now();
const model = loadCausalLM(modelDir, { dtype: "bfloat16", device });
sync();
console.error(`model loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const lora: LoraSettings = { rank: 16, alpha: 16, targets: ["q_proj", "v_proj"] };
const originals = new Map<string, torch.Tensor>();
// In host memory: on the device they would add 0.77 GiB on the 7B model that a training run does not hold.
for (const [path, linear] of model.linears())
  if (/\.(q|v)_proj$/.test(path)) originals.set(path, torch.keep(linear.weight.to({ device: "cpu", copy: true })));

for (const init of methods) {
  const s = resolveSettings<LoraTrainingSettings>(LORA_TRAINING, {
    init,
    baseModel: modelDir,
    device,
    loraRank: 16,
    loraAlpha: 16,
    batchSize: 4,
    calibrationBatches: Number(flags["calibration-batches"]),
    ...(flags["max-memory-gib"] ? { maxMemory: Number(flags["max-memory-gib"]) } : {}),
  });
  sync();
  if (cuda) torch.cuda.resetPeakMemory();
  let line: Record<string, unknown>;
  try {
    const { loras, preparation } = await attachLora(model, s, lora, {
      train,
      batch: { padId: 0, device, packing: cuda, dtype: model.dtype },
      recompute: recomputePolicy(s),
    });
    sync();
    const peak = cuda ? torch.cuda.memory().peakAllocated : null;
    const budget = memoryBudget(s);
    line = {
      method: init,
      seconds: Number(preparation.seconds.toFixed(2)),
      calibration_tokens: preparation.tokens,
      calibration_batches: preparation.batches,
      ranks: [...new Set([...loras.values()].map((l) => l.rank))].sort((a, b) => a - b),
      peak_gib: peak === null ? null : Number((peak / 2 ** 30).toFixed(2)),
      budget_gib: budget === null ? null : Number((budget / 2 ** 30).toFixed(1)),
      within_60s: preparation.seconds <= 60,
      within_budget: peak === null || budget === null ? null : peak <= budget,
    };
    for (const [path, l] of loras) {
      model.linears().get(path)!.lora = null;
      l.dispose();
    }
  } catch (e) {
    line = { method: init, error: (e as Error).message };
  }
  torch.noGrad(() => {
    for (const [path, w] of originals) model.linears().get(path)!.weight.copy_(w);
  });
  console.log(JSON.stringify({ ...line, device: cuda ? torch.cuda.devices()[0].name : "cpu" }));
}
