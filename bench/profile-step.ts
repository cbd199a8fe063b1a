// Where a training step's time goes on the GPU, for the 7B benchmark workload: the time to queue
// the step's work from Node (the CPU side) against the time until the GPU has done it, and the
// projections' matmuls alone for the same token counts (what a perfect step would cost).
//   node dist/bench/profile-step.js SAMPLES.json [TARGETS] [--checkpointing off|all]
import fs from "node:fs";
import { parseArgs } from "node:util";
import { parseModelConfig } from "../src/hf/config.js";
import { MATH_7B_CONFIG, readConfigFile } from "./configs.js";
import { randomCausalLM } from "../src/model/loader.js";
import { addLora, loraParameters } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { lossAndBackward } from "../src/train/backprop.js";
import { makeBatch } from "../src/train/batches.js";
import { AdamW } from "../src/train/optim.js";

torch.tuneHostAllocator(); // as the svdlora command does

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: { checkpointing: { type: "string", default: "off" } },
});
const [samplesFile, targetsArg = "q_proj,v_proj"] = positionals;
const samples: number[][] = JSON.parse(fs.readFileSync(samplesFile, "utf8"));
const config = parseModelConfig(readConfigFile(MATH_7B_CONFIG));
torch.manualSeed(0);
const model = randomCausalLM(config, { dtype: "bfloat16", device: "cuda" });
const loras = addLora(model, { rank: 16, alpha: 16, targets: targetsArg.split(",") }, "random");
const optimizer = new AdamW(loraParameters(loras), { lr: 2e-4, weightDecay: 0.01 });
const encoded = samples.map((ids) => ({ ids, lossMask: ids.map(() => true), truncated: false }));
const recompute = flags.checkpointing === "all" ? "all" : "none";
const ms = (t: number) => Number((performance.now() - t).toFixed(2));

const rows: Record<string, number>[] = [];
for (let i = 0; i < 4 * 14; i += 4) {
  const chunk = encoded.slice(i, i + 4);
  torch.cuda.synchronize();
  const t0 = performance.now();
  const queued = torch.tidy(() => {
    const b = makeBatch(chunk, { padId: 0, device: "cuda", packing: true, dtype: model.dtype });
    lossAndBackward(model, b, { recompute });
    return { tokens: b.tokens, ms: ms(t0) };
  });
  torch.cuda.synchronize();
  const step = ms(t0);
  const t1 = performance.now();
  optimizer.step();
  optimizer.zeroGrad();
  torch.cuda.synchronize();
  const opt = ms(t1);
  // The same tokens through every projection's matmul, forward and input-gradient, and lm_head.
  const T = queued.tokens;
  const gemm = torch.noGrad(() =>
    torch.tidy(() => {
      const x = torch.randn([T, config.hiddenSize], { dtype: "bfloat16", device: "cuda" });
      const mid = torch.randn([T, config.intermediateSize], { dtype: "bfloat16", device: "cuda" });
      torch.cuda.synchronize();
      const t2 = performance.now();
      for (const layer of model.layers) {
        const a = layer.selfAttn,
          m = layer.mlp;
        for (const w of [a.qProj.weight, a.kProj.weight, a.vProj.weight, m.gateProj.weight, m.upProj.weight]) {
          const y = torch.linear(x, w);
          y.matmul(w).dispose(); // input gradient
          y.dispose();
        }
        for (const [inp, w] of [
          [x, a.oProj.weight],
          [mid, m.downProj.weight],
        ] as const) {
          const y = torch.linear(inp, w);
          y.matmul(w).dispose();
          y.dispose();
        }
      }
      const logits = torch.linear(x, model.lmHead);
      logits.matmul(model.lmHead).dispose();
      logits.dispose();
      torch.cuda.synchronize();
      return ms(t2);
    }),
  );
  // Forward alone (with and without a graph) and a backward through it, each queued then waited for.
  const phases = torch.tidy(() => {
    const b = makeBatch(chunk, { padId: 0, device: "cuda", packing: true, dtype: model.dtype });
    torch.cuda.synchronize();
    let t = performance.now();
    torch.noGrad(() => model.hidden(b.ids, b.options).dispose());
    const fwdNoGradQueue = ms(t);
    torch.cuda.synchronize();
    const fwdNoGrad = ms(t);
    t = performance.now();
    const h = model.hidden(b.ids, b.options);
    const fwdQueue = ms(t);
    torch.cuda.synchronize();
    const fwd = ms(t);
    t = performance.now();
    h.float().square().mean().backward();
    const bwdQueue = ms(t);
    torch.cuda.synchronize();
    const bwd = ms(t);
    optimizer.zeroGrad();
    return {
      fwd_nograd_queue_ms: fwdNoGradQueue,
      fwd_nograd_ms: fwdNoGrad,
      fwd_queue_ms: fwdQueue,
      fwd_ms: fwd,
      bwd_queue_ms: bwdQueue,
      bwd_ms: bwd,
    };
  });
  if (i >= 8) rows.push({ tokens: T, queue_ms: queued.ms, step_ms: step, optimizer_ms: opt, matmuls_only_ms: gemm, ...phases });
}
const avg = (k: string) => Number((rows.reduce((s, r) => s + r[k], 0) / rows.length).toFixed(1));
console.log(
  JSON.stringify({
    what: "profile_step",
    checkpointing: flags.checkpointing,
    targets: targetsArg.split(","),
    steps: rows.length,
    ...Object.fromEntries(Object.keys(rows[0]).map((k) => [k, avg(k)])),
    gpu: torch.cuda.devices()[0].name,
  }),
);
