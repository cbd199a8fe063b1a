// Our side of the GPU LoRA benchmark (bench/run-lora7b.sh): a model of bench/configs/'s
// architectures with random bf16 weights (the Qwen2.5-Math-7B one by default) or a checkpoint,
// LoRA r = 16, α = 16, batch 4 in file order, AdamW lr 2e-4 (weight decay 0.01, no clipping),
// measured by src/train/bench.ts (the training step `svdlora train` runs, with its CUDA defaults:
// packed flash attention, chunked loss, gradient checkpointing only where --max-memory-gib needs
// it, fused AdamW) on the samples file scripts/bench_peft.py reads too.
// With --gpus N, one process per GPU (data-parallel as `svdlora train --gpus N`): each takes 4
// samples of every global batch of 4·N, and the figures are for all GPUs together.
//   node dist/bench/lora-7b.js SAMPLES.json [TARGETS] [--max-memory-gib G] [--checkpointing auto|on|off]
//        [--no-packing] [--model-config FILE] [--layers N] [--model-dir DIR] [--save-adapter DIR] [--steps N]
//        [--epochs E] [--gpus N] [--batch-size B]
// --batch-size is per process (default 4): the global batch is B × the number of processes.
// --steps caps the steps in all (the first 3 are warm-up); --epochs passes over the samples (default 2).
import fs from "node:fs";
import { parseArgs } from "node:util";
import { parseModelConfig } from "../src/hf/config.js";
import { saveAdapter } from "../src/hf/peft.js";
import { loadCausalLM, randomCausalLM } from "../src/model/loader.js";
import { addLora, adapterConfigFor, loraParameters, loraWeights } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { benchSteps, knownPeakTflops, matmulWeights, measureTraining, mfuPercent } from "../src/train/bench.js";
import { broadcastFromMain, joinProcessGroup } from "../src/train/data-parallel.js";
import { launchWorkers } from "../src/cli/launch.js";
import { AdamW } from "../src/train/optim.js";
import type { GradientCheckpointing } from "../src/train/settings.js";
import { recomputePolicy } from "../src/train/trainer.js";

torch.tuneHostAllocator(); // as the svdlora command does

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "max-memory-gib": { type: "string" },
    checkpointing: { type: "string", default: "auto" },
    "no-packing": { type: "boolean", default: false },
    "model-config": { type: "string", default: new URL("../../bench/configs/qwen2.5-math-7b.json", import.meta.url).pathname },
    layers: { type: "string" },
    "model-dir": { type: "string" },
    "save-adapter": { type: "string" },
    steps: { type: "string" },
    epochs: { type: "string", default: "2" },
    "batch-size": { type: "string", default: "4" },
    gpus: { type: "string", default: "1" },
  },
});
if (Number(flags.gpus) > 1 && !process.env.WORLD_SIZE) {
  await launchWorkers(Number(flags.gpus), process.argv.slice(2), { output: "main" });
  process.exit(0);
}
const dp = joinProcessGroup("cuda");
const [samplesFile, targetsArg = "q_proj,v_proj"] = positionals;
if (!samplesFile) throw new Error("usage: node dist/bench/lora-7b.js SAMPLES.json [TARGETS] [--max-memory-gib G] …");
const samples: number[][] = JSON.parse(fs.readFileSync(samplesFile, "utf8"));
const targets = targetsArg.split(",");
const budgetGib = flags["max-memory-gib"] === undefined ? undefined : Number(flags["max-memory-gib"]);
const packing = !flags["no-packing"];
const batch = Number(flags["batch-size"]);

const t0 = performance.now();
torch.manualSeed(0);
const config = JSON.parse(fs.readFileSync(flags["model-config"]!, "utf8"));
if (flags.layers !== undefined) config.num_hidden_layers = Number(flags.layers);
const model = flags["model-dir"]
  ? loadCausalLM(flags["model-dir"], { dtype: "bfloat16", device: dp.device })
  : randomCausalLM(parseModelConfig(config), { dtype: "bfloat16", device: dp.device });
torch.cuda.synchronize();
console.error(`model ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const lora = { rank: 16, alpha: 16, targets };
const loras = addLora(model, lora, "random");
if (flags["save-adapter"]) {
  const w = loraWeights(loras);
  saveAdapter(flags["save-adapter"], adapterConfigFor(lora, flags["model-dir"] ?? "random-qwen2.5-math-7b"), w);
  torch.dispose([...w.values()]);
}
const optimizer = new AdamW(loraParameters(loras), { lr: 2e-4, weightDecay: 0.01 });
broadcastFromMain(loraParameters(loras), dp);
const recompute = recomputePolicy({
  device: dp.device,
  gradientCheckpointing: flags.checkpointing as GradientCheckpointing,
  maxMemory: budgetGib,
});
const steps = benchSteps(
  samples.length,
  batch * dp.worldSize,
  Number(flags.epochs),
  flags.steps === undefined ? Infinity : Number(flags.steps),
);
const m = measureTraining(model, optimizer, samples, { steps, padId: 151643, packing, recompute, lr: 2e-4, dataParallel: dp });
if (!dp.isMain) process.exit(0);
const gpu = torch.cuda.devices()[0].name;
const peak = knownPeakTflops(gpu, "bfloat16");
console.log(
  JSON.stringify({
    side: "svdlora",
    gpus: dp.worldSize,
    batch_per_gpu: batch,
    targets,
    layers: model.config.numHiddenLayers,
    budget_gib: budgetGib ?? null,
    checkpointing: flags.checkpointing,
    packing,
    timed_steps: m.timedSteps,
    seconds: Number(m.seconds.toFixed(2)),
    real_tokens_per_s: Math.round(m.realTokensPerSecond),
    padded_tokens_per_s: Math.round(m.paddedTokensPerSecond),
    peak_tflops: peak,
    mfu_4N_pct:
      peak === null ? null : Number((mfuPercent(m.realTokensPerSecond, matmulWeights(model), peak * 1e12) / dp.worldSize).toFixed(1)),
    recomputed_layers_per_step: Number(m.recomputedLayersPerStep.toFixed(1)),
    peak_mem_gib: Number((m.peakMemoryBytes / 2 ** 30).toFixed(2)),
    gpu,
    first_losses: m.losses.slice(0, 20).map((l) => Number(l.toFixed(5))),
  }),
);
