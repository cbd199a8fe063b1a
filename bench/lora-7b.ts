// Our side of the GPU LoRA benchmark (issue: train a Qwen2.5-Math-7B-sized LoRA faster than PEFT):
// the Qwen2.5-Math-7B architecture with random bf16 weights (or a checkpoint), LoRA r = 16, α = 16,
// batch 4 in file order, AdamW lr 2e-4 (weight decay 0.01, no clipping: as peft_baseline.py), the
// same token ids as ../shared/gpu/peft_baseline.py. It runs the training step `svdlora train`
// runs (src/train/step.ts), with the same defaults on CUDA: packed flash attention, chunked loss,
// gradient checkpointing only where --max-memory-gib needs it, fused AdamW.
// With --gpus N, one process per GPU (data-parallel as `svdlora train --gpus N`): each takes 4
// samples of every global batch of 4·N, and the figures are for all GPUs together.
//   node dist/bench/lora-7b.js SAMPLES.json [TARGETS] [--max-memory-gib G] [--checkpointing auto|on|off]
//        [--no-packing] [--layers N] [--model-dir DIR] [--save-adapter DIR] [--steps N] [--epochs E] [--gpus N] [--batch-size B]
// --batch-size is per process (default 4): the global batch is B × the number of processes.
import fs from "node:fs";
import { parseArgs } from "node:util";
import { parseModelConfig } from "../src/hf/config.js";
import { saveAdapter } from "../src/hf/peft.js";
import { loadCausalLM, randomCausalLM } from "../src/model/loader.js";
import { addLora, adapterConfigFor, loraParameters, loraWeights } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { broadcastFromMain, joinProcessGroup } from "../src/train/data-parallel.js";
import { launchWorkers } from "../src/cli/launch.js";
import { AdamW } from "../src/train/optim.js";
import { optimizerStep, rankMicroBatch } from "../src/train/step.js";
import type { GradientCheckpointing } from "../src/train/settings.js";
import { recomputePolicy } from "../src/train/trainer.js";

torch.tuneHostAllocator(); // as the svdlora command does

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "max-memory-gib": { type: "string" },
    checkpointing: { type: "string", default: "auto" },
    "no-packing": { type: "boolean", default: false },
    layers: { type: "string", default: "28" },
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
const maxSteps = flags.steps === undefined ? Infinity : Number(flags.steps);
const batch = Number(flags["batch-size"]);

const t0 = performance.now();
torch.manualSeed(0);
const model = flags["model-dir"]
  ? loadCausalLM(flags["model-dir"], { dtype: "bfloat16", device: dp.device })
  : randomCausalLM(
      parseModelConfig({
        model_type: "qwen2",
        hidden_size: 3584,
        intermediate_size: 18944,
        num_hidden_layers: Number(flags.layers),
        num_attention_heads: 28,
        num_key_value_heads: 4,
        rope_theta: 10000,
        rms_norm_eps: 1e-6,
        max_position_embeddings: 4096,
        vocab_size: 152064,
        tie_word_embeddings: false,
      }),
      { dtype: "bfloat16", device: dp.device },
    );
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
const encoded = samples.map((ids) => ({ ids, lossMask: ids.map(() => true), truncated: false }));

torch.cuda.resetPeakMemory();
let steps = 0,
  real = 0,
  padded = 0,
  timed = 0,
  recomputed = 0,
  start = 0;
const losses: number[] = [];
outer: for (let epoch = 0; epoch < Number(flags.epochs); epoch++)
  for (let i = 0; i < encoded.length; i += batch * dp.worldSize) {
    if (steps >= maxSteps) break outer;
    if (epoch === 0 && steps === 3) {
      torch.cuda.synchronize();
      start = performance.now();
      real = 0;
      padded = 0;
      timed = 0;
      recomputed = 0;
    }
    const global = encoded.slice(i, i + batch * dp.worldSize);
    const micro = rankMicroBatch(global, 1, dp, { padId: 151643, device: dp.device, packing, dtype: model.dtype });
    const r = optimizerStep(model, optimizer, [micro], { recompute, lr: 2e-4, dataParallel: dp });
    losses.push(r.loss);
    real += r.tokens;
    padded += packing ? r.tokens : global.length * Math.max(...global.map((s) => s.ids.length));
    recomputed += r.recomputed;
    steps++;
    timed++;
  }
torch.cuda.synchronize();
const seconds = (performance.now() - start) / 1000;
if (!dp.isMain) process.exit(0);
const N = [...model.namedWeights()].filter(([n]) => n !== "model.embed_tokens.weight").reduce((n, [, t]) => n + t.numel(), 0);
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
    timed_steps: timed,
    seconds: Number(seconds.toFixed(2)),
    real_tokens_per_s: Math.round(real / seconds),
    padded_tokens_per_s: Math.round(padded / seconds),
    mfu_4N_real_pct_of_989: Number(((100 * 4 * N * real) / seconds / 989e12 / dp.worldSize).toFixed(1)),
    recomputed_layers_per_step: Number((recomputed / timed).toFixed(1)),
    peak_mem_gib: Number((torch.cuda.memory().peakAllocated / 2 ** 30).toFixed(2)),
    gpu: torch.cuda.devices()[0].name,
    first_losses: losses.slice(0, 20).map((l) => Number(l.toFixed(5))),
  }),
);
