// Our side of the GPU LoRA benchmark (issue: train a Qwen2.5-Math-7B-sized LoRA faster than PEFT):
// the exact Qwen2.5-Math-7B architecture with random bf16 weights, LoRA r = 16, α = 16, batch 4,
// AdamW lr 2e-4, samples from a JSON file (the same token ids as ../shared/gpu/peft_baseline.py).
//   node dist/bench/lora-7b.js SAMPLES.json [q_proj,v_proj] [layers]
import fs from "node:fs";
import { parseModelConfig } from "../src/hf/config.js";
import { randomCausalLM } from "../src/model/loader.js";
import { addLora, loraParameters } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { paddedBatch } from "../src/train/batches.js";
import { AdamW } from "../src/train/optim.js";

const [samplesFile, targetsArg = "q_proj,v_proj", layersArg = "28"] = process.argv.slice(2);
const samples: number[][] = JSON.parse(fs.readFileSync(samplesFile, "utf8"));
const config = parseModelConfig({
  model_type: "qwen2", hidden_size: 3584, intermediate_size: 18944, num_hidden_layers: Number(layersArg), num_attention_heads: 28,
  num_key_value_heads: 4, rope_theta: 10000, rms_norm_eps: 1e-6, max_position_embeddings: 4096, vocab_size: 152064, tie_word_embeddings: false,
});
const t0 = performance.now();
torch.manualSeed(0);
const model = randomCausalLM(config, { dtype: "bfloat16", device: "cuda" });
torch.cuda.synchronize();
console.log(`build_s ${((performance.now() - t0) / 1000).toFixed(1)}`);
const loras = addLora(model, { rank: 16, alpha: 16, targets: targetsArg.split(",") }, "random");
const params = loraParameters(loras);
const opt = new AdamW(params, { lr: 2e-4, weightDecay: 0.01 });
const encoded = samples.map((ids) => ({ ids, lossMask: ids.map(() => true), truncated: false }));
torch.cuda.resetPeakMemory();
let steps = 0, real = 0, padded = 0, timed = 0, start = 0;
for (let epoch = 0; epoch < 2; epoch++)
  for (let i = 0; i < encoded.length; i += 4) {
    if (epoch === 0 && steps === 3) {
      torch.cuda.synchronize();
      start = performance.now();
      real = 0; padded = 0; timed = 0;
    }
    const chunk = encoded.slice(i, i + 4);
    torch.tidy(() => {
      const b = paddedBatch(chunk, 151643, "cuda");
      model.loss(b.ids, b.labels).backward();
      padded += b.ids.numel();
    });
    opt.step();
    opt.zeroGrad();
    real += chunk.reduce((n, s) => n + s.ids.length, 0);
    steps++;
    timed++;
  }
torch.cuda.synchronize();
const seconds = (performance.now() - start) / 1000;
const N = [...model.namedWeights()].filter(([n]) => n !== "model.embed_tokens.weight").reduce((n, [, t]) => n + t.numel(), 0);
console.log(JSON.stringify({
  side: "svdlora", targets: targetsArg.split(","), layers: config.numHiddenLayers, timed_steps: timed, seconds: Number(seconds.toFixed(2)),
  real_tokens_per_s: Math.round(real / seconds), padded_tokens_per_s: Math.round(padded / seconds),
  mfu_4N_real_pct_of_989: Number(((100 * 4 * N * real) / seconds / 989e12).toFixed(1)),
  peak_mem_gib: Number((torch.cuda.memory().peakAllocated / 2 ** 30).toFixed(2)), gpu: torch.cuda.devices()[0].name,
}));
