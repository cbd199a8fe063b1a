// Making the embedded default model (models/tiny-prob): a small Qwen2-architecture model whose
// byte-level BPE tokenizer and weights are trained by svdlora itself on generated probability
// text. The corpus never contains a question of data/probability (train or eval).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { corpusProblems, Random, solutionText } from "../data/probability/index.js";
import type { ProbabilityProblem } from "../data/probability/index.js";
import { buildByteLevelTokenizer, writeTokenizerFiles } from "../data/tiny-tokenizer.js";
import type { Encoded } from "../data/types.js";
import { parseModelConfig } from "../hf/config.js";
import { loadTokenizer } from "../hf/tokenizer.js";
import { randomCausalLM } from "../model/loader.js";
import { saveCausalLM } from "../model/save.js";
import * as torch from "../torch/index.js";
import { assertReplaceable, replaceDirectoryAtomic, writeFileAtomic } from "../util/atomic.js";
import { checkOutputDir } from "../util/files.js";
import { claimFolder } from "../util/outputs.js";
import { singleProcess } from "../train/data-parallel.js";
import type { TrainingEvents } from "../train/events.js";
import { type LoopResult, trainLoop } from "../train/loop.js";
import { runLogFiles } from "../train/run-log.js";
import { trainEveryWeight } from "../train/trainer.js";
import type { Values } from "../util/settings.js";
import type { PRETRAIN } from "./settings.js";

export type PretrainOptions = Values<typeof PRETRAIN> & { signal?: AbortSignal; events?: TrainingEvents };

export const plainText = (p: ProbabilityProblem) => `Question: ${p.question}\nAnswer: ${solutionText(p)}`;

export async function pretrainTinyModel(o: PretrainOptions): Promise<Record<string, unknown>> {
  checkOutputDir(o.outputDir, "model folder");
  const started = Date.now();
  const problems = corpusProblems(o.samples, o.seed);
  const rng = new Random(o.seed + 1);
  const asChat = problems.map(() => rng.next() < o.chatFraction);

  // Tokenizer: byte-level BPE with merges learned from the first part of the corpus.
  // The output is checked (new, or svdlora's) and held before the work, not after it.
  const parent = path.dirname(path.resolve(o.outputDir));
  const lock = claimFolder(parent, `pretrain ${path.basename(o.outputDir)}`, (line) => o.events?.note?.(line));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-pretrain-"));
  try {
    assertReplaceable(o.outputDir);
    const sampleTexts = problems.slice(0, 2000).map(plainText);
    const files = buildByteLevelTokenizer({ corpus: sampleTexts, numMerges: o.merges });
    await writeTokenizerFiles(work, files);
    const tokenizer = await loadTokenizer(work);
    const endOfText = tokenizer.tokenToId("<|endoftext|>")!;

    let truncated = 0;
    const data: Encoded[] = problems.map((p, i) => {
      const text = asChat[i]
        ? tokenizer.applyChatTemplate([
            { role: "user", content: p.question },
            { role: "assistant", content: solutionText(p) },
          ])
        : plainText(p);
      let ids = [...tokenizer.encode(text, { addSpecialTokens: false }), endOfText];
      if (ids.length > o.maxLength) {
        ids = ids.slice(0, o.maxLength);
        truncated++;
      }
      return { ids, lossMask: ids.map(() => true), truncated: false };
    });

    const s = o;
    const config = parseModelConfig({
      model_type: "qwen2",
      hidden_size: s.hidden,
      intermediate_size: s.intermediate,
      num_hidden_layers: s.layers,
      num_attention_heads: s.heads,
      num_key_value_heads: s.kvHeads,
      vocab_size: tokenizer.vocabSize,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: false,
      hidden_act: "silu",
      bos_token_id: null,
      eos_token_id: tokenizer.eos?.id ?? endOfText,
      pad_token_id: endOfText,
    });
    torch.manualSeed(o.seed);
    const model = randomCausalLM(config, { device: o.device });
    const params = trainEveryWeight(model);
    const parameters = [...params.values()].reduce((n, t) => n + t.numel(), 0);
    let run: LoopResult;
    try {
      run = await trainLoop(
        {
          model,
          params,
          train: data,
          eval: [],
          settings: {
            epochs: o.epochs,
            batchSize: o.batchSize,
            gradientAccumulationSteps: 1,
            learningRate: o.learningRate,
            warmupRatio: 0.05,
            lrScheduler: "cosine",
            weightDecay: 0.1,
            maxGradNorm: 1.0,
            seed: o.seed,
            evalSteps: 0,
            saveSteps: 0,
            resume: false,
            skipNonfinite: false,
          },
          batch: { padId: endOfText, device: o.device, packing: false, dtype: "float32" },
          recompute: "none",
          log: runLogFiles(work, "pretrain_log"),
          checkpointDir: path.join(work, "checkpoint"),
          fingerprint: {},
          dataParallel: singleProcess(o.device),
        },
        { signal: o.signal, events: o.events, label: "pretrain tiny-prob" },
      );
      saveCausalLM(model, work, "float32");
    } finally {
      torch.dispose([...params.values()]); // the model's weights
    }
    fs.rmSync(path.join(work, "checkpoint"), { recursive: true, force: true });
    const losses = run.history.map((h) => h.loss);
    const tail = losses.slice(-20);
    const summary = {
      made_by: "svdlora pretrain",
      parameters,
      corpus: {
        problems: o.samples,
        chat_fraction: o.chatFraction,
        seed: o.seed,
        truncated,
        tokens_per_epoch: data.reduce((n, d) => n + d.ids.length, 0),
      },
      tokenizer: { merges: o.merges, vocab_size: tokenizer.vocabSize },
      training: {
        epochs: o.epochs,
        batch_size: o.batchSize,
        learning_rate: o.learningRate,
        steps: losses.length,
        first_loss: losses[0],
        final_loss_mean_last_20: tail.reduce((a, b) => a + b, 0) / tail.length,
        tokens: run.tokens,
        train_seconds: Math.round(run.seconds * 10) / 10,
      },
      hardware: o.device.startsWith("cuda") ? torch.cuda.devices()[0]?.name : `${os.cpus()[0]?.model} (${os.cpus().length} cores)`,
      libtorch: torch.buildInfo().torchVersion,
      wall_seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    writeFileAtomic(path.join(work, "pretrain_summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileAtomic(
      path.join(work, "generation_config.json"),
      `${JSON.stringify({ eos_token_id: config.eosTokenId, pad_token_id: endOfText, do_sample: false }, null, 2)}\n`,
    );
    replaceDirectoryAtomic(o.outputDir, (dir) => fs.cpSync(work, dir, { recursive: true }));
    return summary;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    lock.release();
  }
}
